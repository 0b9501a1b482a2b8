//! gc in bounded memory: the mark spills sorted runs, the sweep is a merge-join in
//! batches, and the result is exactly "what the roots reach".

use std::collections::HashSet;

use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
use narfs_core::dagpb::PBNode;

use crate::blocks;
use crate::tests::{dag, raw_store, record};
use crate::{Error, Store};

/// `n` items, each a node over a leaf of its own and one leaf shared by all; and
/// `orphans` blocks no root reaches. Returns the items' roots.
fn fill(store: &Store, n: usize, orphans: usize) -> Vec<narfs_core::Cid> {
    let mut roots = Vec::new();
    let session = store.session().unwrap();
    for i in 0..n {
        let mut sink = session.sink();
        let own = format!("item {i}");
        let root = dag(&mut sink, &[b"shared by all", own.as_bytes()]);
        sink.finish(Some(record(&root, Some(&format!("i{i}")))))
            .unwrap();
        roots.push(root);
    }
    let mut sink = session.sink();
    for i in 0..orphans {
        let b = format!("orphan {i}");
        sink.put(&cid_for(RAW, HashAlg::Sha2_256, b.as_bytes()), b.as_bytes())
            .unwrap();
    }
    sink.finish(None).unwrap();
    session.close().unwrap();
    roots
}

/// What the roots reach, the plain way (a set in memory).
fn reachable(store: &Store) -> HashSet<narfs_core::Cid> {
    let mut seen = HashSet::new();
    for r in store.roots().unwrap() {
        let mut stack = vec![r.cid().unwrap()];
        while let Some(c) = stack.pop() {
            if seen.insert(c) && c.codec() == narfs_core::block::DAG_PB {
                let node = PBNode::decode(&store.get_block(&c).unwrap().unwrap()).unwrap();
                stack.extend(node.links.iter().map(|l| l.hash));
            }
        }
    }
    seen
}

#[test]
fn a_tiny_budget_spills_runs_and_keeps_exactly_what_roots_reach() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 40, 25);
    for i in (0..40).step_by(3) {
        store.remove_roots(&format!("i{i}")).unwrap();
    }
    let live = reachable(&store);
    let before: Vec<_> = store.blocks().unwrap();
    let dead = before.iter().filter(|b| !live.contains(&b.cid)).count() as u64;
    assert!(dead > 25, "removed roots leave blocks of their own");

    let report = store.gc_within(1024).unwrap();
    assert!(report.spilled_runs > 1, "{report:?}");
    assert_eq!(report.live_blocks, live.len() as u64);
    assert_eq!(report.kept_blocks, live.len() as u64);
    assert_eq!(report.removed_blocks, dead);
    let after: HashSet<_> = store.blocks().unwrap().into_iter().map(|b| b.cid).collect();
    assert_eq!(after, live);
    assert!(store.verify().unwrap().problems.is_empty());
    assert!(
        !dir.path().join("gc-tmp").exists(),
        "the spill dir is removed"
    );

    // Nothing left to collect: a second gc removes nothing.
    let again = store.gc_within(1024).unwrap();
    assert_eq!(
        (again.removed_blocks, again.kept_blocks),
        (0, live.len() as u64)
    );
}

#[test]
fn a_missing_leaf_found_by_the_join_refuses_and_deletes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 5, 4);
    // A raw leaf is never looked up by the walk: the join finds it missing.
    let leaf = cid_for(RAW, HashAlg::Sha2_256, b"item 3");
    blocks::overwrite(&store.blocks, &leaf, None);
    let before = store.blocks().unwrap().len();
    match store.gc_within(1024) {
        Err(Error::Refused(m)) => assert!(m.contains(&format!("{leaf} is missing")), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(store.blocks().unwrap().len(), before);
}

#[test]
fn a_leftover_spill_dir_of_a_killed_gc_is_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 3, 2);
    std::fs::create_dir(dir.path().join("gc-tmp")).unwrap();
    std::fs::write(dir.path().join("gc-tmp/run-1"), b"\x05junk").unwrap();
    let r = store.gc().unwrap();
    assert_eq!(r.removed_blocks, 2);
    assert!(!dir.path().join("gc-tmp").exists());
}

/// A root an import records while gc waits is never collected: gc takes the store
/// lock exclusively, a session holds it shared from its first block to its record.
#[test]
fn gc_waits_for_a_session_and_keeps_what_it_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    let session = store.session().unwrap();
    let mut sink = session.sink();
    let root = dag(&mut sink, &[b"written during gc"]);
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|s| {
        let gc = s.spawn(|| {
            let r = store.gc().unwrap();
            done.store(true, std::sync::atomic::Ordering::SeqCst);
            r
        });
        std::thread::sleep(std::time::Duration::from_millis(300));
        assert!(
            !done.load(std::sync::atomic::Ordering::SeqCst),
            "gc ran under a session"
        );
        sink.finish(Some(record(&root, Some("late")))).unwrap();
        session.close().unwrap();
        let r = gc.join().unwrap();
        assert_eq!((r.kept_blocks, r.removed_blocks), (2, 0));
    });
    assert!(store.contains(&root).unwrap());
}
