//! `narfs experiment` end to end on a subset of the bundled corpus: the table, the
//! JSON and the SVG are produced, and the figures agree with each other and with
//! independent computations (zstd of each NAR, `narfs encode`'s root CIDs).

mod common;

use std::path::{Path, PathBuf};

use common::*;
use serde_json::Value;

const SUBSET: &[&str] = &[
    "tzdata-2023.4.nar",
    "tzdata-2024.1.nar",
    "attrs-24.2.0.nar",
    "attrs-24.3.0.nar",
];
const STRATEGIES: &str =
    "file-fixed:262144,file-fastcdc:4096:16384:65536,nar-fixed:65536,nar-fastcdc:2048:8192:32768,nar-zstd";

fn bundled() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// A corpus directory with the subset, in SUBSET's order by its manifest.
fn subset(dir: &Path) {
    let mut manifest = String::from("package\tfile\n");
    for name in SUBSET {
        std::fs::copy(bundled().join(name), dir.join(name)).unwrap();
        manifest.push_str(&format!("x\t{name}\n"));
    }
    std::fs::write(dir.join("MANIFEST.tsv"), manifest).unwrap();
}

fn result<'a>(json: &'a Value, strategy: &str) -> &'a Value {
    json["results"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["strategy"] == strategy)
        .unwrap_or_else(|| panic!("no {strategy} in the JSON"))
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a count"))
}

#[test]
fn table_json_and_svg_agree() {
    let tmp = tempfile::tempdir().unwrap();
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    subset(&corpus);
    let (json_path, svg_path) = (tmp.path().join("e.json"), tmp.path().join("e.svg"));
    let out = run(narfs()
        .args(["experiment", "--corpus"])
        .arg(&corpus)
        .args(["--strategies", STRATEGIES, "--json"])
        .arg(&json_path)
        .arg("--svg")
        .arg(&svg_path));
    let table = String::from_utf8(out.stdout).unwrap();
    for s in STRATEGIES.split(',') {
        assert!(table.contains(s), "{s} missing from the table:\n{table}");
    }
    assert!(out.stderr.is_empty(), "progress on a non-terminal stderr");

    let json: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    let nars: Vec<Vec<u8>> = SUBSET
        .iter()
        .map(|n| std::fs::read(corpus.join(n)).unwrap())
        .collect();
    let raw: u64 = nars.iter().map(|n| n.len() as u64).sum();
    assert_eq!(u(&json["raw_bytes"]), raw);
    let names: Vec<&str> = json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, SUBSET, "not in manifest order");

    // The baseline is exactly the per-NAR zstd sizes.
    let zstd: u64 = nars
        .iter()
        .map(|n| zstd::bulk::compress(n, 3).unwrap().len() as u64)
        .sum();
    let base = result(&json, "nar-zstd");
    assert_eq!(u(&base["stored_bytes"]), zstd);
    assert_eq!(u(&json["baseline_bytes"]), zstd);
    assert_eq!(u(&base["blocks"]), SUBSET.len() as u64);

    for r in json["results"].as_array().unwrap() {
        let name = r["strategy"].as_str().unwrap();
        let (stored, z, blocks) = (
            u(&r["stored_bytes"]),
            u(&r["stored_zstd_bytes"]),
            u(&r["blocks"]),
        );
        assert!(z <= stored, "{name}: compression made it larger");
        assert!(u(&r["put_bytes"]) >= stored, "{name}: stored more than put");
        let items = r["items"].as_array().unwrap();
        let added: u64 = items.iter().map(|i| u(&i["new_bytes"])).sum();
        assert_eq!(added, stored, "{name}: per-NAR additions do not sum up");
        let added_blocks: u64 = items.iter().map(|i| u(&i["new_blocks"])).sum();
        assert_eq!(added_blocks, blocks, "{name}");
        assert!(r["encode_mb_s"].as_f64().unwrap() > 0.0, "{name}");
        assert!(r["decode_mb_s"].as_f64().unwrap() > 0.0, "{name}");
        let ratio = r["ratio_raw"].as_f64().unwrap();
        assert!((ratio - raw as f64 / stored as f64).abs() < 1e-9, "{name}");
        if name != "nar-zstd" {
            assert_eq!(u(&r["leaves"]) + u(&r["inner_blocks"]), blocks, "{name}");
            assert!(u(&r["inner_blocks"]) > 0, "{name}: no inner nodes counted");
            assert!(u(&r["leaf_bytes"]) <= stored, "{name}");
        }
    }

    let kubo = result(&json, "file-fixed:262144");
    assert!(u(&kubo["stored_bytes"]) <= raw);
    // tzdata 2024.1 shares most of its files with 2023.4: it adds little.
    let tz = &kubo["items"][1];
    assert!(
        u(&tz["new_bytes"]) * 3 < u(&tz["nar_size"]),
        "tzdata 2024.1 added {} of {} bytes",
        tz["new_bytes"],
        tz["nar_size"]
    );
    // The file-fixed:262144 roots are `narfs encode`'s (kubo-v1) roots.
    for (i, name) in SUBSET.iter().enumerate() {
        let cid = run(narfs().arg("encode").arg(corpus.join(name))).stdout;
        assert_eq!(
            String::from_utf8(cid).unwrap().trim(),
            kubo["items"][i]["root"].as_str().unwrap(),
            "{name}"
        );
    }
    // A stream strategy stores the NARs' bytes at most once more than they hold.
    let stream = result(&json, "nar-fixed:65536");
    assert!(u(&stream["leaf_bytes"]) <= raw);

    let svg = std::fs::read_to_string(&svg_path).unwrap();
    let doc = roxmltree::Document::parse(&svg).expect("the SVG is XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    assert_eq!(
        lines,
        2 * 4,
        "raw and zstd'd lines for the four chunked families"
    );
    let bars = doc.descendants().filter(|n| n.has_tag_name("rect")).count();
    assert!(bars >= 2 * 5, "throughput bars missing: {bars}");
    assert!(!svg.contains("NaN") && !svg.contains("inf"));
}

#[test]
fn without_a_manifest_versions_sort_as_numbers() {
    let tmp = tempfile::tempdir().unwrap();
    for (from, to) in [
        ("attrs-24.2.0.nar", "a-1.10.nar"),
        ("attrs-24.3.0.nar", "a-1.9.nar"),
    ] {
        std::fs::copy(bundled().join(from), tmp.path().join(to)).unwrap();
    }
    let json_path = tmp.path().join("e.json");
    run(narfs()
        .args(["experiment", "--strategies", "nar-zstd", "--corpus"])
        .arg(tmp.path())
        .arg("--json")
        .arg(&json_path));
    let json: Value = serde_json::from_slice(&std::fs::read(&json_path).unwrap()).unwrap();
    assert_eq!(json["items"][0]["name"], "a-1.9.nar");
    assert_eq!(json["items"][1]["name"], "a-1.10.nar");
}

#[test]
fn bad_input_is_one_line_and_leaves_no_output() {
    let tmp = tempfile::tempdir().unwrap();
    let json_path = tmp.path().join("e.json");
    // An empty corpus.
    let out = narfs()
        .args(["experiment", "--corpus"])
        .arg(tmp.path())
        .arg("--json")
        .arg(&json_path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("no .nar files"), "{err}");
    assert!(!json_path.exists());
    // A NAR that is not one.
    std::fs::write(tmp.path().join("bad.nar"), b"nix-archive-2").unwrap();
    let out = narfs()
        .args(["experiment", "--strategies", "file-fixed:65536", "--corpus"])
        .arg(tmp.path())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && !err.contains("panicked"), "{err}");
    assert!(err.contains("bad.nar"), "{err}");
    // An unknown strategy.
    let out = narfs()
        .args(["experiment", "--strategies", "file-rabin:4096"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown strategy"));
}
