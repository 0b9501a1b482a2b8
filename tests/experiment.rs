//! `narfs experiment` end to end on a subset of the bundled corpus: the table, the
//! JSON and the SVG are produced, and the figures agree with each other and with
//! independent computations (zstd of each NAR at -3 and at the seed's -19, `narfs
//! encode`'s root CIDs). The same NARs read from store paths (`--nix-store`), from a
//! cache a real `nix copy --to file://` made (`--cache DIR`) and from that cache over
//! HTTP (`--cache URL --paths`) give the same figures.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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
        let package = name.split('-').next().unwrap();
        manifest.push_str(&format!("{package}\t{name}\n"));
    }
    std::fs::write(dir.join("MANIFEST.tsv"), manifest).unwrap();
}

/// `narfs experiment` with its seed cache in `tmp`, not the user's.
fn experiment(tmp: &Path) -> Command {
    let mut c = narfs();
    c.arg("experiment")
        .env("XDG_CACHE_HOME", tmp.join("xdg-cache"));
    c
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
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
    let out = run(experiment(tmp.path())
        .arg("--corpus")
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
    assert!(table.contains("recommendation: file-"), "{table}");

    let json = read_json(&json_path);
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
    // The seed: zstd -19 of each NAR.
    let seed: Vec<u64> = nars
        .iter()
        .map(|n| zstd::bulk::compress(n, 19).unwrap().len() as u64)
        .collect();
    // One frame per NAR at level 19, the size pledged: within 0.1% of zstd's one-shot
    // compression and of the `zstd -19` command (zstd versions differ by a few bytes).
    let close = |a: u64, b: u64| a.abs_diff(b) * 1000 <= b;
    let ours = u(&json["seed_bytes"]);
    assert!(close(ours, seed.iter().sum()), "{ours} vs {seed:?}");
    if have("zstd") {
        let cli: u64 = SUBSET
            .iter()
            .map(|n| {
                let out = run(Command::new("zstd")
                    .args(["-19", "-q", "-c"])
                    .arg(corpus.join(n)));
                out.stdout.len() as u64
            })
            .sum();
        assert!(close(ours, cli), "{ours} vs zstd -19: {cli}");
    }
    // tzdata-2024.1 and attrs-24.3.0 are the updates.
    assert_eq!(u(&json["updates"]), 2);
    let items = json["items"].as_array().unwrap();
    assert_eq!(
        u(&json["seed_update_bytes"]),
        u(&items[1]["seed_bytes"]) + u(&items[3]["seed_bytes"])
    );
    assert!(json["recommendation"]["disk_bytes"].as_u64().is_some());

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
        let upd: Vec<&Value> = items.iter().map(|i| &i["update"]).collect();
        assert!(
            upd[0].is_null() && upd[2].is_null(),
            "{name}: a first version"
        );
        for (i, up) in [(1, upd[1]), (3, upd[3])] {
            assert!(
                u(&up["raw_bytes"]) >= u(&items[i]["new_bytes"]),
                "{name} {i}"
            );
            assert!(u(&up["car_zstd_bytes"]) < u(&up["raw_bytes"]), "{name} {i}");
            assert!(
                u(&up["block_zstd_bytes"]) <= u(&up["raw_bytes"]),
                "{name} {i}"
            );
        }
        if name != "nar-zstd" {
            let c = &r["compression"];
            assert_eq!(u(&c["raw"]["bytes"]), stored, "{name}");
            assert_eq!(u(&c["block"]["bytes"]), z, "{name}");
            assert!(u(&c["pack"]["bytes"]) <= stored, "{name}");
            assert!(
                u(&c["pack"]["read_bytes"]) >= u(&c["pack"]["bytes"]),
                "{name}"
            );
            assert!(u(&c["pack-lz4"]["bytes"]) <= stored, "{name}");
            assert_eq!(c["pack-lz4"]["frames"], c["pack"]["frames"], "{name}");
            for o in ["block", "pack", "pack-lz4"] {
                assert!(c[o]["decode_mb_s"].as_f64().unwrap() > 0.0, "{name} {o}");
            }
            // tzdata 2024.1's update moves its new files only: under half its NAR.
            if name.starts_with("file-") {
                assert!(u(&upd[1]["raw_bytes"]) * 2 < nars[1].len() as u64, "{name}");
            }
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
    assert!(bars >= 4 * 5, "throughput or cost bars missing: {bars}");
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
    run(experiment(tmp.path())
        .args(["--strategies", "nar-zstd", "--corpus"])
        .arg(tmp.path())
        .arg("--json")
        .arg(&json_path));
    let json = read_json(&json_path);
    assert_eq!(json["items"][0]["name"], "a-1.9.nar");
    assert_eq!(json["items"][1]["package"], "a");
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

/// The two tzdata NARs of the subset restored as trees named `<name>-<version>`.
fn trees(tmp: &Path) -> Vec<PathBuf> {
    ["tzdata-2023.4", "tzdata-2024.1"]
        .iter()
        .map(|name| {
            let dir = tmp.join("trees").join(name);
            std::fs::create_dir_all(dir.parent().unwrap()).unwrap();
            run(narfs()
                .args(["nar", "restore"])
                .arg(bundled().join(format!("{name}.nar")))
                .arg(&dir));
            dir
        })
        .collect()
}

/// Runs the experiment (file-fixed:262144 and nar-zstd) with `args`; its JSON.
fn figures(tmp: &Path, args: &[&str]) -> Value {
    let json = tmp.join(format!("e{}.json", args.len()));
    let _ = std::fs::remove_file(&json);
    run(experiment(tmp)
        .args(["--strategies", "file-fixed:262144,nar-zstd", "--json"])
        .arg(&json)
        .args(args));
    read_json(&json)
}

/// What must not depend on where the NARs came from: sizes, roots, update costs.
fn same_figures(a: &Value, b: &Value) {
    for k in ["raw_bytes", "seed_bytes", "updates", "seed_update_bytes"] {
        assert_eq!(a[k], b[k], "{k}");
    }
    for (ra, rb) in a["results"]
        .as_array()
        .unwrap()
        .iter()
        .zip(b["results"].as_array().unwrap())
    {
        for k in ["stored_bytes", "stored_zstd_bytes", "blocks", "updates"] {
            assert_eq!(ra[k], rb[k], "{} {k}", ra["strategy"]);
        }
        let roots = |r: &Value| -> Vec<Value> {
            r["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|i| i["root"].clone())
                .collect()
        };
        assert_eq!(roots(ra), roots(rb));
    }
}

#[test]
fn store_paths_are_measured_as_their_nars() {
    let tmp = tempfile::tempdir().unwrap();
    let trees = trees(tmp.path());
    let corpus = tmp.path().join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    for name in ["tzdata-2023.4.nar", "tzdata-2024.1.nar"] {
        std::fs::copy(bundled().join(name), corpus.join(name)).unwrap();
    }
    let from_corpus = figures(tmp.path(), &["--corpus", corpus.to_str().unwrap()]);
    let mut args = vec!["--nix-store"];
    args.extend(trees.iter().rev().map(|t| t.to_str().unwrap()));
    let from_paths = figures(tmp.path(), &args);
    same_figures(&from_corpus, &from_paths);
    assert_eq!(
        from_paths["items"][0]["name"], "tzdata-2023.4.nar",
        "version order"
    );
    assert_eq!(u(&from_paths["updates"]), 1);
    let out = narfs()
        .args(["experiment", "--nix-store"])
        .arg(tmp.path().join("missing-1.0"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("missing-1.0"), "{err}");
}

/// A real Nix adds the two trees to a store and `nix copy`s them into a file cache
/// (xz); the experiment on the cache, as a directory and over HTTP, gives the same
/// figures as on the NARs themselves.
#[test]
fn a_nix_copy_cache_is_measured_as_a_directory_and_over_http() {
    if !have("nix") || !have("nix-store") || !have("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let trees = trees(t);
    let s1 = t.join("s1");
    let s1s = s1.to_str().unwrap();
    let cache = t.join("cache");
    let to = format!("file://{}?compression=xz", cache.display());
    let mut paths = Vec::new();
    for tree in &trees {
        let out = run(nix(t, "nix-store")
            .args(["--store", s1s, "--add"])
            .arg(tree));
        let path = String::from_utf8(out.stdout).unwrap().trim().to_string();
        run(nix(t, "nix").args(["--store", s1s, "copy", "--to", &to, &path]));
        paths.push(path);
    }
    let corpus = t.join("corpus");
    std::fs::create_dir(&corpus).unwrap();
    for name in ["tzdata-2023.4.nar", "tzdata-2024.1.nar"] {
        std::fs::copy(bundled().join(name), corpus.join(name)).unwrap();
    }
    let reference = figures(t, &["--corpus", corpus.to_str().unwrap()]);

    let from_dir = figures(t, &["--cache", cache.to_str().unwrap()]);
    same_figures(&reference, &from_dir);
    let names: Vec<String> = from_dir["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_string())
        .collect();
    for (name, path) in names.iter().zip(&paths) {
        assert_eq!(format!("/nix/store/{name}"), format!("{path}.nar"));
    }
    assert_eq!(from_dir["items"][1]["package"], "tzdata");

    let Some(server) = common::http_server::py_server(&cache) else {
        return;
    };
    let list = t.join("paths");
    std::fs::write(&list, format!("{}\n{}\n", paths[1], paths[0])).unwrap();
    let from_http = figures(
        t,
        &["--cache", &server.url, "--paths", list.to_str().unwrap()],
    );
    same_figures(&reference, &from_http);
    // One path: one item, no update.
    std::fs::write(&list, format!("{}\n", paths[1])).unwrap();
    let one = figures(
        t,
        &["--cache", &server.url, "--paths", list.to_str().unwrap()],
    );
    assert_eq!(one["items"].as_array().unwrap().len(), 1);
    assert_eq!(u(&one["updates"]), 0);
    // Without --paths an HTTP cache cannot be listed: one line, non-zero.
    let out = narfs()
        .args(["experiment", "--cache", &server.url])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.lines().count() == 1, "{err}");
    assert!(err.contains("--paths"), "{err}");
}
