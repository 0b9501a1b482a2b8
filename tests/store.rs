//! The blockstore through the CLI: dedup accounting (same NAR twice, two versions of a
//! package), `ls`/`stats`/`rm`/`gc`, the default-store rules (`$NARFS_STORE`, `--car`
//! alone leaves the store alone), and byte-exact decode from the store of every corpus
//! NAR, by name and by CID.

use std::path::{Path, PathBuf};

use serde_json::Value;

mod common;

use common::{corpus, narfs_in as narfs, run as ok};

fn encode(store: &Path, nar: &Path, name: Option<&str>) -> Value {
    let mut c = narfs(store);
    c.args(["encode", "--json"]);
    if let Some(n) = name {
        c.args(["--name", n]);
    }
    let out = ok(c.arg(nar));
    serde_json::from_slice(&out.stdout).expect("one JSON object")
}

fn decode(store: &Path, root: &str) -> Vec<u8> {
    ok(narfs(store).args(["decode", root])).stdout
}

fn stats(store: &Path) -> Value {
    serde_json::from_slice(&ok(narfs(store).args(["stats", "--json"])).stdout).unwrap()
}

#[test]
fn same_nar_twice_stores_nothing_new() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let nar = corpus("tzdata-2024.1.nar");
    let first = encode(store, &nar, None);
    assert!(first["new_blocks"].as_u64().unwrap() > 0);
    assert!(first["new_bytes"].as_u64().unwrap() > 0);
    // Repeats inside one NAR are stored once.
    assert!(first["new_blocks"].as_u64() <= first["blocks"].as_u64());
    let before = stats(store);
    let second = encode(store, &nar, None);
    assert_eq!(second["root"], first["root"]);
    assert_eq!(second["new_blocks"], 0);
    assert_eq!(second["new_bytes"], 0);
    let after = stats(store);
    assert_eq!(after["stored_bytes"], before["stored_bytes"]);
    assert_eq!(after["unique_blocks"], before["unique_blocks"]);
    assert_eq!(after["roots"], 1, "one record per root CID without a name");
}

#[test]
fn two_versions_report_reuse_and_gc_frees_only_the_removed_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let (n1, n2) = (corpus("attrs-24.1.0.nar"), corpus("attrs-24.2.0.nar"));
    let v1 = encode(store, &n1, Some("/nix/store/aaaa-attrs-24.1.0"));
    let v2 = encode(store, &n2, Some("/nix/store/bbbb-attrs-24.2.0"));
    assert_eq!(
        v1["new_bytes"], v1["block_bytes"],
        "a fresh store has nothing to reuse"
    );
    let (new2, total2) = (
        v2["new_bytes"].as_u64().unwrap(),
        v2["block_bytes"].as_u64().unwrap(),
    );
    // 8 of 40 blocks are new (attrs' changed files); the rest is reused.
    assert!(new2 > 0 && new2 < total2, "the second version reuses: {v2}");
    assert!(v2["new_blocks"].as_u64().unwrap() * 2 < v2["blocks"].as_u64().unwrap());

    let s = stats(store);
    assert_eq!(s["roots"], 2);
    let nar_bytes = std::fs::metadata(&n1).unwrap().len() + std::fs::metadata(&n2).unwrap().len();
    assert_eq!(s["nar_bytes"], nar_bytes);
    assert!(s["stored_bytes"].as_u64().unwrap() < nar_bytes);
    // The table's file holds the stored bytes plus B-tree pages and page rounding.
    let file = s["file_bytes"].as_u64().unwrap();
    assert!(
        file >= s["stored_bytes"].as_u64().unwrap() && file < 2 * nar_bytes,
        "{s}"
    );
    assert!(s["dedup_ratio"].as_f64().unwrap() > 1.0);

    let ls = String::from_utf8(ok(narfs(store).arg("ls")).stdout).unwrap();
    assert_eq!(ls.lines().count(), 2);
    assert!(
        ls.contains("/nix/store/aaaa-attrs-24.1.0") && ls.contains(v2["root"].as_str().unwrap())
    );

    // Remove v1 by name; gc frees v1's own blocks and keeps every block v2 needs.
    ok(narfs(store).args(["rm", "/nix/store/aaaa-attrs-24.1.0"]));
    let gc: Value =
        serde_json::from_slice(&ok(narfs(store).args(["gc", "--json"])).stdout).unwrap();
    assert!(gc["removed_blocks"].as_u64().unwrap() > 0, "{gc}");
    assert_eq!(gc["kept_blocks"], stats(store)["unique_blocks"]);
    ok(narfs(store).arg("verify"));
    assert_eq!(
        decode(store, "/nix/store/bbbb-attrs-24.2.0"),
        std::fs::read(&n2).unwrap()
    );
    let gone = narfs(store)
        .args(["decode", v1["root"].as_str().unwrap()])
        .output()
        .unwrap();
    assert!(!gone.status.success(), "v1's root block is gone");
    // Re-encoding v1 stores exactly what gc freed (in logical bytes: v1's own blocks).
    let again = encode(store, &n1, None);
    assert!(again["new_blocks"].as_u64().unwrap() > 0);
    assert!(again["new_bytes"].as_u64() < v1["new_bytes"].as_u64());
    // A second gc with both roots present removes nothing.
    let gc: Value =
        serde_json::from_slice(&ok(narfs(store).args(["gc", "--json"])).stdout).unwrap();
    assert_eq!(gc["removed_blocks"], 0);
    let missing = narfs(store)
        .args(["rm", "nothing-by-that-name"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
}

#[test]
fn every_corpus_nar_decodes_byte_exact_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let nars = corpus_nars();
    assert!(nars.len() >= 10);
    for nar in &nars {
        let name = nar.file_name().unwrap().to_str().unwrap();
        let v = encode(store, nar, Some(name));
        let bytes = std::fs::read(nar).unwrap();
        assert!(decode(store, name) == bytes, "{name} by name");
        assert!(
            decode(store, v["root"].as_str().unwrap()) == bytes,
            "{name} by CID"
        );
    }
    // Also the fallback encoding: the store records it, decode finds out by itself.
    let nar = &nars[0];
    let out = ok(narfs(store)
        .args(["encode", "--json", "--fallback", "--name", "fb"])
        .arg(nar));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["compression"], "zstd");
    assert!(decode(store, "fb") == std::fs::read(nar).unwrap());
    let verify = String::from_utf8(ok(narfs(store).arg("verify")).stdout).unwrap();
    assert!(verify.contains("0 problem(s)"), "{verify}");
}

#[test]
fn default_store_and_car_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("default-store");
    let nar = corpus("attrs-23.2.0.nar");
    // --car alone: the CAR is written, the store left alone.
    let car = dir.path().join("x.car");
    let out = ok(narfs(&store).args(["encode", "--car"]).arg(&car).arg(&nar));
    let cid = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert!(car.exists() && !store.exists());
    let from_car = ok(narfs(&store).args(["decode", "--car"]).arg(&car).arg(&cid)).stdout;
    assert!(from_car == std::fs::read(&nar).unwrap());
    // Without --car: the store named by $NARFS_STORE.
    let v = encode(&store, &nar, None);
    assert_eq!(v["root"], cid.as_str());
    assert!(decode(&store, &cid) == std::fs::read(&nar).unwrap());
    // --car and --store: both.
    let other = dir.path().join("other-store");
    let car2 = dir.path().join("y.car");
    ok(narfs(&store)
        .args(["encode", "--car"])
        .arg(&car2)
        .arg("--store")
        .arg(&other)
        .arg(&nar));
    assert!(car2.exists());
    let from_other = ok(narfs(&store)
        .args(["decode", "--store"])
        .arg(&other)
        .arg(&cid))
    .stdout;
    assert!(from_other == std::fs::read(&nar).unwrap());
    // An unknown name is an error saying so.
    let out = narfs(&store)
        .args(["decode", "no-such-name"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no root named"));
}

/// `narfs store ls|stats` and the older top-level spellings give the same answers.
#[test]
fn store_subcommands_and_their_old_spellings_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("s");
    let nar = first_corpus_nar();
    encode(
        &store,
        &nar,
        Some("/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-x"),
    );
    for cmd in ["ls", "stats"] {
        let new = ok(narfs(&store).args(["store", cmd, "--json"])).stdout;
        let old = ok(narfs(&store).args([cmd, "--json"])).stdout;
        assert!(!new.is_empty(), "narfs store {cmd} printed nothing");
        if cmd == "ls" {
            assert_eq!(new, old, "narfs store {cmd} and narfs {cmd} differ");
        }
    }
    let verify = narfs(&store).args(["store", "verify"]).output().unwrap();
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );
}

fn first_corpus_nar() -> PathBuf {
    corpus_nars().remove(0)
}

/// Every NAR of the bundled corpus, sorted by name.
fn corpus_nars() -> Vec<PathBuf> {
    let mut nars: Vec<PathBuf> = std::fs::read_dir(corpus(""))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "nar"))
        .collect();
    nars.sort();
    nars
}

#[test]
fn many_inputs_share_one_session_and_print_a_line_each() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, many) = (tmp.path().join("one"), tmp.path().join("many"));
    let nars = ["attrs-23.2.0.nar", "attrs-24.1.0.nar", "attrs-24.2.0.nar"];
    let alone: Vec<String> = nars
        .iter()
        .map(|n| {
            encode(&one, &corpus(n), None)["root"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let mut c = narfs(&many);
    c.args(["encode", "--json"]);
    for n in nars {
        c.arg(corpus(n));
    }
    let out = String::from_utf8(ok(&mut c).stdout).unwrap();
    let lines: Vec<Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let roots: Vec<&str> = lines.iter().map(|v| v["root"].as_str().unwrap()).collect();
    assert_eq!(
        roots, alone,
        "one line per input, in order, the roots of single encodes"
    );
    // Later versions share blocks with earlier ones: counted as not new.
    assert!(lines[1]["new_bytes"].as_u64() < lines[1]["block_bytes"].as_u64());
    let ls = String::from_utf8(ok(narfs(&many).args(["store", "ls"])).stdout).unwrap();
    assert_eq!(ls.lines().count(), 3);
    for (n, root) in nars.iter().zip(&alone) {
        let nar = ok(narfs(&many).args(["decode", root])).stdout;
        assert!(nar == std::fs::read(corpus(n)).unwrap(), "{n}");
    }
    // Flags about one NAR are refused with many.
    let out = narfs(&many)
        .args(["encode", "--name", "x"])
        .arg(corpus(nars[0]))
        .arg(corpus(nars[1]))
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--name speaks of one NAR"));
}
