//! Packs through the CLI: `encode --compression`, `store repack` after `gc` (dead
//! blocks dropped, a higher level, NARs still byte-exact and verified), a second
//! repack that finds nothing to do, a store of zstd packs (the default before LZ4)
//! and LZ4 packs (the default now) read together, and a bad `--compression` refused
//! on one line.

use std::process::Command;

use serde_json::Value;

mod common;

use common::{corpus, narfs_in as narfs, run as ok};

fn json(cmd: &mut Command) -> Value {
    serde_json::from_slice(&ok(cmd).stdout).expect("one JSON object")
}

#[test]
fn repack_after_gc_shrinks_the_store_and_keeps_every_nar() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let (a, b) = (corpus("attrs-24.1.0.nar"), corpus("tzdata-2024.1.nar"));
    // Small packs, so that the NARs make several.
    for (nar, name) in [(&a, "a"), (&b, "b")] {
        ok(narfs(store)
            .args(["encode", "--compression", "pack:1:65536", "--name", name])
            .arg(nar));
    }
    let before = json(narfs(store).args(["stats", "--json"]));
    // Most blocks are in packs (one alone at an item's end may be stored on its own).
    let (c, u) = (
        before["compressed_blocks"].as_u64().unwrap(),
        before["unique_blocks"].as_u64().unwrap(),
    );
    assert!(c * 10 >= u * 9, "{before}");
    ok(narfs(store).args(["rm", "b"]));
    ok(narfs(store).args(["gc"]));
    let r = json(narfs(store).args(["store", "repack", "--json"]));
    assert!(r["packs_read"].as_u64().unwrap() > 0, "{r}");
    assert!(r["packs_written"].as_u64().unwrap() > 0, "{r}");
    let (b0, b1) = (
        r["bytes_before"].as_u64().unwrap(),
        r["bytes_after"].as_u64().unwrap(),
    );
    assert!(b1 < b0, "zstd -19 packs are smaller: {r}");
    let after = json(narfs(store).args(["stats", "--json"]));
    assert!(after["stored_bytes"].as_u64() < before["stored_bytes"].as_u64());
    let out = ok(narfs(store).args(["decode", "a"])).stdout;
    assert!(out == std::fs::read(&a).unwrap(), "byte-exact after repack");
    let v = json(narfs(store).args(["verify", "--json"]));
    assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
    // Nothing left to do: every pack is at the level and wholly alive.
    let again = json(narfs(store).args(["store", "repack", "--json"]));
    assert_eq!(again["packs_read"], 0, "{again}");
    assert_eq!(again["packs_kept"], r["packs_written"], "{again}");
}

#[test]
fn per_block_and_raw_stores_have_nothing_to_repack_and_a_bad_mode_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let a = corpus("attrs-24.1.0.nar");
    ok(narfs(store)
        .args(["encode", "--compression", "block", "--name", "a"])
        .arg(&a));
    let r = json(narfs(store).args(["store", "repack", "--json", "--level", "3"]));
    assert_eq!(
        (r["packs_read"].as_u64(), r["packs_kept"].as_u64()),
        (Some(0), Some(0))
    );
    assert!(ok(narfs(store).args(["decode", "a"])).stdout == std::fs::read(&a).unwrap());
    let out = narfs(store)
        .args(["encode", "--compression", "zip"])
        .arg(&a)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("expected pack"), "{err}");
}

#[test]
fn repack_pack_bytes_sets_the_size_of_the_packs_it_writes() {
    let a = corpus("tzdata-2024.1.nar");
    let written = |pack_bytes: Option<&str>| {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        ok(narfs(store)
            .args(["encode", "--compression", "pack:1:65536", "--name", "a"])
            .arg(&a));
        let mut cmd = narfs(store);
        cmd.args(["store", "repack", "--json"]);
        if let Some(b) = pack_bytes {
            cmd.args(["--pack-bytes", b]);
        }
        let r = json(&mut cmd);
        assert!(ok(narfs(store).args(["decode", "a"])).stdout == std::fs::read(&a).unwrap());
        let v = json(narfs(store).args(["verify", "--json"]));
        assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
        r["packs_written"].as_u64().unwrap()
    };
    let (small, default) = (written(Some("65536")), written(None));
    assert!(small > default && default >= 1, "{small} {default}");
    let dir = tempfile::tempdir().unwrap();
    let out = narfs(dir.path())
        .args(["store", "repack", "--pack-bytes", "100"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Σ bytes of packs decompressed by decoding each of `names` in a fresh process.
fn unpacked(store: &std::path::Path, names: &[&str], nars: &[std::path::PathBuf]) -> u64 {
    let mut sum = 0;
    for (name, nar) in names.iter().zip(nars) {
        let out = ok(narfs(store).args(["decode", "--pack-stats", name]));
        assert!(
            out.stdout == std::fs::read(nar).unwrap(),
            "{name} byte-exact"
        );
        let err = String::from_utf8_lossy(&out.stderr);
        // "packs decompressed: N (B bytes)"
        let b = err
            .split('(')
            .nth(1)
            .and_then(|s| s.split(' ').next())
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no pack stats in {err:?}"));
        sum += b;
    }
    sum
}

/// The bundled corpus's four versions of attrs, and their NARs.
fn attrs_series() -> ([&'static str; 4], Vec<std::path::PathBuf>) {
    let versions = ["23.2.0", "24.1.0", "24.2.0", "24.3.0"];
    let nars = versions
        .iter()
        .map(|v| corpus(&format!("attrs-{v}.nar")))
        .collect();
    (versions, nars)
}

#[test]
fn grouped_repack_reads_less_over_a_version_series_than_write_order() {
    let (versions, nars) = attrs_series();
    let names: Vec<String> = versions.iter().map(|v| format!("attrs-{v}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    let repacked = |layout: &str| {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        for (nar, name) in nars.iter().zip(&names) {
            ok(narfs(store)
                .args(["encode", "--compression", "pack:1:65536", "--name", name])
                .arg(nar));
        }
        let r = json(narfs(store).args([
            "store",
            "repack",
            "--json",
            "--pack-bytes",
            "65536",
            "--layout",
            layout,
        ]));
        assert!(r["packs_written"].as_u64().unwrap() > 0, "{r}");
        let v = json(narfs(store).args(["verify", "--json"]));
        assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
        let read = unpacked(store, &names, &nars);
        // Run again: nothing to do.
        let again = json(narfs(store).args([
            "store",
            "repack",
            "--json",
            "--pack-bytes",
            "65536",
            "--layout",
            layout,
        ]));
        assert_eq!(again["packs_written"], 0, "{again}");
        (r, read)
    };
    let (g, grouped) = repacked("grouped");
    let (_, write_order) = repacked("write-order");
    assert_eq!(g["items"], 4, "{g}");
    assert!(
        grouped < write_order,
        "grouped decompresses {grouped} bytes, write order {write_order}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = narfs(dir.path())
        .args(["store", "repack", "--layout", "random"])
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[test]
fn an_incremental_repack_after_a_new_version_keeps_every_earlier_pack() {
    let (versions, nars) = attrs_series();
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let encode = |i: usize| {
        ok(narfs(store)
            .args(["encode", "--compression", "pack:1:65536", "--name"])
            .arg(format!("attrs-{}", versions[i]))
            .arg(&nars[i]));
    };
    let repack = |extra: &[&str]| {
        json(
            narfs(store)
                .args(["store", "repack", "--json", "--pack-bytes", "65536"])
                .args(extra),
        )
    };
    for i in 0..3 {
        encode(i);
    }
    let first = repack(&[]);
    let written = first["packs_written"].as_u64().unwrap();
    assert!(written > 1, "{first}");
    encode(3);
    // A bound the layout stays within: the earlier packs are all kept, only the new
    // version's packs are read and its blocks packed.
    let inc = repack(&["--incremental", "--max-amplification", "100"]);
    assert_eq!(inc["packs_kept"].as_u64(), Some(written), "{inc}");
    assert!(inc["packs_read"].as_u64().unwrap() >= 1, "{inc}");
    assert!(inc["packs_written"].as_u64().unwrap() >= 1, "{inc}");
    assert_eq!(inc["items"], 4, "{inc}");
    let (used, read) = (
        inc["layout_used"].as_u64().unwrap(),
        inc["layout_read"].as_u64().unwrap(),
    );
    assert!(used > 0 && read >= used, "{inc}");
    for (v, nar) in versions.iter().zip(&nars) {
        let out = ok(narfs(store).args(["decode", &format!("attrs-{v}")])).stdout;
        assert!(out == std::fs::read(nar).unwrap(), "attrs-{v} byte-exact");
    }
    let v = json(narfs(store).args(["verify", "--json"]));
    assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
    // Again: nothing to do.
    let again = repack(&["--incremental", "--max-amplification", "100"]);
    assert_eq!(
        (
            again["packs_read"].as_u64(),
            again["packs_written"].as_u64()
        ),
        (Some(0), Some(0)),
        "{again}"
    );
    // A bound below 1 is refused on one line, and the bound needs --incremental.
    for bad in [
        &["--incremental", "--max-amplification", "0.5"][..],
        &["--max-amplification", "2"][..],
    ] {
        let out = narfs(store)
            .args(["store", "repack"])
            .args(bad)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{bad:?}");
    }
}

#[test]
fn zstd_packs_of_an_earlier_default_and_lz4_packs_decode_side_by_side() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let (a, b) = (corpus("attrs-24.1.0.nar"), corpus("tzdata-2024.1.nar"));
    // `a` as every narfs before LZ4 stored it (zstd -1 packs), `b` with the default.
    ok(narfs(store)
        .args(["encode", "--compression", "pack:1", "--name", "a"])
        .arg(&a));
    ok(narfs(store).args(["encode", "--name", "b"]).arg(&b));
    let stats = json(narfs(store).args(["stats", "--json"]));
    assert!(stats["compressed_blocks"].as_u64().unwrap() > 0, "{stats}");
    let decoded = |name: &str| ok(narfs(store).args(["decode", name])).stdout;
    assert!(
        decoded("a") == std::fs::read(&a).unwrap(),
        "zstd packs byte-exact"
    );
    assert!(
        decoded("b") == std::fs::read(&b).unwrap(),
        "LZ4 packs byte-exact"
    );
    let v = json(narfs(store).args(["verify", "--json"]));
    assert_eq!(v["problems"], Value::Array(vec![]), "{v}");
    // Repack reads both and writes zstd -19: the LZ4 packs, larger, shrink.
    let r = json(narfs(store).args(["store", "repack", "--json"]));
    assert!(r["packs_read"].as_u64().unwrap() > 0, "{r}");
    assert!(
        r["bytes_after"].as_u64().unwrap() < r["bytes_before"].as_u64().unwrap(),
        "{r}"
    );
    assert!(decoded("a") == std::fs::read(&a).unwrap());
    assert!(decoded("b") == std::fs::read(&b).unwrap());
    let again = json(narfs(store).args(["store", "repack", "--json"]));
    assert_eq!(again["packs_read"], 0, "{again}");
}
