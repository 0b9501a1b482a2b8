//! Adversarial DAGs for the decoder: sizes that disagree with the children, bad HAMT
//! shards, 100,000-level nesting, and DAGs built to make decoding unbounded (a 1 TiB
//! claim, one subtree referenced a million times, towers of empty children). Each
//! must stop with its specific error, quickly and after little work.

#[path = "adversarial/util.rs"]
mod util;

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use narfs_core::block::{BlockSource, MemoryStore, StoreError};
use narfs_core::dagpb::PBLink;
use narfs_core::nar::NarWriter;
use narfs_core::unixfs::{UnixFsData, HAMT_HASH_MURMUR3};
use narfs_core::Cid;
use narfs_decoder::{decode_nar, Limits, Problem};
use util::{decode, decode_err, dir, file_node, link, malformed, node, raw, symlink};

/// A block source that counts the blocks asked for.
struct Counting<'a> {
    store: &'a MemoryStore,
    gets: AtomicU64,
}

impl BlockSource for Counting<'_> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        self.store.get(cid)
    }
}

fn file_nar(data: &[u8]) -> Vec<u8> {
    let mut w = NarWriter::new(Vec::new());
    w.file(b"", false, data.len() as u64, &mut &data[..])
        .unwrap();
    w.finish().unwrap()
}

#[test]
fn sizes_that_disagree_with_the_children() {
    let mut s = MemoryStore::new();
    let five = raw(&mut s, b"12345");

    let root = file_node(&mut s, &[(five, 10)]);
    let e = decode_err(&s, &root);
    assert_eq!(
        malformed(&e),
        "raw leaf of 5 bytes where the parent says 10"
    );
    assert_eq!(*e.cid, five);

    let mut lying = UnixFsData::file(vec![5], None);
    lying.filesize = Some(1 << 40);
    let root = node(&mut s, vec![link("", five)], &lying);
    let e = decode_err(&s, &root);
    assert_eq!(
        malformed(&e),
        "filesize 1099511627776 but data and blocksizes add up to 5"
    );

    let root = node(
        &mut s,
        vec![link("", five), link("", five)],
        &UnixFsData::file(vec![5], None),
    );
    assert_eq!(
        malformed(&decode_err(&s, &root)),
        "2 links but 1 blocksizes"
    );

    let inner = file_node(&mut s, &[(five, 5)]);
    let root = file_node(&mut s, &[(inner, 10)]);
    assert_eq!(
        malformed(&decode_err(&s, &root)),
        "parent says 10 bytes, node holds 5"
    );

    let root = file_node(&mut s, &[(five, u64::MAX), (five, 5)]);
    assert_eq!(malformed(&decode_err(&s, &root)), "sizes overflow");

    let empty = raw(&mut s, b"");
    let root = file_node(&mut s, &[(empty, 0), (five, 5)]);
    assert_eq!(
        malformed(&decode_err(&s, &root)),
        "a file node of 2 children has one that claims 0 bytes"
    );
    // Alone, an empty child is fine (an empty executable is such a wrapper), and a
    // chain of such wrappers is bounded by the file depth limit.
    let mut f = file_node(&mut s, &[(empty, 0)]);
    assert_eq!(decode(&s, &f, 1 << 20).unwrap(), file_nar(b""));
    for _ in 0..100 {
        f = file_node(&mut s, &[(f, 0)]);
    }
    assert!(matches!(*decode_err(&s, &f).problem, Problem::TooDeep(32)));

    // Tsize is advisory (cumulative sizes differ between implementations): a lying
    // Tsize changes nothing, the bytes come from the verified blocks alone.
    let ok = file_node(&mut s, &[(five, 5), (five, 5)]);
    let mut l = link("f", ok);
    l.tsize = Some(1 << 60);
    let root = node(&mut s, vec![l], &UnixFsData::directory());
    let nar = decode(&s, &root, 1 << 20).unwrap();
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.file(b"f", false, 10, &mut &b"1234512345"[..]).unwrap();
    w.end_directory().unwrap();
    assert_eq!(nar, w.finish().unwrap());
}

/// A shard node with this fanout and hash type.
fn shard(s: &mut MemoryStore, links: Vec<PBLink>, fanout: u64, hash: u64) -> Cid {
    let mut data = UnixFsData::hamt_shard(&[1], fanout);
    data.hash_type = Some(hash);
    node(s, links, &data)
}

#[test]
fn hamt_shards_with_bad_fanout_or_links_to_non_shards() {
    let mut s = MemoryStore::new();
    let file = raw(&mut s, b"x");
    let m = HAMT_HASH_MURMUR3;

    // A good shard first, so that each failure below is the one change made.
    let sub = shard(&mut s, vec![link("3Fb", file)], 256, m);
    let root = shard(&mut s, vec![link("00", sub), link("1Fa", file)], 256, m);
    let nar = decode(&s, &root, 1 << 20).unwrap();
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.file(b"a", false, 1, &mut &b"x"[..]).unwrap();
    w.file(b"b", false, 1, &mut &b"x"[..]).unwrap();
    w.end_directory().unwrap();
    assert_eq!(nar, w.finish().unwrap());

    for fanout in [0, 8, 255, 257, 512, 1 << 40] {
        let bad = shard(&mut s, vec![link("1Fa", file)], fanout, m);
        let e = decode_err(&s, &bad);
        assert!(malformed(&e).contains("must be a power of 16"), "{e}");
        let top = shard(&mut s, vec![link("00", bad)], 256, m);
        assert!(malformed(&decode_err(&s, &top)).contains("power of 16"));
    }
    let bad = shard(&mut s, vec![link("1Fa", file)], 256, 0x12);
    assert!(malformed(&decode_err(&s, &bad)).starts_with("shard hash type Some(18)"));
    let sixteen = shard(&mut s, vec![link("3b", file)], 16, m);
    let top = shard(&mut s, vec![link("00", sixteen)], 256, m);
    assert_eq!(
        malformed(&decode_err(&s, &top)),
        "sub-shard fanout 16 differs from its parent's"
    );

    // Sub-shard links (a bare index prefix) to things that are not shards.
    let plain = dir(&mut s, &[("a", file)]);
    let top = shard(&mut s, vec![link("00", plain)], 256, m);
    let e = decode_err(&s, &top);
    assert_eq!(malformed(&e), "a sub-shard link points at a Directory node");
    assert_eq!(*e.cid, plain);
    let top = shard(&mut s, vec![link("00", file)], 256, m);
    assert_eq!(
        malformed(&decode_err(&s, &top)),
        "a sub-shard link points at a raw block"
    );
    let sl = symlink(&mut s, b"/etc");
    let top = shard(&mut s, vec![link("00", sl)], 256, m);
    assert!(malformed(&decode_err(&s, &top)).contains("Symlink"));

    // Names without a valid index prefix, and a sub-shard reached twice.
    for name in ["", "G0a", "0", "ff", "é0"] {
        let top = shard(&mut s, vec![link(name, file)], 256, m);
        let e = decode_err(&s, &top);
        assert!(
            malformed(&e).contains("2-digit index prefix"),
            "{name}: {e}"
        );
    }
    let top = shard(&mut s, vec![link("00", sub), link("01", sub)], 256, m);
    assert_eq!(
        malformed(&decode_err(&s, &top)),
        "a sub-shard is linked more than once"
    );
    // A raw block where a directory is expected is a file: fine at the root and
    // behind a directory link.
    assert_eq!(decode(&s, &file, 1 << 20).unwrap(), file_nar(b"x"));
}

#[test]
fn nesting_100_000_levels_in_a_dag() {
    let mut s = MemoryStore::new();
    let mut d = dir(&mut s, &[]);
    for _ in 0..100_000 {
        d = dir(&mut s, &[("d", d)]);
    }
    let start = Instant::now();
    let e = decode_err(&s, &d);
    assert!(matches!(*e.problem, Problem::TooDeep(4096)), "{e}");
    assert_eq!(e.path.len(), 4096 * 2 - 1, "d/d/.../d, 4096 levels");
    assert!(start.elapsed() < Duration::from_secs(10));

    // A file tree as deep.
    let leaf = raw(&mut s, b"z");
    let mut f = leaf;
    for _ in 0..100_000 {
        f = file_node(&mut s, &[(f, 1)]);
    }
    let root = dir(&mut s, &[("deep", f)]);
    let e = decode_err(&s, &root);
    assert!(matches!(*e.problem, Problem::TooDeep(32)), "{e}");
    assert_eq!(e.path, "deep");

    // And a shard tree 100 levels deep.
    let file = raw(&mut s, b"x");
    let mut sh = shard(&mut s, vec![link("00a", file)], 256, HAMT_HASH_MURMUR3);
    for _ in 0..100 {
        sh = shard(&mut s, vec![link("00", sh)], 256, HAMT_HASH_MURMUR3);
    }
    let e = decode_err(&s, &sh);
    assert!(matches!(*e.problem, Problem::TooDeep(64)), "{e}");
}

/// Decodes through a counting source with `max_output`, returning the problem, the
/// blocks fetched and the time taken.
fn bounded(s: &MemoryStore, root: &Cid, max_output: u64) -> (Problem, u64, Duration) {
    let source = Counting {
        store: s,
        gets: AtomicU64::new(0),
    };
    let limits = Limits {
        max_output,
        ..Limits::default()
    };
    let start = Instant::now();
    let e = decode_nar(&source, root, std::io::sink(), &limits).expect_err("over the limit");
    (
        *e.problem,
        source.gets.load(Ordering::Relaxed),
        start.elapsed(),
    )
}

#[test]
fn a_dag_claiming_a_1_tib_file() {
    let mut s = MemoryStore::new();
    let mib = raw(&mut s, &vec![7u8; 1 << 20]);
    let gib = file_node(&mut s, &vec![(mib, 1 << 20); 1024]);
    let tib = file_node(&mut s, &vec![(gib, 1 << 30); 1024]);
    let root = dir(&mut s, &[("big", tib)]);
    for r in [tib, root] {
        let (problem, gets, took) = bounded(&s, &r, 64 << 20);
        assert!(
            matches!(problem, Problem::TooLarge(l) if l == 64 << 20),
            "{problem}"
        );
        // Refused on the claim, before any leaf is read.
        assert!(gets <= 2, "{gets} blocks fetched");
        assert!(took < Duration::from_secs(2), "{took:?}");
    }
}

#[test]
fn a_subtree_referenced_a_million_times() {
    let mut s = MemoryStore::new();
    let names: Vec<String> = (0..1000).map(|i| format!("e{i:04}")).collect();
    let fan = |s: &mut MemoryStore, to: Cid| {
        let entries: Vec<(&str, Cid)> = names.iter().map(|n| (n.as_str(), to)).collect();
        dir(s, &entries)
    };
    // 1,000 × 1,000 links to one 1 MiB file: a 1 TB NAR from ~1 MiB of blocks.
    let mib = raw(&mut s, &vec![1u8; 1 << 20]);
    let mid = fan(&mut s, mib);
    let top = fan(&mut s, mid);
    let (problem, gets, took) = bounded(&s, &top, 256 << 20);
    assert!(
        matches!(problem, Problem::TooLarge(l) if l == 256 << 20),
        "{problem}"
    );
    assert!(gets < 300, "{gets} blocks fetched");
    assert!(took < Duration::from_secs(20), "{took:?}");

    // The same with empty files: every entry still costs output, so the limit
    // stops it after about max_output / (bytes per entry) entries.
    let empty = raw(&mut s, b"");
    let mid = fan(&mut s, empty);
    let top = fan(&mut s, mid);
    let (problem, gets, took) = bounded(&s, &top, 1 << 20);
    assert!(matches!(problem, Problem::TooLarge(_)), "{problem}");
    assert!(gets < 10_000, "{gets} blocks fetched");
    assert!(took < Duration::from_secs(10), "{took:?}");

    // File nodes of empty children at every level would make endless work for no
    // output at all: refused at the first such node.
    let mut f = file_node(&mut s, &vec![(empty, 0); 1000]);
    for _ in 0..20 {
        f = file_node(&mut s, &vec![(f, 0); 1000]);
    }
    let (problem, gets, _) = bounded(&s, &f, 1 << 40);
    assert!(
        matches!(&problem, Problem::Malformed(m) if m.contains("claims 0 bytes")),
        "{problem}"
    );
    assert!(gets <= 1);

    // A shard linking one sub-shard many times would expand exponentially.
    let mut sh = shard(&mut s, vec![link("00a", empty)], 256, HAMT_HASH_MURMUR3);
    for _ in 0..8 {
        let links = (0..256).map(|i| link(&format!("{i:02X}"), sh)).collect();
        sh = shard(&mut s, links, 256, HAMT_HASH_MURMUR3);
    }
    let (problem, gets, _) = bounded(&s, &sh, 1 << 40);
    assert!(
        matches!(&problem, Problem::Malformed(m) if m == "a sub-shard is linked more than once"),
        "{problem}"
    );
    assert!(gets < 20, "{gets} blocks fetched");
}

/// Found by the `roundtrip` fuzz target: an empty executable file is a `File` node
/// wrapping the empty leaf, a child of 0 bytes, which the decoder must accept.
#[test]
fn regression_empty_executable_file() {
    use narfs_encoder::{encode, Layout};
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.file(b"empty-exe", true, 0, &mut &b""[..]).unwrap();
    w.end_directory().unwrap();
    let nar = w.finish().unwrap();
    let mut s = MemoryStore::new();
    let root = encode(nar.as_slice(), &Layout::default(), &mut s, None)
        .unwrap()
        .root;
    assert_eq!(decode(&s, &root, 1 << 20).unwrap(), nar);
}

#[test]
fn the_output_limit_counts_every_byte() {
    // Entry headers count too: a limit below the NAR's size fails even when the
    // file contents alone would fit.
    let mut s = MemoryStore::new();
    let file = raw(&mut s, b"");
    let root = dir(&mut s, &[("a", file), ("b", file)]);
    let full = decode(&s, &root, 1 << 20).unwrap();
    assert_eq!(decode(&s, &root, full.len() as u64).unwrap(), full);
    let e = decode(&s, &root, full.len() as u64 - 1).expect_err("one byte short");
    assert!(
        matches!(*e.problem, Problem::TooLarge(l) if l == full.len() as u64 - 1),
        "{e}"
    );
    let e = decode(&s, &file, 8).expect_err("even the magic does not fit");
    assert!(matches!(*e.problem, Problem::TooLarge(8)), "{e}");
}
