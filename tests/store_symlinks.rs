//! Symbolic links planted at every path the store touches (`tmp`, `roots`, `blocks`,
//! an old-layout shard `blocks/XY` and a block file in it, LMDB's `data.mdb` and
//! `lock.mdb`, the store's `lock`, a root record): every command that opens the store
//! fails with a clear error, and what the link points to is neither read into the
//! store, written, nor deleted. Also `decode -o DIR` / `nar dump -o DIR` on an existing
//! directory: an error before any work, and no temporary file left behind.

mod common;

use common::corpus;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use narfs_core::block::{cid_for, HashAlg, RAW};

fn narfs(store: &Path) -> Command {
    let mut c = common::narfs();
    c.env("NARFS_STORE", store);
    c
}

/// Every file under `dir` with its bytes (links as their target), to compare before/after.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            if m.is_dir() {
                stack.push(p.clone());
                out.insert(p, b"dir".to_vec());
            } else if m.file_type().is_symlink() {
                let t = std::fs::read_link(&p).unwrap();
                out.insert(p, t.into_os_string().into_encoded_bytes());
            } else {
                out.insert(p.clone(), std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// A store with one NAR, and beside it an `outside` directory holding what a
/// planted link points to: a valid old-layout block file and a copy of a record.
fn setup(dir: &Path) -> (PathBuf, PathBuf) {
    let store = dir.join("store");
    common::run(
        narfs(&store)
            .args(["encode", "--name", "a"])
            .arg(corpus("attrs-24.3.0.nar")),
    );
    let outside = dir.join("outside");
    std::fs::create_dir_all(outside.join("shard")).unwrap();
    let block = b"a block someone else owns".to_vec();
    let cid = cid_for(RAW, HashAlg::Sha2_256, &block);
    std::fs::write(outside.join("shard").join(cid.to_string()), &block).unwrap();
    // A record as an older store kept it in roots/ (`store ls --json` prints that form).
    let record = common::run(narfs(&store).args(["store", "ls", "--json"])).stdout;
    std::fs::write(outside.join("record.json"), record).unwrap();
    std::fs::write(outside.join("file"), b"keep me").unwrap();
    (store, outside)
}

/// Replaces `at` (inside the store) by a link to `target`.
fn plant(at: &Path, target: &Path) {
    match std::fs::symlink_metadata(at) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(at).unwrap(),
        Ok(_) => std::fs::remove_file(at).unwrap(),
        Err(_) => {}
    }
    // `roots/` of an older store, for a link planted inside it.
    std::fs::create_dir_all(at.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(target, at).unwrap();
}

#[test]
fn a_link_anywhere_in_the_store_is_refused_and_its_target_untouched() {
    // (path in the store, what it points to, relative to `outside`)
    let cases: &[(&str, &str)] = &[
        ("tmp", ""),
        ("roots", ""),
        ("blocks", ""),
        ("blocks/ab", "shard"),
        ("blocks/data.mdb", "file"),
        ("blocks/lock.mdb", "file"),
        ("lock", "file"),
        ("lock", "not-yet"),
        ("roots/planted.json", "record.json"),
    ];
    let commands: &[&[&str]] = &[
        &["store", "ls"],
        &["store", "gc"],
        &["store", "verify"],
        &["decode", "a"],
    ];
    for (at, target) in cases {
        for args in commands {
            let dir = tempfile::tempdir().unwrap();
            let (store, outside) = setup(dir.path());
            let target = if target.is_empty() {
                outside.clone()
            } else {
                outside.join(target)
            };
            plant(&store.join(at), &target);
            let before = snapshot(&outside);
            let out = narfs(&store).args(*args).output().unwrap();
            let what = format!("link at {at}, narfs {}", args.join(" "));
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "{what}: exit 0");
            assert!(
                stderr.contains("symbolic link") && stderr.trim_end().lines().count() == 1,
                "{what}: {stderr}"
            );
            assert_eq!(
                snapshot(&outside),
                before,
                "{what}: the link's target changed"
            );
        }
    }
    // A link inside an old-layout shard: the shard itself is the store's, the file not.
    let dir = tempfile::tempdir().unwrap();
    let (store, outside) = setup(dir.path());
    std::fs::create_dir(store.join("blocks/cd")).unwrap();
    let block = std::fs::read_dir(outside.join("shard"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    plant(
        &store.join("blocks/cd").join(block.file_name()),
        &block.path(),
    );
    let before = snapshot(&outside);
    let out = narfs(&store).args(["store", "ls"]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("symbolic link"));
    assert_eq!(snapshot(&outside), before);
}

#[test]
fn output_onto_an_existing_directory_fails_first_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    common::run(
        narfs(&store)
            .args(["encode", "--name", "a"])
            .arg(corpus("attrs-24.3.0.nar")),
    );
    let target = dir.path().join("out");
    std::fs::create_dir(&target).unwrap();
    let tree = dir.path().join("tree");
    common::run(
        narfs(&store)
            .args(["nar", "restore"])
            .arg(corpus("attrs-24.3.0.nar"))
            .arg(&tree),
    );
    // Names beside and inside the target: where a temporary file would stay behind.
    let names = |d: &Path| -> Vec<std::ffi::OsString> {
        let mut v: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        v.sort();
        v
    };
    let before = (names(dir.path()), names(&target));
    let runs: [Vec<std::ffi::OsString>; 2] = [
        vec![
            "decode".into(),
            "a".into(),
            "-o".into(),
            target.clone().into(),
        ],
        vec![
            "nar".into(),
            "dump".into(),
            tree.clone().into(),
            "-o".into(),
            target.clone().into(),
        ],
    ];
    for args in runs {
        let out = narfs(&store).args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}: exit 0");
        assert!(stderr.contains("is a directory"), "{args:?}: {stderr}");
        let after = (names(dir.path()), names(&target));
        assert_eq!(after, before, "{args:?} left something behind");
    }
}
