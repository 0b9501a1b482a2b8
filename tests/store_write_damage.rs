//! Writes on a damaged block table (`blocks/data.mdb`). LMDB's writer walks the file
//! through its own map and trusts what it finds, so the store checks the whole file
//! before the first write transaction of a process (`lmdb_file::View::check`). These
//! tests run `narfs` as a subprocess, so a fault in LMDB is a signal death, a failure,
//! not the end of the test run.
//!
//! The fixture `tests/fixtures/store-gc-dirty-page.mdb` is the file the fuzz target
//! `store_file` built from its input `store_file-gc-1`: the attrs-24.3.0 NAR encoded
//! into a fresh store, then byte 10 of page 4 (a leaf's flags) XORed with 0x10, which
//! sets `P_DIRTY`. The store's check used to ignore that bit; LMDB's writer takes a
//! page so marked for one of its own transaction's copies and changes it in place, in
//! the read-only map: SIGSEGV in `mdb_rebalance` → `mdb_node_move` → `mdb_node_del`
//! during `gc`.

mod common;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const PAGE: usize = 4096;
/// `P_DIRTY`, `P_LOOSE`, `P_KEEP`: bits LMDB sets only on pages in memory.
const IN_MEMORY_FLAGS: [u16; 3] = [0x10, 0x4000, 0x8000];

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

fn narfs(store: &Path) -> Command {
    let mut c = common::narfs();
    c.env("NARFS_STORE", store);
    c
}

/// Runs `args` on `store`; fails the test if it died by a signal.
fn run(store: &Path, args: &[&str]) -> Output {
    let out = narfs(store).args(args).output().unwrap();
    assert_eq!(
        out.status.signal(),
        None,
        "narfs {} died by a signal; stderr: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A store directory holding `data` as its block table.
fn store_with(dir: &Path, data: &[u8]) -> PathBuf {
    std::fs::create_dir_all(dir.join("blocks")).unwrap();
    std::fs::write(dir.join("blocks/data.mdb"), data).unwrap();
    dir.to_path_buf()
}

#[test]
fn gc_and_encode_refuse_the_fuzzers_dirty_page() {
    let fixture = std::fs::read(source("tests/fixtures/store-gc-dirty-page.mdb")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let attrs = source("corpus/attrs-24.1.0.nar");
    let attrs = attrs.to_str().unwrap();
    let writes: [&[&str]; 2] = [&["store", "gc"], &["encode", "--name", "x", attrs]];
    for (i, args) in writes.iter().enumerate() {
        let store = store_with(&dir.path().join(format!("damaged{i}")), &fixture);
        let out = run(&store, args);
        let err = stderr(&out);
        assert!(!out.status.success(), "narfs {args:?} succeeded");
        assert!(
            err.contains("damaged block table: page 4: header says page 4 type 0x12"),
            "narfs {args:?}: {err}"
        );
        assert_eq!(err.trim().lines().count(), 1, "one line of error: {err}");
    }
    // The same file with the bit cleared again is a store gc empties (it has no
    // roots): the refusal above is for that bit, not for the fixture as a whole.
    let mut repaired = fixture.clone();
    assert_eq!(repaired[4 * PAGE + 10], 0x12);
    repaired[4 * PAGE + 10] = 0x02;
    let store = store_with(&dir.path().join("repaired"), &repaired);
    let out = run(&store, &["store", "gc"]);
    assert!(out.status.success(), "gc: {}", stderr(&out));
    let out = run(&store, &["store", "stats"]);
    assert!(out.status.success(), "stats: {}", stderr(&out));
}

/// Each page a tree reaches, with each bit LMDB keeps for pages in memory set on it:
/// gc (which deletes every block, the roots being removed) and verify agree, both
/// refuse the file, and nothing dies by a signal.
#[test]
fn writes_refuse_every_page_marked_with_an_in_memory_flag() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    for (name, nar) in [("a", "attrs-24.3.0.nar"), ("t", "tzdata-2024.2.nar")] {
        let nar = source(&format!("corpus/{nar}"));
        common::run(narfs(&base).args(["encode", "--name", name]).arg(nar));
    }
    for name in ["a", "t"] {
        common::run(narfs(&base).args(["store", "rm", name]));
    }
    let data = std::fs::read(base.join("blocks/data.mdb")).unwrap();
    // Pages whose header names the page itself and a tree page's type: branch,
    // leaf, or the first of a value's overflow pages.
    let pages: Vec<usize> = (2..data.len() / PAGE)
        .filter(|&p| {
            let h = &data[p * PAGE..p * PAGE + 12];
            let flags = u16::from_le_bytes([h[10], h[11]]);
            u64::from_le_bytes(h[..8].try_into().unwrap()) == p as u64 && [1, 2, 4].contains(&flags)
        })
        .collect();
    assert!(pages.len() > 10, "{} tree pages", pages.len());
    let mut refused = 0;
    for &p in &pages {
        for bit in IN_MEMORY_FLAGS {
            let case = dir.path().join("case");
            let _ = std::fs::remove_dir_all(&case);
            std::fs::create_dir_all(&case).unwrap();
            let mut damaged = data.clone();
            let flags = u16::from_le_bytes([damaged[p * PAGE + 10], damaged[p * PAGE + 11]]);
            damaged[p * PAGE + 10..p * PAGE + 12].copy_from_slice(&(flags | bit).to_le_bytes());
            let store = store_with(&case, &damaged);
            let verify = run(&store, &["store", "verify"]);
            let gc = run(&store, &["store", "gc"]);
            let what = format!("page {p}, flag {bit:#x}");
            assert_eq!(
                verify.status.success(),
                gc.status.success(),
                "{what}: verify and gc disagree: {} / {}",
                stderr(&verify),
                stderr(&gc)
            );
            if !gc.status.success() {
                assert!(
                    stderr(&gc).contains("damaged block table"),
                    "{what}: {}",
                    stderr(&gc)
                );
                refused += 1;
            }
        }
    }
    // A page no tree reaches (freed by the second encode) is no damage to refuse;
    // every page a tree reaches is. Most of these pages are reached.
    eprintln!(
        "{} pages × {} flags: {refused} refused",
        pages.len(),
        IN_MEMORY_FLAGS.len()
    );
    assert!(
        refused * 2 > pages.len() * IN_MEMORY_FLAGS.len(),
        "only {refused} refused"
    );
}
