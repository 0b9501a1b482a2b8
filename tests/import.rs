//! `narfs import` on hand-made binary caches (no Nix needed): every compression Nix
//! writes, the narinfo fields kept with the root, resuming, and bad entries reported and
//! skipped without leaving a root behind.

mod common;
mod serve_support;

use common::run;
use serve_support::*;

fn roots(store: &std::path::Path) -> Vec<serde_json::Value> {
    let out = narfs()
        .args(["ls", "--json", "--store"])
        .arg(store)
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn imports_every_compression_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let t1 = sample_tree(tmp.path(), 1, 700_000);
    let t2 = sample_tree(tmp.path(), 2, 1_000);
    let single = tmp.path().join("single");
    std::fs::write(&single, b"just a file\n").unwrap();
    let mut entries = vec![
        Entry::new(1, "one-1.0", nar_of(&t1), "xz"),
        Entry::new(2, "two-2.0", nar_of(&t2), "zstd"),
        Entry::new(3, "single", nar_of(&single), "bzip2"),
        Entry::new(4, "plain", nar_of(&t2), "none"),
    ];
    entries[0].references = vec![entries[1].base(), entries[0].base()];
    entries[0].extra = format!(
        "Deriver: {}-one-1.0.drv\nSig: cache.example.org-1:c2lnbmF0dXJl\nSig: other-1:b3RoZXI=\nCA: fixed:r:sha256:0000000000000000000000000000000000000000000000000000\nFileHash: sha256:ignored\n",
        fake_hash(9)
    );
    let cache = tmp.path().join("cache");
    write_cache(&cache, &entries);
    let store = tmp.path().join("store");

    let out = run(narfs()
        .arg("import")
        .arg(&cache)
        .arg("--store")
        .arg(&store)
        .arg("--json"));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"], 4, "{v}");
    assert_eq!(v["already_present"], 0);

    let recs = roots(&store);
    assert_eq!(recs.len(), 4);
    for e in &entries {
        let rec = recs
            .iter()
            .find(|r| r["name"] == e.store_path().as_str())
            .unwrap_or_else(|| panic!("{} not recorded", e.store_path()));
        assert_eq!(rec["nar_size"], e.nar.len() as u64);
        assert_eq!(rec["nar_hash"], nar_hash(&e.nar).as_str());
        assert_eq!(rec["narinfo"]["store_path"], e.store_path().as_str());
        // Decoding by name gives the NAR back byte for byte.
        let dec = narfs()
            .args(["decode", "--store"])
            .arg(&store)
            .arg(e.store_path())
            .output()
            .unwrap();
        assert!(dec.status.success());
        assert!(
            dec.stdout == e.nar,
            "{} decodes differently",
            e.store_path()
        );
    }
    let one = recs
        .iter()
        .find(|r| r["name"] == entries[0].store_path().as_str())
        .unwrap();
    let meta = &one["narinfo"];
    assert_eq!(
        meta["references"],
        serde_json::json!([entries[1].base(), entries[0].base()])
    );
    assert_eq!(
        meta["deriver"],
        format!("{}-one-1.0.drv", fake_hash(9)).as_str()
    );
    assert_eq!(
        meta["sigs"],
        serde_json::json!(["cache.example.org-1:c2lnbmF0dXJl", "other-1:b3RoZXI="])
    );
    assert_eq!(
        meta["ca"],
        "fixed:r:sha256:0000000000000000000000000000000000000000000000000000"
    );

    // Again: everything is already there, nothing is encoded.
    let again = narfs()
        .arg("import")
        .arg(&cache)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(again.status.success());
    let text = String::from_utf8_lossy(&again.stdout);
    assert!(
        text.contains("imported 0 store paths") && text.contains("4 already present"),
        "{text}"
    );
}

#[test]
fn bad_entries_are_reported_and_skipped() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = sample_tree(tmp.path(), 3, 300_000);
    let nar = nar_of(&tree);
    let cache = tmp.path().join("cache");
    let entries = vec![
        Entry::new(1, "good", nar.clone(), "xz"),
        Entry::new(2, "wrong-hash", nar.clone(), "zstd"),
        Entry::new(3, "truncated", nar.clone(), "xz"),
        Entry::new(4, "missing-nar", nar.clone(), "none"),
        Entry::new(5, "traversal", nar.clone(), "none"),
        Entry::new(6, "wrong-name", nar.clone(), "none"),
        Entry::new(7, "wrong-size", nar.clone(), "bzip2"),
        Entry::new(8, "not-a-nar", nar.clone(), "none"),
    ];
    let infos = write_cache(&cache, &entries);
    let edit = |i: usize, from: &str, to: &str| {
        let s = std::fs::read_to_string(&infos[i]).unwrap();
        assert!(s.contains(from), "{from} not in {s}");
        std::fs::write(&infos[i], s.replacen(from, to, 1)).unwrap();
    };
    // A NarHash of other bytes.
    let other = tmp.path().join("other");
    std::fs::write(&other, b"other").unwrap();
    edit(1, &nar_hash(&nar), &nar_hash(&nar_of(&other)));
    // A cut xz stream.
    let xz = cache.join(format!("nar/{}.nar.xz", entries[2].hash));
    let data = std::fs::read(&xz).unwrap();
    std::fs::write(&xz, &data[..data.len() / 2]).unwrap();
    std::fs::remove_file(cache.join(format!("nar/{}.nar", entries[3].hash))).unwrap();
    // A URL leaving the cache, to a real NAR: refused all the same.
    std::fs::write(tmp.path().join("outside.nar"), &nar).unwrap();
    edit(4, &format!("nar/{}.nar", entries[4].hash), "../outside.nar");
    // A narinfo file whose name is not its StorePath's hash.
    std::fs::rename(&infos[5], cache.join(format!("{}.narinfo", fake_hash(66)))).unwrap();
    edit(
        6,
        &format!("NarSize: {}", nar.len()),
        &format!("NarSize: {}", nar.len() + 1),
    );
    std::fs::write(
        cache.join(format!("nar/{}.nar", entries[7].hash)),
        b"nix-archive-2 garbage",
    )
    .unwrap();
    // A narinfo that does not parse at all.
    std::fs::write(
        cache.join(format!("{}.narinfo", fake_hash(77))),
        "StorePath /nix/store/x\n",
    )
    .unwrap();

    let store = tmp.path().join("store");
    let out = narfs()
        .arg("import")
        .arg(&cache)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a failed entry must fail the run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("imported 1 store paths") && stdout.contains("8 failed"),
        "{stdout}{stderr}"
    );
    for why in [
        "its narinfo says NarHash",
        "not a relative path inside the cache",
        "does not match the file name",
        "its narinfo says NarSize",
        "No such file",
        "line 1",
    ] {
        assert!(stderr.contains(why), "no {why:?} in:\n{stderr}");
    }
    assert_eq!(stderr.matches("narfs: skipping").count(), 8, "{stderr}");
    // Only the good one is recorded; nothing else half-imported.
    let recs = roots(&store);
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["name"], entries[0].store_path().as_str());
    // The failures' blocks are garbage: gc removes them and the good root stays whole.
    assert!(narfs()
        .args(["gc", "--store"])
        .arg(&store)
        .status()
        .unwrap()
        .success());
    assert!(narfs()
        .args(["verify", "--store"])
        .arg(&store)
        .status()
        .unwrap()
        .success());
}

#[test]
fn refuses_what_is_not_a_nix_store_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = narfs()
        .arg("import")
        .arg(tmp.path())
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a Nix binary cache"));
    std::fs::write(tmp.path().join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
    let out = narfs()
        .arg("import")
        .arg(tmp.path())
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/gnu/store"));
}

/// Decompression bombs: a narinfo saying `NarSize: 4096` whose .nar.xz, .nar.zst and
/// .nar.bz2 (a few KiB each) expand to a 64 MiB NAR of one file with 256 distinct
/// chunks. Each entry fails as longer than its NarSize, nothing is recorded for it,
/// and the store holds at most a few blocks: the NAR was cut one byte past 4096, not
/// encoded to the end (that would leave 256 chunk blocks).
#[test]
fn decompression_bombs_stop_at_nar_size() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    let good = Entry::new(
        1,
        "good",
        nar_of(&sample_tree(tmp.path(), 4, 1_000)),
        "none",
    );
    write_cache(&cache, std::slice::from_ref(&good));
    let mut bombs = Vec::new();
    for (seed, how, ext) in [(2, "xz", ".xz"), (3, "zstd", ".zst"), (4, "bzip2", ".bz2")] {
        let e = Entry::new(seed, &format!("bomb-{how}"), Vec::new(), "none");
        let file = format!("nar/{}.nar{ext}", e.hash);
        let out = std::fs::File::create(cache.join(&file)).unwrap();
        match how {
            "xz" => {
                let mut w = liblzma::write::XzEncoder::new(out, 6);
                bomb(&mut w);
                w.finish().unwrap();
            }
            "zstd" => {
                let mut w = zstd::Encoder::new(out, 19).unwrap();
                bomb(&mut w);
                w.finish().unwrap();
            }
            _ => {
                let mut w = bzip2::write::BzEncoder::new(out, bzip2::Compression::best());
                bomb(&mut w);
                w.finish().unwrap();
            }
        }
        let size = std::fs::metadata(cache.join(&file)).unwrap().len();
        assert!(size < 1 << 20, "the {how} bomb is {size} bytes");
        let info = format!(
            "StorePath: {}\nURL: {file}\nCompression: {how}\nNarHash: {}\nNarSize: 4096\nReferences: \n",
            e.store_path(),
            nar_hash(&good.nar),
        );
        std::fs::write(cache.join(format!("{}.narinfo", e.hash)), info).unwrap();
        bombs.push(e);
    }

    let store = tmp.path().join("store");
    let out = narfs()
        .args(["import", "--store"])
        .arg(&store)
        .arg(&cache)
        .output()
        .unwrap();
    assert!(!out.status.success(), "the bombs must fail the run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.contains("imported 1 store paths") && stdout.contains("3 failed"),
        "{stdout}{stderr}"
    );
    for e in &bombs {
        let line = stderr
            .lines()
            .find(|l| l.contains(&format!("{}.narinfo", e.hash)))
            .unwrap_or_else(|| panic!("{} not reported: {stderr}", e.name));
        assert!(
            line.contains("longer than its narinfo's NarSize 4096"),
            "{}: {line}",
            e.name
        );
    }
    let recs = roots(&store);
    assert_eq!(recs.len(), 1, "{recs:?}");
    assert_eq!(recs[0]["name"], good.store_path().as_str());
    let stats = narfs()
        .args(["stats", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(stats.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let blocks = stats["unique_blocks"].as_u64().unwrap();
    assert!(
        blocks < 16,
        "{blocks} blocks in the store: a bomb was encoded on: {stats}"
    );
}
