//! Leaves and small files verified together ([`super::fetch_many`]) are still each
//! refused on their own: a corrupted block, wherever it sits in a batch, fails the
//! decode with its own CID, its path and a hash mismatch, and nothing after it is
//! written.

use narfs_core::block::{BlockError, BlockSource, MemoryStore};
use narfs_core::nar::NarWriter;
use narfs_core::Cid;
use narfs_encoder::{encode, EntryKind, Layout};

use crate::{decode_nar, Limits, Problem};

/// Incompressible bytes.
fn noise(len: usize, seed: u64) -> Vec<u8> {
    narfs_core::noise::bytes(seed, len)
}

/// A directory of 40 one-leaf files `f00`..`f39` and a 40-leaf file `big` (fixed
/// 1 KiB chunks), encoded; with every file's CID.
fn sample() -> (MemoryStore, Cid, Vec<(String, Cid)>, Vec<u8>) {
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    let big = noise(40 << 10, 1);
    w.file(b"big", false, big.len() as u64, &mut &big[..])
        .unwrap();
    for i in 0..40 {
        let body = noise(100 + i, i as u64 + 2);
        let name = format!("f{i:02}");
        w.file(name.as_bytes(), false, body.len() as u64, &mut &body[..])
            .unwrap();
    }
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let (store, root, files) = encoded(&nar);
    (store, root, files, nar)
}

/// `nar` encoded with fixed 1 KiB chunks: the store, the root and every file's path
/// and CID.
fn encoded(nar: &[u8]) -> (MemoryStore, Cid, Vec<(String, Cid)>) {
    let layout = Layout {
        chunker: "fixed:1024".parse().unwrap(),
        ..Layout::default()
    };
    let mut store = MemoryStore::new();
    let mut files = Vec::new();
    let mut seen = |p: &str, k: EntryKind, c: &Cid| {
        if k == EntryKind::File {
            files.push((p.to_string(), *c));
        }
    };
    let enc = encode(nar, &layout, &mut store, Some(&mut seen)).unwrap();
    (store, enc.root, files)
}

/// Flips a bit of the block `cid` in `store`.
fn corrupt(store: &mut MemoryStore, cid: &Cid) {
    let mut bytes = store.remove(cid).unwrap();
    bytes[0] ^= 1;
    store.insert_unchecked(*cid, bytes);
}

fn refused(store: &MemoryStore, root: &Cid, bad: &Cid, path: &str) {
    let mut out = Vec::new();
    let e = decode_nar(store, root, &mut out, &Limits::default()).unwrap_err();
    assert_eq!(*e.cid, *bad, "{e}");
    assert_eq!(e.path, path, "{e}");
    assert!(
        matches!(*e.problem, Problem::Block(BlockError::HashMismatch { cid, .. }) if cid == *bad),
        "{e}"
    );
}

#[test]
fn the_whole_sample_decodes() {
    let (store, root, _, nar) = sample();
    assert_eq!(
        decode_nar(&store, &root, Vec::new(), &Limits::default()).unwrap(),
        nar
    );
}

#[test]
fn a_corrupted_leaf_anywhere_in_a_batch_is_refused() {
    let (store, root, files, _) = sample();
    let big = files.iter().find(|(p, _)| p == "big").unwrap().1;
    let node = narfs_core::dagpb::PBNode::decode(store.get_ref(&big).unwrap()).unwrap();
    assert_eq!(node.links.len(), 40);
    // First, middle (the two halves' seam), last of a batch, and the file's last.
    for k in [0, 7, 8, 15, 16, 39] {
        let mut store = store.clone();
        let leaf = node.links[k].hash;
        corrupt(&mut store, &leaf);
        refused(&store, &root, &leaf, "big");
    }
}

#[test]
fn a_corrupted_small_file_among_those_fetched_ahead_is_refused() {
    let (store, root, files, _) = sample();
    for name in ["f00", "f05", "f08", "f16", "f39"] {
        let mut store = store.clone();
        let cid = files.iter().find(|(p, _)| p == name).unwrap().1;
        corrupt(&mut store, &cid);
        refused(&store, &root, &cid, name);
    }
}

/// A source that logs the decoder's hints and reads, in order.
struct Logging<'a> {
    store: &'a MemoryStore,
    log: std::sync::Mutex<Vec<(bool, Cid)>>,
}

impl narfs_core::block::BlockSource for Logging<'_> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, narfs_core::block::StoreError> {
        self.log.lock().unwrap().push((false, *cid));
        self.store.get(cid)
    }

    fn will_need(&self, cids: &[Cid]) {
        let mut log = self.log.lock().unwrap();
        log.extend(cids.iter().map(|c| (true, *c)));
    }
}

#[test]
fn the_decoder_hints_the_blocks_it_reads_next_once_and_ahead_of_reading_them() {
    let (store, root, files, nar) = sample();
    let source = Logging {
        store: &store,
        log: Default::default(),
    };
    assert_eq!(
        decode_nar(&source, &root, Vec::new(), &Limits::default()).unwrap(),
        nar
    );
    let log = source.log.into_inner().unwrap();
    let hinted: Vec<Cid> = log.iter().filter(|(h, _)| *h).map(|(_, c)| *c).collect();
    let read: Vec<Cid> = log.iter().filter(|(h, _)| !*h).map(|(_, c)| *c).collect();
    // Each block hinted once, and every hint is a block the decode then reads.
    let mut unique = hinted.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), hinted.len());
    assert!(hinted.iter().all(|c| read.contains(c)));
    // The directory's first batch is 16 entries (`big`, f00..f14): the one-leaf
    // files after it, f15..f39, are hinted; the first 16 leaves of `big` are fetched
    // with that batch (`leaves_ahead`), and its reader hints the other 24 (within
    // the window) once it has read those; each before it is read.
    let big = files.iter().find(|(p, _)| p == "big").unwrap().1;
    let node = narfs_core::dagpb::PBNode::decode(store.get_ref(&big).unwrap()).unwrap();
    let mut want: Vec<Cid> = (15..40)
        .map(|i| {
            files
                .iter()
                .find(|(p, _)| *p == format!("f{i:02}"))
                .unwrap()
                .1
        })
        .collect();
    want.extend(node.links[16..].iter().map(|l| l.hash));
    assert_eq!(hinted, want);
    for c in &hinted {
        let at = |hint: bool| log.iter().position(|(h, x)| *h == hint && x == c);
        assert!(at(true) < at(false), "{c} read before its hint");
    }
}

/// A directory of 100 one-leaf files `a000`.., a 4-leaf file `b` and 50 one-leaf
/// files `c000`..: the CIDs of the `a` and `c` files, its root, the store and the NAR.
fn wide_dir() -> (MemoryStore, Cid, Vec<Cid>, Vec<Cid>, Vec<u8>) {
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    let mut put = |name: String, body: Vec<u8>| {
        w.file(name.as_bytes(), false, body.len() as u64, &mut &body[..])
            .unwrap();
    };
    for i in 0..100 {
        put(format!("a{i:03}"), noise(100 + i, i as u64));
    }
    put("b".into(), noise(4 << 10, 1000));
    for i in 0..50 {
        put(format!("c{i:03}"), noise(200 + i, 2000 + i as u64));
    }
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let (store, root, mut files) = encoded(&nar);
    files.sort();
    let of = |prefix: char| -> Vec<Cid> {
        let named = files.iter().filter(|(p, _)| p.starts_with(prefix));
        named.map(|(_, c)| *c).collect()
    };
    (store, root, of('a'), of('c'), nar)
}

#[test]
fn directory_entries_after_a_batch_are_hinted_up_to_one_that_is_no_leaf() {
    let (store, root, a, c, nar) = wide_dir();
    assert_eq!((a.len(), c.len()), (100, 50));
    let source = Logging {
        store: &store,
        log: Default::default(),
    };
    assert_eq!(
        decode_nar(&source, &root, Vec::new(), &Limits::default()).unwrap(),
        nar
    );
    let log = source.log.into_inner().unwrap();
    let hinted: Vec<Cid> = log.iter().filter(|(h, _)| *h).map(|(_, c)| *c).collect();
    // Batches: a000..a015 (a directory's first is 16 entries at most), then 64 each
    // once its claims held: a016..a079, a080..c042, c043..c049. After the first, the
    // run of leaves a016..a099 (it stops at `b`, a file of 4 leaves, fetched with
    // the third batch: its reader has none left to hint); after the third,
    // c043..c049; each once, and before it is read. `b`'s own node ends the first
    // run, and is hinted with it.
    let leaves_of_b = hinted.len() - 84 - 1 - 7;
    let mut dir_hints: Vec<Cid> = a[16..].to_vec();
    dir_hints.extend(&c[43..]);
    let got: Vec<Cid> = hinted
        .iter()
        .filter(|h| a.contains(h) || c.contains(h))
        .copied()
        .collect();
    assert_eq!(got, dir_hints);
    assert_eq!(leaves_of_b, 0);
    for h in &hinted {
        let at = |hint: bool| log.iter().position(|(x, y)| *x == hint && y == h);
        assert!(at(true) < at(false), "{h} read before its hint");
    }
}

#[test]
fn a_corrupted_small_file_in_a_wide_batch_is_refused_with_its_path() {
    let (store, root, a, c, _) = wide_dir();
    // First of a batch, either side of a seam, last of a batch, last entry.
    for (cid, name) in [
        (a[0], "a000"),
        (a[31], "a031"),
        (a[32], "a032"),
        (a[63], "a063"),
        (c[49], "c049"),
    ] {
        let mut store = store.clone();
        corrupt(&mut store, &cid);
        refused(&store, &root, &cid, name);
    }
}

#[test]
fn a_run_splits_where_its_weights_balance() {
    use super::midpoint;
    assert_eq!(midpoint(&[1; 16]), 8);
    // One heavy block among light ones gets a part of its own, first or last.
    let mut w = vec![100_000];
    w.extend([1000; 20]);
    assert_eq!(midpoint(&w), 1);
    w.reverse();
    assert_eq!(midpoint(&w), 20);
    assert_eq!(midpoint(&[5, 5]), 1);
    assert_eq!(midpoint(&[0, 0, 0]), 2);
}

/// A source recording how many blocks each `get_many_verified` asked for, and which
/// (an empty list: a `will_need`, a batch's hint).
struct Parts<'a> {
    store: &'a MemoryStore,
    parts: std::sync::Mutex<Vec<usize>>,
    asked: std::sync::Mutex<Vec<Vec<Cid>>>,
}

impl narfs_core::block::BlockSource for Parts<'_> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, narfs_core::block::StoreError> {
        self.store.get(cid)
    }

    fn get_many_verified(
        &self,
        cids: &[Cid],
    ) -> Vec<Result<Option<narfs_core::block::Verified>, narfs_core::block::StoreError>> {
        self.parts.lock().unwrap().push(cids.len());
        self.asked.lock().unwrap().push(cids.to_vec());
        self.store.get_many_verified(cids)
    }

    fn will_need(&self, _: &[Cid]) {
        self.asked.lock().unwrap().push(Vec::new());
    }
}

impl<'a> Parts<'a> {
    fn new(store: &'a MemoryStore) -> Self {
        Parts {
            store,
            parts: Default::default(),
            asked: Default::default(),
        }
    }
}

/// Decodes `root` from `store` through a [`Parts`] source, checks that it gives
/// `nar`, and returns what each fetch asked for.
fn asked_decoding(store: &MemoryStore, root: &Cid, nar: &[u8]) -> Vec<Vec<Cid>> {
    let source = Parts::new(store);
    assert_eq!(
        decode_nar(&source, root, Vec::new(), &Limits::default()).unwrap(),
        nar
    );
    source.asked.into_inner().unwrap()
}

/// No block was asked for twice.
fn fetched_once(asked: &[Vec<Cid>]) {
    let mut all: Vec<Cid> = asked.concat();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "{asked:?}");
}

#[test]
fn runs_are_fetched_in_parts_on_the_pool_and_answered_in_order() {
    let (store, _, files, _) = sample();
    let cids: Vec<Cid> = files.iter().map(|(_, c)| *c).collect();
    let source = Parts::new(&store);
    let fetch = |cids: &[Cid], weights: &[u64]| {
        source.parts.lock().unwrap().clear();
        let got = super::fetch_weighted(&source, cids, weights, "");
        for (cid, block) in cids.iter().zip(got) {
            assert_eq!(&block.unwrap(), store.get_ref(cid).unwrap(), "{cid}");
        }
        let mut parts = source.parts.lock().unwrap().clone();
        parts.sort();
        parts
    };
    // 41 blocks of equal weight: parts of 5 or 6 (each at least one 4-lane group).
    let parts = fetch(&cids, &vec![100; cids.len()]);
    assert_eq!(parts.iter().sum::<usize>(), cids.len());
    assert!(parts.iter().all(|&n| (4..8).contains(&n)), "{parts:?}");
    // A short run of light blocks stays whole; of heavy ones, it is split.
    assert_eq!(fetch(&cids[..7], &[100; 7]), vec![7]);
    assert_eq!(fetch(&cids[..2], &[256 << 10; 2]), vec![1, 1]);
    assert_eq!(fetch(&cids[..7], &[256 << 10; 7]), vec![3, 4]);
    // 16 leaves of 256 KiB: four parts of four, not sixteen single leaves.
    assert_eq!(fetch(&cids[..16], &[256 << 10; 16]), vec![4, 4, 4, 4]);
    assert_eq!(fetch(&cids[..1], &[1 << 30]), vec![1]);
}

#[test]
fn a_short_batch_is_filled_up_with_the_entries_of_the_directory_around_it() {
    // `d/` (two files) first, then 30 files: the root's first batch is `d` and
    // f00..f14 (16 entries at most); then `d`'s batch of two is filled up with the
    // root's f15..f29, verified together, and nothing is fetched alone.
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.directory(b"d").unwrap();
    for name in ["x", "y"] {
        let body = noise(300, name.len() as u64 + 7);
        w.file(name.as_bytes(), false, 300, &mut &body[..]).unwrap();
    }
    w.end_directory().unwrap();
    for i in 0..30 {
        let body = noise(100 + i, i as u64 + 100);
        let name = format!("f{i:02}");
        w.file(name.as_bytes(), false, body.len() as u64, &mut &body[..])
            .unwrap();
    }
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let (store, root, files) = encoded(&nar);
    let cid = |p: &str| files.iter().find(|(q, _)| q == p).unwrap().1;
    let asked = asked_decoding(&store, &root, &nar);
    let batch = |c: Cid| asked.iter().position(|a| a.contains(&c)).unwrap();
    assert!(batch(cid("f14")) < batch(cid("d/x")));
    // The batch of `d`'s files and the root's rest: one fetch in parts, so the
    // calls between the first of d/x and the last of f29 are all of it, with no
    // batch's hint between them (short batches of their own would each give one).
    let (first, last) = (batch(cid("d/x")), batch(cid("f29")));
    let together = &asked[first.min(last)..=first.max(last)];
    assert!(together.iter().all(|a| !a.is_empty()), "{asked:?}");
    assert_eq!(together.iter().map(Vec::len).sum::<usize>(), 17);
    // Every block but the root (fetched alone, not through a batch) in the two
    // batches: none fetched again, none alone.
    assert_eq!(asked.iter().map(Vec::len).sum::<usize>(), 16 + 17);
}

/// A root of ten directories `d0`..`d9` of two small files `x`, `y` each, then
/// `d9/sub/z`: the store, the root, every file's CID and the NAR.
fn small_dirs() -> (MemoryStore, Cid, Vec<(String, Cid)>, Vec<u8>) {
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    for d in 0..10u64 {
        w.directory(format!("d{d}").as_bytes()).unwrap();
        if d == 9 {
            w.directory(b"sub").unwrap();
            let body = noise(200, 99);
            w.file(b"z", false, 200, &mut &body[..]).unwrap();
            w.end_directory().unwrap();
        }
        for (i, name) in ["x", "y"].iter().enumerate() {
            let body = noise(300 + i, d * 2 + i as u64 + 7);
            w.file(name.as_bytes(), false, body.len() as u64, &mut &body[..])
                .unwrap();
        }
        w.end_directory().unwrap();
    }
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let (store, root, files) = encoded(&nar);
    (store, root, files, nar)
}

#[test]
fn the_files_of_sibling_directories_fetched_ahead_are_verified_in_one_batch() {
    // The root's batch fetches d0..d9's nodes; d0's batch of two is filled up with
    // the files of d1..d8 (whole directories of leaves, in order), and stops at d9,
    // which starts with a subdirectory (its files lie after that in the packs).
    let (store, root, files, nar) = small_dirs();
    let cid = |p: &str| files.iter().find(|(q, _)| q == p).unwrap().1;
    let asked = asked_decoding(&store, &root, &nar);
    // Which batch fetched `c` (batches are separated by their hints, empty), if any
    // (a block alone is fetched without one).
    let batch = |c: Cid| {
        let at = asked.iter().position(|a| a.contains(&c))?;
        Some(asked[..at].iter().filter(|a| a.is_empty()).count())
    };
    let second = batch(cid("d0/x")).unwrap();
    for d in 0..9 {
        for f in ["x", "y"] {
            let got = batch(cid(&format!("d{d}/{f}")));
            assert_eq!(got, Some(second), "d{d}/{f}: {asked:?}");
        }
    }
    assert!(batch(cid("d9/x")).unwrap() > second);
    assert!(batch(cid("d9/sub/z")).is_none_or(|b| b > second));
    fetched_once(&asked);
}

#[test]
fn a_corrupted_file_of_a_sibling_directory_fetched_ahead_is_refused_with_its_path() {
    let (mut store, root, files, _) = small_dirs();
    let bad = files.iter().find(|(p, _)| p == "d5/y").unwrap().1;
    corrupt(&mut store, &bad);
    refused(&store, &root, &bad, "d5/y");
}

/// A root of five files `m0`..`m4` of three 1 KiB leaves each, then a 20-leaf file
/// `n`: the store, the root, every file's CID and the NAR.
fn leafy_files() -> (MemoryStore, Cid, Vec<(String, Cid)>, Vec<u8>) {
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    for i in 0..5u64 {
        let body = noise(3 << 10, 50 + i);
        w.file(format!("m{i}").as_bytes(), false, 3 << 10, &mut &body[..])
            .unwrap();
    }
    let body = noise(20 << 10, 60);
    w.file(b"n", false, 20 << 10, &mut &body[..]).unwrap();
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let (store, root, files) = encoded(&nar);
    (store, root, files, nar)
}

#[test]
fn the_leaves_of_several_files_fetched_ahead_are_verified_in_one_run() {
    let (store, root, files, nar) = leafy_files();
    let leaves = |p: &str| {
        let cid = files.iter().find(|(q, _)| q == p).unwrap().1;
        let node = narfs_core::dagpb::PBNode::decode(&store.get(&cid).unwrap().unwrap()).unwrap();
        node.links.iter().map(|l| l.hash).collect::<Vec<Cid>>()
    };
    let asked = asked_decoding(&store, &root, &nar);
    // The 15 leaves of m0..m4 and the first of n (16 at most) in one run, split
    // into parts on the pool, right after the root's batch and before any hint.
    let hint = asked.iter().skip(1).position(Vec::is_empty).unwrap() + 1;
    let first: Vec<Cid> = asked[..hint].concat();
    for i in 0..5 {
        for leaf in leaves(&format!("m{i}")) {
            assert!(first.contains(&leaf), "m{i}: {asked:?}");
        }
    }
    let n = leaves("n");
    assert!(first.contains(&n[0]) && !first.contains(&n[1]), "{asked:?}");
    fetched_once(&asked);
}

#[test]
fn a_corrupted_leaf_of_a_file_fetched_ahead_is_refused_with_its_path() {
    let (mut store, root, files, _) = leafy_files();
    let cid = files.iter().find(|(q, _)| q == "m3").unwrap().1;
    let node = narfs_core::dagpb::PBNode::decode(&store.get(&cid).unwrap().unwrap()).unwrap();
    let bad = node.links[1].hash;
    corrupt(&mut store, &bad);
    refused(&store, &root, &bad, "m3");
}
