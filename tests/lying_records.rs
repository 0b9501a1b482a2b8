//! Lying root records (issue 13, class 1): a record whose root CID was changed to
//! another NAR's, whose NarSize is 16 bytes short, or whose NarHash is another's.
//!
//! Records come in two kinds (ARCHITECTURE.md, "NarHash is checked where a record is
//! written"). An unsealed record (an older store's: planted here as a `roots/*.json`
//! file that the next open moves into the table) is hashed as it decodes: for each lie,
//! `decode` fails with no output file (or tree), `decode` to stdout exits non-zero
//! short of the recorded size, `verify` reports the root, and `serve` cuts
//! `/nar/<cid>.nar` short of its `Content-Length` (a raw client and curl both see it
//! incomplete). A sealed record (what narfs writes now) whose stored bytes were
//! changed fails its checksum and is refused by all of them; one that lies with a
//! valid checksum (only a writer breaking `record_root`'s contract makes one) is
//! reported by `verify` and refused by `decode --check-nar-hash`, and its NarSize is
//! still checked by every consumer. An untampered store passes every one of these
//! checks, so they can fail.

mod common;
mod serve_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use serve_support::{get, nar_of, Server};

/// Two NARs of the same length (only their hashes tell them apart), encoded into a
/// fresh store as `a` and `b`.
struct Fixture {
    _tmp: tempfile::TempDir,
    store: PathBuf,
    work: PathBuf,
    /// (name, root CID, NAR) of `a` and `b`.
    roots: [(String, String, Vec<u8>); 2],
}

fn narfs() -> Command {
    common::narfs()
}

fn fixture(fallback: bool) -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).unwrap();
    let mut roots = Vec::new();
    for (seed, name) in [(1, "a"), (2, "b")] {
        let t = tmp.path().join(format!("tree-{name}"));
        std::fs::create_dir_all(t.join("lib")).unwrap();
        common::write(&t.join("lib/data"), &common::bytes(seed, 700_000), false);
        common::write(&t.join("run"), b"#!/bin/sh\n", true);
        common::symlink(b"lib/data", &t.join("link"));
        let nar = nar_of(&t);
        let mut cmd = narfs();
        cmd.arg("encode")
            .arg(&t)
            .args(["--name", name, "--json", "--store"])
            .arg(&store);
        if fallback {
            cmd.arg("--fallback");
        }
        let out = common::run(&mut cmd);
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        roots.push((
            name.to_string(),
            v["root"].as_str().unwrap().to_string(),
            nar,
        ));
    }
    assert_eq!(roots[0].2.len(), roots[1].2.len());
    Fixture {
        _tmp: tmp,
        store,
        work,
        roots: roots.try_into().unwrap(),
    }
}

/// The record of root `name`, as JSON, edited.
fn edited(s: &narfs_store::Store, name: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let rec = s
        .find_roots(name)
        .unwrap()
        .pop()
        .expect("a record of that name");
    let mut v = serde_json::to_value(&rec).unwrap();
    edit(&mut v);
    v
}

/// Replaces the record of root `name` by an edited one in the form of an older store
/// (a `roots/*.json` file, as a hand edit would leave it), which the next open moves
/// into the table unsealed: its NarHash is checked as it decodes.
fn edit_record(store: &Path, name: &str, edit: impl FnOnce(&mut Value)) {
    {
        let s = narfs_store::Store::open(store).unwrap();
        let v = edited(&s, name, edit);
        s.remove_roots(name).unwrap();
        std::fs::create_dir_all(store.join("roots")).unwrap();
        std::fs::write(store.join("roots/lie.json"), v.to_string()).unwrap();
    }
    let s = narfs_store::Store::open(store).unwrap();
    let moved = s.find_roots(name).unwrap();
    assert!(moved.len() == 1 && !moved[0].sealed, "{moved:?}");
}

/// Rewrites the record of root `name` through the store's own API, as a writer that
/// breaks `record_root`'s contract (a NarHash it did not compute) would: sealed.
fn forge_record(store: &Path, name: &str, edit: impl FnOnce(&mut Value)) {
    let s = narfs_store::Store::open(store).unwrap();
    let v = edited(&s, name, edit);
    let lied: narfs_store::RootRecord = serde_json::from_value(v).unwrap();
    s.remove_roots(name).unwrap();
    s.record_root(&lied).unwrap();
    assert!(s.find_roots(name).unwrap()[0].sealed);
}

fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// What each consumer made of root `name` (served as `/nar/<cid>.nar`), whose record
/// says `recorded` bytes.
#[derive(Debug)]
struct Seen {
    decode_file: Option<Vec<u8>>,
    decode_ok: bool,
    decode_err: String,
    stdout_ok: bool,
    stdout_len: usize,
    to_dir_ok: bool,
    to_dir_exists: bool,
    leftovers: Vec<String>,
    verify_ok: bool,
    verify_out: String,
    http_status: u16,
    http_complete: bool,
    http_len: usize,
    http_content_length: Option<u64>,
    curl_ok: Option<bool>,
}

fn observe(f: &Fixture, name: &str, cid: &str) -> Seen {
    let out_file = f.work.join("out.nar");
    let decoded = narfs()
        .args(["decode", name, "--store"])
        .arg(&f.store)
        .arg("-o")
        .arg(&out_file)
        .output()
        .unwrap();
    let stdout = narfs()
        .args(["decode", name, "--store"])
        .arg(&f.store)
        .output()
        .unwrap();
    let tree = f.work.join("tree");
    let to_dir = narfs()
        .args(["decode", name, "--store"])
        .arg(&f.store)
        .arg("--to")
        .arg(&tree)
        .output()
        .unwrap();
    let to_dir_exists = tree.symlink_metadata().is_ok();
    let leftovers = listing(&f.work)
        .into_iter()
        .filter(|n| n != "out.nar" && n != "tree")
        .collect();
    let verify = narfs()
        .args(["verify", "--store"])
        .arg(&f.store)
        .output()
        .unwrap();
    let srv = Server::start(&f.store);
    let r = get(srv.addr, &format!("/nar/{cid}.nar"), &[]);
    let curl_ok = common::have("curl").then(|| {
        Command::new("curl")
            .args(["-sS", "--max-time", "60", "-o", "/dev/null"])
            .arg(format!("{}/nar/{cid}.nar", srv.url))
            .status()
            .unwrap()
            .success()
    });
    let seen = Seen {
        decode_file: std::fs::read(&out_file).ok(),
        decode_ok: decoded.status.success(),
        decode_err: String::from_utf8_lossy(&decoded.stderr).into_owned(),
        stdout_ok: stdout.status.success(),
        stdout_len: stdout.stdout.len(),
        to_dir_ok: to_dir.status.success(),
        to_dir_exists,
        leftovers,
        verify_ok: verify.status.success(),
        verify_out: String::from_utf8_lossy(&verify.stdout).into_owned(),
        http_status: r.status,
        http_complete: r.complete,
        http_len: r.body.len(),
        http_content_length: r.header("content-length").and_then(|v| v.parse().ok()),
        curl_ok,
    };
    let _ = std::fs::remove_file(&out_file);
    let _ = std::fs::remove_dir_all(&tree);
    seen
}

/// Every consumer refused root `name`, whose record says `recorded` bytes.
fn assert_refused(s: &Seen, name: &str, recorded: u64, what: &str) {
    assert!(!s.decode_ok, "{what}: decode -o exited 0");
    assert!(s.decode_file.is_none(), "{what}: decode -o left its output");
    assert!(
        s.decode_err.contains("record"),
        "{what}: the error does not name the record: {}",
        s.decode_err
    );
    assert!(!s.stdout_ok, "{what}: decode to stdout exited 0");
    assert!(
        (s.stdout_len as u64) < recorded,
        "{what}: stdout got {} of a recorded {recorded} bytes",
        s.stdout_len
    );
    assert!(!s.to_dir_ok, "{what}: decode --to exited 0");
    assert!(!s.to_dir_exists, "{what}: decode --to left a tree");
    assert!(s.leftovers.is_empty(), "{what}: left {:?}", s.leftovers);
    assert!(!s.verify_ok, "{what}: verify exited 0: {}", s.verify_out);
    assert!(
        s.verify_out.contains(&format!("problem: root {name}: ")),
        "{what}: verify does not report root {name}: {}",
        s.verify_out
    );
    // Either an error status before any byte, or a 200 cut short of its length.
    if s.http_status == 200 {
        assert!(!s.http_complete, "{what}: the HTTP body looked complete");
        assert_eq!(s.http_content_length, Some(recorded), "{what}");
        assert!(
            (s.http_len as u64) < recorded,
            "{what}: {} bytes",
            s.http_len
        );
    } else {
        assert_eq!(s.http_status, 500, "{what}");
    }
    if let Some(ok) = s.curl_ok {
        assert!(!ok, "{what}: curl exited 0");
    }
}

fn each_encoding(test: impl Fn(bool)) {
    for fallback in [false, true] {
        test(fallback);
    }
}

#[test]
fn true_records_pass_every_consumer() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let (name, cid, nar) = &f.roots[0];
        let s = observe(&f, name, cid);
        assert!(s.decode_ok, "{}", s.decode_err);
        assert_eq!(s.decode_file.as_deref(), Some(&nar[..]));
        assert!(s.stdout_ok && s.stdout_len == nar.len());
        assert!(s.to_dir_ok && s.leftovers.is_empty());
        assert!(s.verify_ok, "{}", s.verify_out);
        assert_eq!((s.http_status, s.http_complete), (200, true));
        assert_eq!(s.http_len, nar.len());
        if let Some(ok) = s.curl_ok {
            assert!(ok, "curl failed on a true record");
        }
    });
}

#[test]
fn a_root_changed_to_another_nar_is_refused() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let b_cid = f.roots[1].1.clone();
        // `a` now points at `b`'s DAG (same size, other bytes); `b`'s own record goes,
        // so that `b`'s CID is served only under the lying record.
        edit_record(&f.store, "a", |v| v["root"] = Value::from(b_cid.clone()));
        let store = narfs_store::Store::open(&f.store).unwrap();
        assert_eq!(store.remove_roots("b").unwrap().len(), 1);
        let s = observe(&f, "a", &b_cid);
        assert_refused(&s, "a", f.roots[0].2.len() as u64, "root changed");
    });
}

#[test]
fn a_nar_size_16_bytes_short_is_refused() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let short = f.roots[0].2.len() as u64 - 16;
        edit_record(&f.store, "a", |v| v["nar_size"] = Value::from(short));
        let s = observe(&f, "a", &f.roots[0].1);
        assert_refused(&s, "a", short, "NarSize 16 short");
    });
}

#[test]
fn a_nar_size_16_bytes_long_is_refused() {
    let f = fixture(false);
    let long = f.roots[0].2.len() as u64 + 16;
    edit_record(&f.store, "a", |v| v["nar_size"] = Value::from(long));
    let s = observe(&f, "a", &f.roots[0].1);
    assert_refused(&s, "a", long, "NarSize 16 long");
}

#[test]
fn another_nar_hash_is_refused() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let store = narfs_store::Store::open(&f.store).unwrap();
        let b_hash = store.find_roots("b").unwrap()[0].nar_hash.clone();
        edit_record(&f.store, "a", |v| v["nar_hash"] = Value::from(b_hash));
        let s = observe(&f, "a", &f.roots[0].1);
        assert_refused(&s, "a", f.roots[0].2.len() as u64, "NarHash changed");
    });
}

#[test]
fn a_nar_hash_that_does_not_parse_is_refused() {
    let f = fixture(false);
    edit_record(&f.store, "a", |v| {
        v["nar_hash"] = Value::from("sha256:nothing")
    });
    let out = narfs()
        .args(["decode", "a", "--store"])
        .arg(&f.store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        out.stdout.is_empty(),
        "no byte before the record is understood"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("NarHash"), "{err}");
    let verify = narfs()
        .args(["verify", "--store"])
        .arg(&f.store)
        .output()
        .unwrap();
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stdout).contains("problem: root a: "));
}

/// The sha256 of a NAR, as a record stores it (32 bytes).
fn sha256(nar: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(nar).into()
}

/// Replaces every copy of `from` in the store's table file by `to` (same length), as
/// damage or a hand edit of the file would; how many copies there were.
fn rewrite_table_bytes(store: &Path, from: &[u8], to: &[u8]) -> usize {
    let file = store.join("blocks/data.mdb");
    let mut data = std::fs::read(&file).unwrap();
    let at: Vec<usize> = (0..data.len().saturating_sub(from.len()))
        .filter(|&i| data[i..].starts_with(from))
        .collect();
    for &i in &at {
        data[i..i + to.len()].copy_from_slice(to);
    }
    std::fs::write(&file, data).unwrap();
    at.len()
}

#[test]
fn a_sealed_record_whose_stored_bytes_changed_is_refused() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let (a, b) = (sha256(&f.roots[0].2), sha256(&f.roots[1].2));
        // `a`'s stored NarHash becomes `b`'s: its checksum no longer holds.
        assert!(
            rewrite_table_bytes(&f.store, &a, &b) > 0,
            "a's NarHash is stored"
        );
        let (name, cid, nar) = &f.roots[0];
        let s = observe(&f, name, cid);
        let what = format!("stored bytes changed (fallback {fallback})");
        assert!(!s.decode_ok && s.decode_file.is_none(), "{what}");
        assert!(s.decode_err.contains("record"), "{what}: {}", s.decode_err);
        assert!(!s.stdout_ok && s.stdout_len < nar.len(), "{what}");
        assert!(!s.to_dir_ok && !s.to_dir_exists, "{what}");
        assert!(s.leftovers.is_empty(), "{what}: left {:?}", s.leftovers);
        assert!(!s.verify_ok, "{what}: verify exited 0: {}", s.verify_out);
        assert!(
            s.http_status != 200 || (!s.http_complete && s.http_len < nar.len()),
            "{what}: served {s:?}"
        );
    });
}

#[test]
fn a_sealed_lie_is_reported_by_verify_and_refused_by_check_nar_hash() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let store = narfs_store::Store::open(&f.store).unwrap();
        let b_hash = store.find_roots("b").unwrap()[0].nar_hash.clone();
        drop(store);
        forge_record(&f.store, "a", |v| v["nar_hash"] = Value::from(b_hash));
        let verify = narfs()
            .args(["verify", "--store"])
            .arg(&f.store)
            .output()
            .unwrap();
        let report = String::from_utf8_lossy(&verify.stdout);
        assert!(!verify.status.success(), "verify exited 0: {report}");
        assert!(report.contains("problem: root a: "), "{report}");
        let out_file = f.work.join("out.nar");
        let checked = narfs()
            .args(["decode", "a", "--check-nar-hash", "--store"])
            .arg(&f.store)
            .arg("-o")
            .arg(&out_file)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&checked.stderr);
        assert!(
            !checked.status.success(),
            "decode --check-nar-hash exited 0"
        );
        assert!(err.contains("NarHash"), "{err}");
        assert!(
            !out_file.exists(),
            "decode --check-nar-hash left its output"
        );
        assert!(listing(&f.work).is_empty());
    });
}

#[test]
fn a_sealed_nar_size_lie_is_refused_by_every_consumer() {
    each_encoding(|fallback| {
        let f = fixture(fallback);
        let len = f.roots[0].2.len() as u64;
        for size in [len - 16, len + 16] {
            forge_record(&f.store, "a", |v| v["nar_size"] = Value::from(size));
            let s = observe(&f, "a", &f.roots[0].1);
            assert_refused(&s, "a", size, &format!("sealed NarSize {size} of {len}"));
        }
    });
}
