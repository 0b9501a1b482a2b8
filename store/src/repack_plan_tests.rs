//! The grouping: user summaries, the cutter's packs (merging, order, its bound), and a
//! grouped repack of a store whose items share blocks (blocks of the same users land
//! together in DAG order; killed half-way it leaves a consistent store; run again it
//! finishes, then keeps everything).

use narfs_core::block::{cid_for, BlockSink, HashAlg, DAG_PB, RAW};
use narfs_core::dagpb::{PBLink, PBNode};

use super::*;
use crate::pack_table::{self, PackInfo};
use crate::{Options, Store};

fn planned(first: u32, last: u32, pos: u64, len: u32) -> Planned {
    let mut users = Users::of(first);
    if last != first {
        users = users.with(last);
    }
    Planned {
        users,
        pos,
        len,
        pack: 0,
        cid: cid_for(RAW, HashAlg::Sha2_256, &pos.to_be_bytes()),
    }
}

/// The packs the cutter makes of `blocks`, as (group's first user, position) lists.
fn cut(blocks: Vec<Planned>, target: u64) -> Vec<Vec<(u32, u64)>> {
    let mut c = Cutter::new(blocks.into_iter().map(Ok), target);
    let mut out = Vec::new();
    while let Some(p) = c.next_pack().unwrap() {
        out.push(p.iter().map(|b| (b.users.first, b.pos)).collect());
    }
    out
}

/// `n` blocks of `len` bytes used by items `first..=last`, positions from `pos`.
fn group(first: u32, last: u32, pos: u64, n: u64, len: u32) -> Vec<Planned> {
    (pos..pos + n)
        .map(|p| planned(first, last, p, len))
        .collect()
}

#[test]
fn users_summarise_first_last_and_the_whole_set() {
    let a = Users::of(1).with(3);
    let b = Users::of(1).with(2).with(3);
    assert_eq!((a.first, a.last), (1, 3));
    assert_eq!((b.first, b.last), (1, 3));
    assert_ne!(a, b, "{{1,3}} and {{1,2,3}} are other users");
    assert_eq!(Users::of(1).with(3), a);
    // The key sorts by users, then position, and reads back.
    let p = planned(4, 9, 77, 1234);
    assert_eq!(Planned::from_key(&p.key()), Some(p.clone()));
    let q = planned(4, 9, 78, 1);
    assert!(p.key() < q.key());
    assert!(planned(5, 5, 0, 1).key() > q.key());
}

#[test]
fn small_groups_merge_into_one_pack_in_order() {
    let mut blocks = group(0, 0, 0, 1, 10);
    blocks.extend(group(0, 1, 100, 2, 10));
    blocks.extend(group(1, 1, 200, 3, 10));
    assert_eq!(
        cut(blocks, 100),
        vec![vec![
            (0, 0),
            (0, 100),
            (0, 101),
            (1, 200),
            (1, 201),
            (1, 202)
        ]]
    );
}

#[test]
fn groups_that_do_not_fit_start_their_own_pack() {
    let mut blocks = group(0, 0, 0, 6, 10);
    blocks.extend(group(0, 1, 100, 6, 10));
    let packs = cut(blocks, 100);
    assert_eq!(packs.len(), 2, "{packs:?}");
    assert!(packs[0].iter().all(|b| b.1 < 100) && packs[1].iter().all(|b| b.1 >= 100));
}

#[test]
fn a_large_group_is_cut_at_the_target_and_a_tiny_tail_joins_the_next() {
    // 11 blocks: 10 fill a pack, the 11th (10 bytes, under a quarter) rides with the
    // next group rather than alone.
    let mut blocks = group(0, 0, 0, 11, 10);
    blocks.extend(group(1, 1, 100, 5, 10));
    let packs = cut(blocks, 100);
    assert_eq!(packs.len(), 2, "{packs:?}");
    assert_eq!(packs[0].len(), 10);
    assert_eq!(packs[1][0], (0, 10));
    assert_eq!(packs[1].len(), 6);
    // A group alone: packs of the target, the rest last.
    let sizes: Vec<usize> = cut(group(3, 3, 0, 25, 10), 100)
        .iter()
        .map(Vec::len)
        .collect();
    assert_eq!(sizes, vec![10, 10, 5]);
}

#[test]
fn the_cutter_looks_ahead_at_most_one_pack() {
    // A pack of 40 bytes (a quarter of 100 reached) then a group of 100,000 blocks: the
    // cutter reads only enough of it to know it does not fit.
    let mut blocks = group(0, 0, 0, 4, 10);
    blocks.extend(group(1, 1, 1000, 100_000, 1));
    let mut c = Cutter::new(blocks.into_iter().map(Ok), 100);
    let first = c.next_pack().unwrap().unwrap();
    assert_eq!(first.len(), 4);
    assert!(c.ahead.len() <= 62, "{} blocks ahead", c.ahead.len());
    let mut most = 0;
    while c.next_pack().unwrap().is_some() {
        most = most.max(c.ahead.len());
    }
    assert!(most <= 101, "{most}");
}

/// Compressible, distinct blocks of ~2 KiB.
pub(crate) fn texts(n: usize, salt: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!("{salt} {i}: the quick brown fox jumps over the lazy dog. ")
                .repeat(40)
                .into_bytes()
        })
        .collect()
}

pub(crate) fn cids(blocks: &[Vec<u8>]) -> Vec<Cid> {
    blocks
        .iter()
        .map(|b| cid_for(RAW, HashAlg::Sha2_256, b))
        .collect()
}

/// Stores one item: a dag-pb node linking `leaves` (in that order), recorded as
/// `name`, created at `created`. Returns the root.
pub(crate) fn item(store: &Store, name: &str, created: u64, leaves: &[&[Vec<u8>]]) -> Cid {
    let mut sink = store.sink().unwrap();
    let mut links = Vec::new();
    for b in leaves.iter().flat_map(|l| l.iter()) {
        let c = cid_for(RAW, HashAlg::Sha2_256, b);
        sink.put(&c, b).unwrap();
        links.push(PBLink {
            hash: c,
            name: None,
            tsize: Some(b.len() as u64),
        });
    }
    let node = PBNode {
        links,
        data: Some(vec![8, 2]),
    }
    .encode();
    let root = cid_for(DAG_PB, HashAlg::Sha2_256, &node);
    sink.put(&root, &node).unwrap();
    let mut rec = crate::tests::record(&root, Some(name));
    rec.created = created;
    sink.finish(Some(rec)).unwrap();
    root
}

/// Three versions: each has blocks of its own; all share `all`; the last two share
/// `late`. Written with small packs mixing them as they come.
pub(crate) struct Series {
    pub(crate) own: Vec<Vec<Cid>>,
    pub(crate) all: Vec<Cid>,
    pub(crate) late: Vec<Cid>,
    pub(crate) blocks: Vec<(Cid, Vec<u8>)>,
}

pub(crate) fn series(store: &Store) -> Series {
    let own: Vec<Vec<Vec<u8>>> = (0..3).map(|i| texts(8, &format!("own{i}"))).collect();
    let all = texts(8, "all");
    let late = texts(8, "late");
    item(store, "v0", 10, &[&own[0][..4], &all, &own[0][4..]]);
    item(store, "v1", 11, &[&own[1][..4], &all, &late, &own[1][4..]]);
    item(store, "v2", 12, &[&late, &own[2], &all]);
    let mut blocks = Vec::new();
    for b in own.iter().flatten().chain(&all).chain(&late) {
        blocks.push((cid_for(RAW, HashAlg::Sha2_256, b), b.clone()));
    }
    Series {
        own: own.iter().map(|o| cids(o)).collect(),
        all: cids(&all),
        late: cids(&late),
        blocks,
    }
}

pub(crate) fn small_packs(dir: &std::path::Path) -> Store {
    Store::open_with(
        dir,
        Options {
            pack_bytes: 12 << 10,
            ..Options::default()
        },
    )
    .unwrap()
}

pub(crate) fn slot(store: &Store, cid: &Cid) -> Slot {
    let snap = store.blocks.read_txn().unwrap();
    let v = snap.view().get(&cid.to_bytes()).unwrap().unwrap();
    let head = snap.view().read_prefix(&v, MAX_PACK_VALUE, 17).unwrap();
    Slot::decode(&head).unwrap()
}

/// The ids of the store's packs.
pub(crate) fn packs_of(store: &Store) -> Vec<u64> {
    packs(store).iter().map(|p| p.id).collect()
}

fn packs(store: &Store) -> Vec<PackInfo> {
    let snap = store.blocks.read_txn().unwrap();
    pack_table::each(snap.view()).unwrap()
}

fn all_read_back(store: &Store, s: &Series) {
    for (c, b) in &s.blocks {
        assert_eq!(store.get_block(c).unwrap().as_deref(), Some(b.as_slice()));
    }
    let v = store.verify().unwrap();
    assert!(v.problems.is_empty(), "{:?}", v.problems);
}

#[test]
fn blocks_the_same_items_use_land_together_in_dag_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    let s = series(&store);
    // A target that holds one group (8 blocks of ~2.3 KiB) but not two.
    let r =
        crate::repack::grouped(&store, 19, 24 << 10, 1 << 20, crate::Scope::Full, None).unwrap();
    assert_eq!(r.items, 3);
    for g in [&s.own[0], &s.own[1], &s.own[2], &s.all, &s.late] {
        let slots: Vec<Slot> = g.iter().map(|c| slot(&store, c)).collect();
        let pack = slots[0].pack;
        assert!(slots.iter().all(|x| x.pack == pack), "{slots:?}");
        // In the first user's DAG order, and nothing else in the pack but its node.
        assert!(slots.windows(2).all(|w| w[0].offset < w[1].offset));
        let info = packs(&store).into_iter().find(|p| p.id == pack).unwrap();
        assert!(info.blocks as usize <= g.len() + 1, "{info:?}");
    }
    // Groups come by first user, then last: v0's own, then what all share.
    assert!(slot(&store, &s.own[0][0]).pack < slot(&store, &s.all[0]).pack);
    assert!(slot(&store, &s.all[0]).pack < slot(&store, &s.own[1][0]).pack);
    assert!(slot(&store, &s.own[1][0]).pack < slot(&store, &s.late[0]).pack);
    all_read_back(&store, &s);
    // Again: the same plan, every pack kept.
    let n = packs(&store).len() as u64;
    let again =
        crate::repack::grouped(&store, 19, 24 << 10, 1 << 20, crate::Scope::Full, None).unwrap();
    assert_eq!((again.packs_read, again.packs_written), (0, 0), "{again:?}");
    assert_eq!(again.packs_kept, n);
}

#[test]
fn a_plan_within_a_tiny_budget_is_the_same_plan() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    series(&store);
    let spill = tempfile::tempdir().unwrap();
    let list = |memory: usize, sub: &str| {
        let d = spill.path().join(sub);
        std::fs::create_dir(&d).unwrap();
        let snap = store.blocks.read_txn().unwrap();
        let plan = plan(&snap, &d, memory).unwrap();
        plan.blocks()
            .unwrap()
            .map(|b| b.unwrap())
            .collect::<Vec<_>>()
    };
    let (big, tiny) = (list(64 << 20, "big"), list(512, "tiny"));
    // 40 leaves and 3 nodes; some of the nodes may be stored on their own.
    assert!(big.len() >= 40, "{}", big.len());
    assert_eq!(big, tiny);
    // Spilled: the tiny budget made many runs, merged into one later (run-1 is the
    // only run a sort that fits in its buffer writes).
    let names = |sub: &str| -> Vec<String> {
        std::fs::read_dir(spill.path().join(sub))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    };
    assert_eq!(names("big/reached"), vec!["run-1"]);
    assert_ne!(names("tiny/reached"), vec!["run-1"]);
    // Combined: one record per block reached (43 blocks), not per (item, block) pair
    // (67 pairs, ~49 bytes each as they were spilled).
    let run = std::fs::metadata(spill.path().join("big/reached/run-1")).unwrap();
    assert!(run.len() < 67 * 49, "{} bytes", run.len());
}

#[test]
fn a_repack_stopped_half_way_leaves_a_consistent_store_and_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    let s = series(&store);
    let target = 24 << 10;
    let r =
        crate::repack::grouped(&store, 19, target, 1 << 20, crate::Scope::Full, Some(2)).unwrap();
    assert_eq!(r.packs_written, 2);
    // Old packs partly emptied, new ones written: every block reads back, verified,
    // and every pack's live count is what the block table says.
    all_read_back(&store, &s);
    let mut live = std::collections::HashMap::<u64, u32>::new();
    for (c, _) in &s.blocks {
        *live.entry(slot(&store, c).pack).or_default() += 1;
    }
    for p in packs(&store) {
        assert!(p.live > 0, "{p:?}");
        assert!(live.get(&p.id).copied().unwrap_or(0) <= p.live, "{p:?}");
    }
    // A killed run leaves its spill directory: the next one clears it, and removes it.
    let tmp = dir.path().join("repack-tmp");
    std::fs::create_dir_all(tmp.join("reached")).unwrap();
    std::fs::write(tmp.join("reached/run-1"), b"\x05junk").unwrap();
    let rest =
        crate::repack::grouped(&store, 19, target, 1 << 20, crate::Scope::Full, None).unwrap();
    assert!(!tmp.exists());
    assert_eq!(rest.packs_kept, 2, "{rest:?}");
    assert!(rest.packs_written > 0);
    all_read_back(&store, &s);
    assert!(packs(&store)
        .iter()
        .all(|p| p.level == 19 && p.live == p.blocks));
    let again =
        crate::repack::grouped(&store, 19, target, 1 << 20, crate::Scope::Full, None).unwrap();
    assert_eq!(again.packs_written, 0, "{again:?}");
}

/// Every pack's id and value.
fn pack_values(store: &Store) -> std::collections::BTreeMap<u64, Vec<u8>> {
    let snap = store.blocks.read_txn().unwrap();
    pack_table::each(snap.view())
        .unwrap()
        .into_iter()
        .map(|p| (p.id, pack_table::value(snap.view(), p.id).unwrap().unwrap()))
        .collect()
}

#[test]
fn an_incremental_repack_keeps_the_packs_it_wrote_and_packs_what_is_new() {
    use crate::Scope;
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    let mut s = series(&store);
    let target = 24 << 10;
    crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Full, None).unwrap();
    let before = pack_values(&store);
    // v3: blocks of its own, and half of what the others all share.
    let own3 = texts(8, "own3");
    item(&store, "v3", 13, &[&own3, &texts(8, "all")[..4]]);
    s.blocks.extend(
        own3.iter()
            .map(|b| (cid_for(RAW, HashAlg::Sha2_256, b), b.clone())),
    );
    let loose: Vec<u64> = packs(&store)
        .iter()
        .map(|p| p.id)
        .filter(|id| !before.contains_key(id))
        .collect();
    assert!(!loose.is_empty());
    // Within a loose bound, every pack written before stays, byte for byte; only
    // v3's import packs are read.
    let r = crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Incremental(100.0), None)
        .unwrap();
    assert_eq!(r.packs_read, loose.len() as u64, "{r:?}");
    assert!(r.packs_written >= 1, "{r:?}");
    assert_eq!(r.items, 4);
    assert!(r.layout_read >= r.layout_used && r.layout_used > 0, "{r:?}");
    let after = pack_values(&store);
    for (id, v) in &before {
        assert_eq!(after.get(id), Some(v), "pack {id} kept as it was");
    }
    all_read_back(&store, &s);
    assert!(packs(&store)
        .iter()
        .all(|p| p.level == 19 && p.live == p.blocks));
    // Done: again, nothing to do.
    let again =
        crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Incremental(100.0), None)
            .unwrap();
    assert_eq!((again.packs_read, again.packs_written), (0, 0), "{again:?}");
    assert_eq!(pack_values(&store), after);
    // A bound the layout exceeds: the pack v3 reads half of is replanned too (and
    // the estimate after is what the items use).
    let tight =
        crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Incremental(1.0), None).unwrap();
    assert!(tight.layout_read > tight.layout_used, "{tight:?}");
    assert_eq!(tight.layout_read_after, tight.layout_used, "{tight:?}");
    assert!(tight.packs_written >= 1, "{tight:?}");
    all_read_back(&store, &s);
    // A full repack of the same store: the plan as if from scratch.
    let full = crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Full, None).unwrap();
    assert_eq!(full.layout_read_after, 0);
    all_read_back(&store, &s);
}

#[test]
fn an_incremental_repack_stopped_half_way_leaves_a_consistent_store_and_resumes() {
    use crate::Scope;
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    let mut s = series(&store);
    let target = 12 << 10;
    crate::repack::grouped(&store, 19, target, 1 << 20, Scope::Full, None).unwrap();
    let before = pack_values(&store);
    let own3 = texts(16, "own3");
    item(&store, "v3", 13, &[&own3]);
    s.blocks.extend(
        own3.iter()
            .map(|b| (cid_for(RAW, HashAlg::Sha2_256, b), b.clone())),
    );
    let inc = Scope::Incremental(100.0);
    let r = crate::repack::grouped(&store, 19, target, 1 << 20, inc, Some(1)).unwrap();
    assert_eq!(r.packs_written, 1);
    all_read_back(&store, &s);
    let rest = crate::repack::grouped(&store, 19, target, 1 << 20, inc, None).unwrap();
    assert!(rest.packs_written >= 1, "{rest:?}");
    all_read_back(&store, &s);
    let after = pack_values(&store);
    assert!(before.iter().all(|(id, v)| after.get(id) == Some(v)));
    let again = crate::repack::grouped(&store, 19, target, 1 << 20, inc, None).unwrap();
    assert_eq!(again.packs_written, 0, "{again:?}");
}
