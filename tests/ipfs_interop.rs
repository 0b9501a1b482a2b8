//! narfs against the JavaScript IPFS stack (`interop/`, run with Node):
//! `ipfs-unixfs-importer` must give the same CID for every file, symlink and
//! directory of a tree without executables, under both CID profiles, and
//! `ipfs-unixfs-exporter` must read our CAR files back to the original tree.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn interop_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("interop")
}

/// Node and the interop packages are there; fails under CI, loud elsewhere.
fn have_js() -> bool {
    if !have("node") {
        return false;
    }
    if !interop_dir()
        .join("node_modules/ipfs-unixfs-importer")
        .exists()
    {
        if std::env::var_os("CI").is_some() {
            panic!("interop/node_modules is missing: .ci/run must `npm ci --prefix interop`");
        }
        eprintln!(
            "\n!!! SKIPPING: run `npm ci --prefix interop` to enable the JS interop tests !!!\n"
        );
        return false;
    }
    true
}

type Entries = BTreeMap<String, (String, String)>;

fn parse_entries(jsonl: &[u8]) -> Entries {
    String::from_utf8_lossy(jsonl)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().to_string(),
                (
                    v["cid"].as_str().unwrap().to_string(),
                    v["type"].as_str().unwrap().to_string(),
                ),
            )
        })
        .collect()
}

fn js_entries(dir: &Path, profile: &str) -> Entries {
    let out = run(Command::new("node")
        .arg(interop_dir().join("cids.mjs"))
        .arg(dir)
        .args(["--profile", profile]));
    parse_entries(&out.stdout)
}

/// Encodes `dir` (through its NAR) and returns narfs's entries and root CID.
fn our_entries(dir: &Path, profile: &str, car: &Path) -> (Entries, String) {
    let tmp = tempfile::tempdir().unwrap();
    let nar = tmp.path().join("t.nar");
    let list = tmp.path().join("entries.jsonl");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(dir));
    let out = run(narfs()
        .args(["encode", "--json", "--profile", profile, "--car"])
        .arg(car)
        .arg("--entries")
        .arg(&list)
        .arg(&nar));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    (
        parse_entries(&std::fs::read(&list).unwrap()),
        v["root"].as_str().unwrap().to_string(),
    )
}

/// Files of 0 bytes, exactly one chunk, one chunk + 1, a two-level tree, symlinks,
/// nested and empty directories, UTF-8 names.
fn sample_tree(root: &Path, big: bool) -> PathBuf {
    let t = root.join("sample");
    std::fs::create_dir_all(t.join("a/b/c")).unwrap();
    std::fs::create_dir(t.join("empty-dir")).unwrap();
    write(&t.join("zero"), b"", false);
    write(&t.join("small.txt"), b"hello narfs\n", false);
    write(&t.join("a/256k"), &bytes(1, 262_144), false);
    write(&t.join("a/256k+1"), &bytes(2, 262_145), false);
    write(&t.join("a/1m+1"), &bytes(3, 1_048_577), false);
    write(&t.join("a/b/c/naïve ☕"), b"unicode name", false);
    if big {
        // More than 174 × 256 KiB (and 1,024 × 1 MiB would be too slow in a test):
        // a two-level balanced tree under kubo-v1.
        write(
            &t.join("a/b/big"),
            &bytes(4, 174 * 262_144 + 300_000),
            false,
        );
    }
    symlink(b"small.txt", &t.join("link-rel"));
    symlink(b"/nix/store/xyz-dangling", &t.join("link-abs"));
    t
}

/// A directory big enough to become a HAMT shard under both profiles.
fn sharded_tree(root: &Path) -> PathBuf {
    let t = root.join("sharded");
    std::fs::create_dir(&t).unwrap();
    for i in 0..5000u32 {
        write(
            &t.join(format!("entry-with-a-fairly-long-name-{i:05}")),
            &i.to_le_bytes(),
            false,
        );
    }
    std::fs::create_dir(t.join("sub")).unwrap();
    write(&t.join("sub/x"), b"x", false);
    t
}

fn assert_entries_match(dir: &Path, profile: &str) {
    let tmp = tempfile::tempdir().unwrap();
    let car = tmp.path().join("t.car");
    let js = js_entries(dir, profile);
    let (ours, root) = our_entries(dir, profile, &car);
    assert_eq!(
        js.get("").map(|e| e.0.clone()),
        Some(root.clone()),
        "root CID differs ({profile})"
    );
    for (path, (cid, kind)) in &js {
        let mine = ours
            .get(path)
            .unwrap_or_else(|| panic!("narfs did not list {path:?}"));
        assert_eq!(
            &mine.0, cid,
            "CID of {path:?} ({kind}) differs under {profile}"
        );
    }
    assert_eq!(js.len(), ours.len(), "entry counts differ under {profile}");

    // The JS exporter reads our CAR back into the same tree, byte for byte.
    let out = tmp.path().join("exported");
    run(Command::new("node")
        .arg(interop_dir().join("export.mjs"))
        .arg(&car)
        .arg(&root)
        .arg(&out));
    let a = run(narfs().args(["nar", "dump"]).arg(dir)).stdout;
    let b = run(narfs().args(["nar", "dump"]).arg(&out)).stdout;
    assert!(
        a == b,
        "the JS exporter's tree differs from the original ({profile})"
    );
}

#[test]
fn every_cid_matches_the_js_importer_kubo_v1() {
    if !have_js() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    assert_entries_match(&sample_tree(tmp.path(), true), "kubo-v1");
}

#[test]
fn every_cid_matches_the_js_importer_unixfs_v1_2025() {
    if !have_js() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    assert_entries_match(&sample_tree(tmp.path(), false), "unixfs-v1-2025");
}

#[test]
fn hamt_shards_match_the_js_importer() {
    if !have_js() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = sharded_tree(tmp.path());
    assert_entries_match(&t, "kubo-v1");
    assert_entries_match(&t, "unixfs-v1-2025");
}

#[test]
fn executables_and_symlinks_survive_the_js_exporter() {
    if !have_js() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = awkward_tree(tmp.path(), false);
    let car = tmp.path().join("t.car");
    let (_, root) = our_entries(&t, "kubo-v1", &car);
    let out = tmp.path().join("exported");
    run(Command::new("node")
        .arg(interop_dir().join("export.mjs"))
        .arg(&car)
        .arg(&root)
        .arg(&out));
    let a = run(narfs().args(["nar", "dump"]).arg(&t)).stdout;
    let b = run(narfs().args(["nar", "dump"]).arg(&out)).stdout;
    assert!(
        a == b,
        "exported tree differs (executables or symlinks lost)"
    );
}

/// Real trees narfs has never seen (without executables, which UnixFS importers
/// don't mark): every CID equals the importer's, under both profiles.
#[test]
fn real_system_trees_match_the_js_importer() {
    if !have_js() {
        return;
    }
    let mut checked = 0;
    for dir in [
        "/usr/share/zoneinfo",
        "/usr/share/perl5",
        "/usr/lib/python3/dist-packages",
    ] {
        let dir = Path::new(dir);
        if !dir.is_dir() {
            continue;
        }
        for profile in ["kubo-v1", "unixfs-v1-2025"] {
            assert_entries_match(dir, profile);
        }
        checked += 1;
    }
    assert!(
        checked > 0,
        "none of the system trees exists on this machine"
    );
}

/// The JS importer gives exactly the checked-in vectors (tests/vectors/, Kubo's CIDs)
/// for every generated tree but the 100,000-entry one, under both profiles. (That one
/// takes the JS importer minutes; Kubo checks it in kubo_interop.)
#[test]
fn the_js_importer_gives_the_checked_in_vectors() {
    if !have_js() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for (name, _) in trees::TREES.iter().filter(|(n, _)| *n != "hamt-100000") {
        let dir = trees::build(name, tmp.path());
        for profile in ["kubo-v1", "unixfs-v1-2025"] {
            let entries: vectors::Entries = js_entries(&dir, profile)
                .into_iter()
                .map(|(path, (cid, _))| (path, cid))
                .collect();
            vectors::check(profile, name, &entries, "the JS importer");
        }
    }
}
