//! `narfs store compact`: after a large gc the block table's file shrinks to what the
//! remaining roots need, every root still decodes byte-exact and verifies; refused
//! while a `narfs serve` has the store open.

mod common;

use common::ok;
mod serve_support;

use std::path::Path;

use serde_json::Value;
use serve_support::{narfs, Server};

fn json(store: &Path, args: &[&str]) -> Value {
    let out = ok(narfs().args(args).arg("--json").arg("--store").arg(store));
    serde_json::from_slice(&out).expect("JSON")
}

/// A tree of `mib` MiB of incompressible bytes in one file, encoded as `name`.
fn encode(store: &Path, dir: &Path, name: &str, seed: u64, mib: usize) -> Vec<u8> {
    let tree = dir.join(name);
    std::fs::create_dir(&tree).unwrap();
    common::write(&tree.join("data"), &common::bytes(seed, mib << 20), false);
    ok(narfs()
        .args(["encode", "--name", name, "--store"])
        .arg(store)
        .arg(&tree));
    ok(narfs().args(["nar", "dump"]).arg(&tree))
}

#[test]
fn compact_shrinks_the_file_after_a_large_gc_and_keeps_every_root() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let small = encode(&store, dir.path(), "small", 1, 1);
    encode(&store, dir.path(), "big", 2, 24);
    let full = json(&store, &["store", "stats"])["file_bytes"]
        .as_u64()
        .unwrap();
    assert!(full > 25 << 20, "{full}");

    ok(narfs().args(["store", "rm", "big", "--store"]).arg(&store));
    let gc = json(&store, &["store", "gc"]);
    assert!(gc["removed_bytes"].as_u64().unwrap() >= 24 << 20, "{gc}");
    let after_gc = json(&store, &["store", "stats"])["file_bytes"]
        .as_u64()
        .unwrap();
    assert!(after_gc >= full, "gc alone does not shrink the file");

    // Refused while another process has the store open; the file is untouched.
    let server = Server::start(&store);
    let out = narfs()
        .args(["store", "compact", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("open in another process"), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    drop(server);

    let r = json(&store, &["store", "compact"]);
    let (before, after) = (
        r["bytes_before"].as_u64().unwrap(),
        r["bytes_after"].as_u64().unwrap(),
    );
    assert_eq!(before, after_gc);
    assert!(after < 4 << 20, "{r}");
    let stats = json(&store, &["store", "stats"]);
    assert_eq!(stats["file_bytes"].as_u64().unwrap(), after);
    assert_eq!(stats["roots"], 1);

    // The compacted file is a whole store: decode, verify, write again.
    let decoded = ok(narfs().args(["decode", "small", "--store"]).arg(&store));
    assert!(decoded == small, "small decodes byte-exact");
    ok(narfs().args(["store", "verify", "--store"]).arg(&store));
    let again = encode(&store, dir.path(), "again", 3, 1);
    let decoded = ok(narfs().args(["decode", "again", "--store"]).arg(&store));
    assert!(decoded == again);
    ok(narfs().args(["store", "verify", "--store"]).arg(&store));
}
