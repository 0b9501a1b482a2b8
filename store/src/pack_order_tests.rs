//! The record's form (roundtrip, damage, bound, version), what `repack` records (each
//! item's packs in first-use order, dropped with the item, back with it), and the
//! read-ahead following it (a window past the reader, a lying record costing nothing).

use narfs_core::block::BlockSource;
use proptest::prelude::*;

use super::*;
use crate::pack_cache::AHEAD_PACKS;
use crate::read_ahead::{follow, wait_idle};
use crate::repack_plan::tests::{item, series, small_packs, texts, Series};
use crate::Store;

proptest! {
    #[test]
    fn a_record_reads_back_as_written(packs in proptest::collection::vec(any::<u64>(), 0..300)) {
        prop_assert_eq!(decode(&encode(&packs)).unwrap(), packs);
    }

    #[test]
    fn a_damaged_record_is_refused(
        packs in proptest::collection::vec(0u64..5000, 1..100),
        at in any::<usize>(),
        bit in 0u8..8,
    ) {
        let mut b = encode(&packs);
        let i = at % b.len();
        b[i] ^= 1 << bit;
        prop_assert!(decode(&b).is_err());
    }
}

#[test]
fn records_are_small_bounded_and_versioned() {
    // A grouped store's order: mostly the next pack, some jumps back.
    let packs: Vec<u64> = (1000..1100).chain([40, 41, 1100]).collect();
    let b = encode(&packs);
    assert!(b.len() < packs.len() + 20, "{} bytes", b.len());
    let long: Vec<u64> = (0..MAX_PACKS as u64 + 10).collect();
    assert_eq!(decode(&encode(&long)).unwrap().len(), MAX_PACKS);
    let mut v2 = b.clone();
    v2[0] = 2;
    assert_eq!(decode(&v2), Err(OrderError::Version(2)));
    assert!(decode(&b[..b.len() - 1]).is_err());
    assert!(decode(&[]).is_err());
}

/// The packs of `cids` in order, each once (blocks stored on their own skipped).
fn first_use(store: &Store, cids: &[Cid]) -> Vec<u64> {
    let snap = store.blocks.read_txn().unwrap();
    let mut out = Vec::new();
    for c in cids {
        if let Some(p) = snap.reader().pack_of_cid(c) {
            if !out.contains(&p) {
                out.push(p);
            }
        }
    }
    out
}

/// A grouped repack into small packs (below `repack`'s 64 KiB floor: one group
/// each), then the records, as `repack` writes them.
fn repack_small(store: &Store) -> (u64, u64) {
    crate::repack::grouped(store, 19, 24 << 10, 1 << 20, crate::Scope::Full, None).unwrap();
    record_all(&store.blocks).unwrap()
}

/// Packs decompressed so far in this process.
fn unpacked(store: &Store) -> u64 {
    store.packs_read().0
}

fn recorded(store: &Store, root: &Cid) -> Option<Vec<u64>> {
    read(&store.blocks.read_txn().unwrap(), root)
}

#[test]
fn repack_records_each_items_packs_in_first_use_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    let s = series(&store);
    let roots: Vec<Cid> = store
        .roots()
        .unwrap()
        .iter()
        .map(|r| r.cid().unwrap())
        .collect();
    assert_eq!(roots.len(), 3);
    // Not recorded before a repack.
    assert!(roots.iter().all(|r| recorded(&store, r).is_none()));
    let r = store.repack_to(19, 24 << 10).unwrap();
    assert_eq!(r.orders, 3, "{r:?}");
    assert!(r.order_bytes > 0 && r.order_bytes < 3 * 40, "{r:?}");
    let (n, bytes) = repack_small(&store);
    assert_eq!(n, 3);
    assert!(bytes < 3 * 40, "{bytes}");
    // v1: its node, then its leaves in link order (own[1][..4], all, late, own[1][4..]).
    let v1 = store.find_roots("v1").unwrap()[0].cid().unwrap();
    let mut walk = vec![v1];
    walk.extend(&s.own[1][..4]);
    walk.extend(&s.all);
    walk.extend(&s.late);
    walk.extend(&s.own[1][4..]);
    let want = first_use(&store, &walk);
    assert!(want.len() >= 3, "{want:?}");
    assert_eq!(recorded(&store, &v1), Some(want.clone()));
    // Compaction keeps the records; verify finds nothing wrong.
    store.compact().unwrap();
    let store = small_packs(dir.path());
    assert_eq!(recorded(&store, &v1), Some(want));
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn a_removed_item_loses_its_record_at_the_next_repack_and_gets_it_back_re_added() {
    let dir = tempfile::tempdir().unwrap();
    let store = small_packs(dir.path());
    series(&store);
    repack_small(&store);
    let v0 = store.find_roots("v0").unwrap()[0].cid().unwrap();
    assert!(recorded(&store, &v0).is_some());
    store.remove_roots("v0").unwrap();
    store.gc().unwrap();
    // Still there (stale) until a repack: harmless, its packs read ahead or skipped.
    assert!(recorded(&store, &v0).is_some());
    assert_eq!(repack_small(&store).0, 2);
    assert_eq!(recorded(&store, &v0), None);
    // The same item again: the same root, a record again after the next repack.
    let own0 = texts(8, "own0");
    let all = texts(8, "all");
    let again = item(&store, "v0", 20, &[&own0[..4], &all, &own0[4..]]);
    assert_eq!(again, v0);
    repack_small(&store);
    let mut walk = vec![v0];
    walk.extend(crate::repack_plan::tests::cids(&own0[..4]));
    walk.extend(crate::repack_plan::tests::cids(&all));
    walk.extend(crate::repack_plan::tests::cids(&own0[4..]));
    assert_eq!(recorded(&store, &v0), Some(first_use(&store, &walk)));
    for b in s_blocks(&store) {
        assert!(store.get_block(&b).unwrap().is_some());
    }
    assert!(store.verify().unwrap().problems.is_empty());
}

/// Every block of every root, through the store (each read verifies it).
fn s_blocks(store: &Store) -> Vec<Cid> {
    let mut out = Vec::new();
    store.blocks.each_info(|i| out.push(i.cid)).unwrap();
    out
}

/// The series in a store repacked with small packs, then opened again: a fresh
/// process's cache, nothing decompressed yet.
fn repacked_then_reopened(dir: &std::path::Path) -> (Store, Series) {
    let store = small_packs(dir);
    let s = series(&store);
    repack_small(&store);
    drop(store);
    (small_packs(dir), s)
}

#[test]
fn a_followed_order_is_read_ahead_a_window_past_the_reader() {
    let dir = tempfile::tempdir().unwrap();
    let (store, s) = repacked_then_reopened(dir.path());
    let v1 = store.find_roots("v1").unwrap()[0].cid().unwrap();
    let order = recorded(&store, &v1).unwrap();
    assert!(order.len() > WINDOW, "{order:?}");
    // Before any read: the first WINDOW packs.
    follow(&store.blocks, v1, order.clone());
    wait_idle(&store.blocks);
    assert_eq!(unpacked(&store), WINDOW as u64);
    assert_eq!(store.blocks.cache.held().1, order[..WINDOW]);
    // A reader in the first pack (the node is stored on its own, its first leaf in the
    // first pack): the window moves one on (an empty hint starts the job).
    store.get_block(&v1).unwrap().unwrap();
    assert_eq!(first_use(&store, &s.own[1][..1]), order[..1]);
    store.get_block(&s.own[1][0]).unwrap().unwrap();
    store.will_need(&[]);
    wait_idle(&store.blocks);
    assert_eq!(unpacked(&store), WINDOW as u64 + 1);
    assert!(store.blocks.cache.held().1.contains(&order[WINDOW]));
    // Read in the DAG's order, every pack is decompressed once, none by a reader.
    for c in s.own[1][..4]
        .iter()
        .chain(&s.all)
        .chain(&s.late)
        .chain(&s.own[1][4..])
    {
        store.get_block(c).unwrap().unwrap();
        store.will_need(&[]);
        wait_idle(&store.blocks);
    }
    assert_eq!(unpacked(&store), order.len() as u64);
    assert_eq!(store.pack_waits().0, 0);
}

#[test]
fn a_lying_order_costs_a_bounded_few_decompressions_never_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (store, s) = repacked_then_reopened(dir.path());
    let v2 = store.find_roots("v2").unwrap()[0].cid().unwrap();
    // Packs that do not exist: nothing read, nothing held.
    follow(&store.blocks, v2, (1 << 40..(1 << 40) + 50).collect());
    wait_idle(&store.blocks);
    assert_eq!(store.packs_read().0, 0);
    // Real packs in a wrong order: at most the window before any read.
    let mut all: Vec<u64> = crate::repack_plan::tests::packs_of(&store);
    all.reverse();
    follow(&store.blocks, v2, all);
    wait_idle(&store.blocks);
    assert!(store.packs_read().0 <= WINDOW.max(AHEAD_PACKS) as u64);
    for (c, b) in &s.blocks {
        assert_eq!(store.get_block(c).unwrap().as_deref(), Some(b.as_slice()));
    }
}
