//! verify limited to roots, and resumed from its checkpoint.

use std::sync::Mutex;

use narfs_core::block::{cid_for, HashAlg, RAW};

use super::*;
use crate::blocks;
use crate::tests::{dag, raw_store, record};

/// Roots "r0".."r{n-1}", each over a leaf of its own.
fn fill(store: &Store, n: usize) {
    for i in 0..n {
        let mut sink = store.sink().unwrap();
        let own = format!("leaf {i}");
        let root = dag(&mut sink, &[own.as_bytes()]);
        sink.finish(Some(record(&root, Some(&format!("r{i}")))))
            .unwrap();
    }
}

fn options(roots: &[&str], resume: bool) -> VerifyOptions {
    VerifyOptions {
        roots: roots.iter().map(|s| s.to_string()).collect(),
        resume,
    }
}

#[test]
fn limited_to_roots_checks_only_what_they_reach() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 4);
    // Damage outside r1's DAG: r2's leaf missing, an orphan that does not hash.
    blocks::overwrite(
        &store.blocks,
        &cid_for(RAW, HashAlg::Sha2_256, b"leaf 2"),
        None,
    );
    let orphan = cid_for(RAW, HashAlg::Sha2_256, b"orphan");
    blocks::overwrite(&store.blocks, &orphan, Some(b"\0not the orphan"));

    let checked = Mutex::new(Vec::new());
    let check = |_: &Store, r: &RootRecord| {
        checked.lock().unwrap().push(r.name.clone().unwrap());
        Ok(())
    };
    let r1 = store.find_roots("r1").unwrap()[0].root.clone();
    // By name and by CID: one root, checked once.
    let report = store
        .verify_some(&options(&["r1", &r1], false), check)
        .unwrap();
    assert_eq!((report.blocks, report.roots), (0, 1));
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(*checked.lock().unwrap(), ["r1"]);

    let report = store.verify_some(&options(&["r2"], false), check).unwrap();
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("root r2: block "));

    assert!(matches!(
        store.verify_some(&options(&["nope"], false), check),
        Err(Error::UnknownRoot(n)) if n == "nope"
    ));
    // The whole store finds both.
    assert_eq!(store.verify().unwrap().problems.len(), 2);
}

/// A run killed in the roots phase (a panic in the check, here) leaves a checkpoint;
/// `resume` checks only the roots after it, and reports all of them in its counts.
#[test]
fn an_interrupted_run_resumes_after_the_last_chunk_done() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 9);
    let mut order = Vec::new();
    store.each_root(|r| order.push(r.name.unwrap())).unwrap();
    let stop = order[5].clone();
    let failed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        store.verify_some(&VerifyOptions::default(), |_, r| {
            assert_ne!(r.name.as_deref(), Some(stop.as_str()), "interrupted");
            Ok(())
        })
    }));
    assert!(failed.is_err());
    assert!(dir.path().join(CHECKPOINT).exists());

    let checked = Mutex::new(Vec::new());
    let report = store
        .verify_some(&options(&[], true), |_, r| {
            checked.lock().unwrap().push(r.name.clone().unwrap());
            Ok(())
        })
        .unwrap();
    let mut checked = checked.into_inner().unwrap();
    checked.sort();
    // Chunks of 2 roots: the first two chunks (4 roots) were done before the stop.
    let mut rest = order[4..].to_vec();
    rest.sort();
    assert_eq!(checked, rest);
    assert_eq!((report.roots, report.blocks), (9, 18));
    assert!(report.problems.is_empty());
    assert!(
        !dir.path().join(CHECKPOINT).exists(),
        "a finished run removes it"
    );

    // Another selection than the checkpoint's is refused.
    std::fs::write(
        dir.path().join(CHECKPOINT),
        r#"{"selection":["r1"],"phase":"roots","after":"","blocks":0,"roots":0,"problems":[],"problems_total":0}"#,
    )
    .unwrap();
    assert!(matches!(
        store.verify_some(&options(&[], true), |_, _| Ok(())),
        Err(Error::OtherCheckpoint { .. })
    ));
    std::fs::write(dir.path().join(CHECKPOINT), b"{not json").unwrap();
    assert!(matches!(
        store.verify_some(&options(&[], true), |_, _| Ok(())),
        Err(Error::Checkpoint { .. })
    ));
    // Without resume, a checkpoint is ignored and replaced.
    assert_eq!(store.verify().unwrap().roots, 9);
}

/// The blocks phase resumes after the checkpoint's key: damage before it is not seen
/// again, damage after it is.
#[test]
fn the_blocks_phase_resumes_after_the_checkpoint_key() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    fill(&store, 5);
    let keys: Vec<Vec<u8>> = store
        .blocks()
        .unwrap()
        .iter()
        .map(|b| b.cid.to_bytes())
        .collect();
    assert_eq!(keys.len(), 10);
    let orphan_before = Cid::try_from(keys[1].as_slice()).unwrap();
    let orphan_after = Cid::try_from(keys[8].as_slice()).unwrap();
    // Tamper one block before the checkpoint key and one after (both raw or dag-pb).
    blocks::overwrite(&store.blocks, &orphan_before, Some(b"\0x"));
    blocks::overwrite(&store.blocks, &orphan_after, Some(b"\0y"));
    let cp = Checkpoint {
        after: hex(&keys[3]),
        blocks: 4,
        ..Checkpoint::default()
    };
    std::fs::write(
        dir.path().join(CHECKPOINT),
        serde_json::to_vec(&cp).unwrap(),
    )
    .unwrap();
    let report = store
        .verify_some(&options(&[], true), |_, _| Ok(()))
        .unwrap();
    assert_eq!(report.blocks, 10);
    let hashed: Vec<_> = report
        .problems
        .iter()
        .filter(|p| !p.starts_with("root "))
        .collect();
    assert_eq!(hashed.len(), 1, "{:?}", report.problems);
    assert!(hashed[0].contains(&orphan_after.to_string()), "{hashed:?}");
}
