//! `narfs car import|export` on the command line: CARv1 and CARv2 in, every block
//! verified, roots recorded with Nix's NarHash; CARs out that decode to the same NAR;
//! bad blocks, incomplete DAGs and unknown roots refused with nothing recorded.

mod common;

use std::path::Path;

use common::*;
use narfs_core::car::CarReader;
use narfs_core::car::CarWriter;

/// Encodes `tree` into a CAR; returns (root CID, the tree's NAR, `encode --json`).
fn encode_car(tree: &Path, car: &Path, extra: &[&str]) -> (String, Vec<u8>, serde_json::Value) {
    let out = run(narfs()
        .args(["encode", "--json", "--car"])
        .arg(car)
        .args(extra)
        .arg(tree));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let nar = run(narfs().args(["nar", "dump"]).arg(tree)).stdout;
    (v["root"].as_str().unwrap().to_string(), nar, v)
}

fn import(store: &Path, car: &Path) -> std::process::Output {
    narfs()
        .args(["car", "import", "--store"])
        .arg(store)
        .arg(car)
        .output()
        .unwrap()
}

fn records(store: &Path) -> Vec<serde_json::Value> {
    let out = run(narfs().args(["ls", "--json", "--store"]).arg(store)).stdout;
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The CARv2 wrapping `v1`: pragma, 40-byte header, the payload, no index.
fn carv2(v1: &[u8]) -> Vec<u8> {
    let mut out = vec![
        0x0a, 0xa1, 0x67, b'v', b'e', b'r', b's', b'i', b'o', b'n', 0x02,
    ];
    out.extend_from_slice(&[0u8; 16]); // characteristics
    let data_offset = 11 + 40 + 5; // a few bytes of padding, as writers may leave
    out.extend_from_slice(&(data_offset as u64).to_le_bytes());
    out.extend_from_slice(&(v1.len() as u64).to_le_bytes());
    out.extend_from_slice(&0u64.to_le_bytes()); // no index
    out.extend_from_slice(&[0u8; 5]);
    out.extend_from_slice(v1);
    out
}

#[test]
fn import_records_roots_with_nar_hash_and_decodes_back_v1_and_v2() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    for hash in ["sha2-256", "blake3"] {
        let car = tmp.path().join(format!("{hash}.car"));
        let (root, nar, v) = encode_car(&tree, &car, &["--hash", hash]);
        let v2 = tmp.path().join(format!("{hash}.v2.car"));
        std::fs::write(&v2, carv2(&std::fs::read(&car).unwrap())).unwrap();
        for input in [&car, &v2] {
            let store = tempfile::tempdir().unwrap();
            let out = import(store.path(), input);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(String::from_utf8(out.stdout).unwrap().trim(), root);
            let recs = records(store.path());
            assert_eq!(recs.len(), 1);
            assert_eq!(recs[0]["root"], root.as_str());
            assert_eq!(recs[0]["nar_hash"], v["nar_hash"]);
            assert_eq!(recs[0]["nar_size"], nar.len() as u64);
            assert_eq!(recs[0]["hash"], hash);
            let decoded = run(narfs()
                .args(["decode", "--store"])
                .arg(store.path())
                .arg(&root));
            assert!(decoded.stdout == nar, "{hash}: decoded NAR differs");
            run(narfs().args(["verify", "--store"]).arg(store.path()));
            // Imported roots are kept by gc.
            run(narfs().args(["gc", "--store"]).arg(store.path()));
            let again = run(narfs()
                .args(["decode", "--store"])
                .arg(store.path())
                .arg(&root));
            assert!(again.stdout == nar);
        }
    }
}

#[test]
fn export_writes_a_car_of_several_roots_that_decodes_and_reimports() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let a = awkward_tree(&tmp.path().join("a"), false);
    let b = tmp.path().join("b");
    std::fs::create_dir(&b).unwrap();
    write(&b.join("f"), &bytes(9, 600_000), false);
    let mut roots = Vec::new();
    for (name, tree) in [("a", &a), ("b", &b)] {
        run(narfs()
            .args(["encode", "--name", name, "--store"])
            .arg(&store)
            .arg(tree));
        roots.push(run(narfs().args(["nar", "dump"]).arg(tree)).stdout);
    }
    let car = tmp.path().join("out.car");
    run(narfs()
        .args(["car", "export", "a", "b", "--store"])
        .arg(&store)
        .arg("-o")
        .arg(&car));
    let reader =
        CarReader::new(std::io::BufReader::new(std::fs::File::open(&car).unwrap())).unwrap();
    let header: Vec<String> = reader.roots().iter().map(|c| c.to_string()).collect();
    assert_eq!(header.len(), 2);
    for (cid, nar) in header.iter().zip(&roots) {
        let decoded = run(narfs().args(["decode", "--car"]).arg(&car).arg(cid));
        assert!(decoded.stdout == *nar, "{cid} decodes to another NAR");
    }
    let fresh = tempfile::tempdir().unwrap();
    let out = run(narfs()
        .args(["car", "import", "--store"])
        .arg(fresh.path())
        .arg(&car));
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        header.join("\n") + "\n"
    );
}

#[test]
fn a_tampered_block_is_refused_naming_its_cid_and_nothing_is_recorded() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    write(
        &tree.join("victim"),
        b"the bytes of the victim block",
        false,
    );
    write(&tree.join("other"), &bytes(4, 1000), false);
    let car = tmp.path().join("t.car");
    let entries = tmp.path().join("e.jsonl");
    run(narfs()
        .args(["encode", "--car"])
        .arg(&car)
        .arg("--entries")
        .arg(&entries)
        .arg(&tree));
    let victim_cid = std::fs::read_to_string(&entries)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|v| v["path"] == "victim")
        .unwrap()["cid"]
        .as_str()
        .unwrap()
        .to_string();
    let mut bytes = std::fs::read(&car).unwrap();
    let needle = b"the bytes of the victim block";
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .unwrap();
    bytes[at] ^= 1;
    std::fs::write(&car, &bytes).unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = import(store.path(), &car);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&victim_cid),
        "the bad block is not named: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    assert!(records(store.path()).is_empty());
}

#[test]
fn an_incomplete_dag_is_not_recorded_and_fails() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let car = tmp.path().join("t.car");
    let (root, _, _) = encode_car(&tree, &car, &[]);
    // The same CAR without its last block.
    let mut reader =
        CarReader::new(std::io::BufReader::new(std::fs::File::open(&car).unwrap())).unwrap();
    let blocks: Vec<_> = reader.by_ref().map(Result::unwrap).collect();
    let cut = tmp.path().join("cut.car");
    let mut w =
        CarWriter::new(std::fs::File::create(&cut).unwrap(), &root.parse().unwrap()).unwrap();
    let (dropped, _) = blocks.iter().find(|(c, _)| c.codec() == 0x55).unwrap();
    for (cid, data) in blocks.iter().filter(|(c, _)| c != dropped) {
        w.put(cid, data).unwrap();
    }
    w.finish().unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = import(store.path(), &cut);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&root) && err.contains(&dropped.to_string()),
        "{err}"
    );
    assert!(records(store.path()).is_empty());
}

#[test]
fn garbage_and_unknown_roots_fail_cleanly_without_output() {
    let tmp = tempfile::tempdir().unwrap();
    let junk = tmp.path().join("junk.car");
    std::fs::write(&junk, b"\x05not a car at all").unwrap();
    let store = tempfile::tempdir().unwrap();
    let out = import(store.path(), &junk);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot import"));
    let car = tmp.path().join("x.car");
    let out = narfs()
        .args(["car", "export", "no-such-name", "--store"])
        .arg(store.path())
        .arg("-o")
        .arg(&car)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such-name"));
    // A CID the store does not hold: nothing appears at the output path.
    let missing = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";
    let out = narfs()
        .args(["car", "export", missing, "--store"])
        .arg(store.path())
        .arg("-o")
        .arg(&car)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(missing));
    assert!(!car.exists());
}
