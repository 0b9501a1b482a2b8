//! `narfs import` of a hand-made `guix publish --cache` directory (no Guix needed): the
//! decompression-bomb and bad-entry protections hold for every compression Guix writes.
//! Each of lzip (the real `lzip` CLI), gzip (flate2) and zstd has a good entry decoded
//! byte for byte, a bomb (a narinfo saying `NarSize: 4096` whose small NAR file expands
//! to 64 MiB of distinct chunks) and a corrupted NAR. The bombs and the corrupt ones fail
//! with nothing recorded, the good ones are imported, and the store holds few blocks (a
//! bomb was cut one byte past its NarSize, not encoded on).

mod common;
mod serve_support;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::run;
use serve_support::*;

/// Writes to `out` the NAR `write` streams, compressed as Guix names `how`.
fn compressed(how: &str, out: &Path, write: &dyn Fn(&mut dyn Write)) {
    let file = std::fs::File::create(out).unwrap();
    match how {
        "lzip" => {
            let mut lzip = Command::new("lzip")
                .args(["-6", "-c"])
                .stdin(Stdio::piped())
                .stdout(file)
                .spawn()
                .unwrap();
            let mut w = lzip.stdin.take().unwrap();
            write(&mut w);
            drop(w);
            assert!(lzip.wait().unwrap().success());
        }
        "gzip" => {
            let mut w = flate2::write::GzEncoder::new(file, flate2::Compression::best());
            write(&mut w);
            w.finish().unwrap();
        }
        "zstd" => {
            let mut w = zstd::Encoder::new(file, 19).unwrap();
            write(&mut w);
            w.finish().unwrap();
        }
        other => panic!("{other}"),
    }
}

/// Writes one entry of a `guix publish --cache` directory, as Guix lays it out:
/// `hashes/<hash>`, `<how>/<base>.narinfo` and `<how>/<base>.nar`.
fn entry(
    cache: &Path,
    e: &Entry,
    how: &str,
    nar_hash: &str,
    nar_size: usize,
    nar: &dyn Fn(&mut dyn Write),
) {
    let base = e.base();
    std::fs::create_dir_all(cache.join(how)).unwrap();
    std::fs::write(cache.join("hashes").join(&e.hash), "").unwrap();
    compressed(how, &cache.join(format!("{how}/{base}.nar")), nar);
    let size = std::fs::metadata(cache.join(format!("{how}/{base}.nar")))
        .unwrap()
        .len();
    let info = format!(
        "StorePath: /gnu/store/{base}\nNarHash: {nar_hash}\nNarSize: {nar_size}\nReferences: \n\
         URL: nar/{how}/{base}\nCompression: {how}\nFileSize: {size}\n"
    );
    std::fs::write(cache.join(format!("{how}/{base}.narinfo")), info).unwrap();
}

#[test]
fn guix_bombs_and_bad_entries_are_skipped() {
    if !common::have("lzip") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("hashes")).unwrap();
    let mut goods = Vec::new();
    let mut bads = Vec::new();
    for (i, how) in (0u8..).zip(["lzip", "gzip", "zstd"]) {
        let nar = nar_of(&sample_tree(tmp.path(), 10 + i as u64, 5_000));
        let good = Entry::new(10 * i + 1, &format!("good-{how}"), nar, "none");
        let hash = nar_hash(&good.nar);
        entry(&cache, &good, how, &hash, good.nar.len(), &|w| {
            w.write_all(&good.nar).unwrap()
        });
        let b = Entry::new(10 * i + 2, &format!("bomb-{how}"), Vec::new(), "none");
        entry(&cache, &b, how, &hash, 4096, &bomb);
        let size = std::fs::metadata(cache.join(format!("{how}/{}.nar", b.base())))
            .unwrap()
            .len();
        assert!(size < 1 << 20, "the {how} bomb is {size} bytes");
        bads.push((b, "longer than its narinfo's NarSize 4096"));
        // A corrupt NAR file: one byte flipped in its middle.
        let c = Entry::new(10 * i + 3, &format!("corrupt-{how}"), Vec::new(), "none");
        entry(&cache, &c, how, &hash, good.nar.len(), &|w| {
            w.write_all(&good.nar).unwrap()
        });
        let file = cache.join(format!("{how}/{}.nar", c.base()));
        let mut bytes = std::fs::read(&file).unwrap();
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x40;
        std::fs::write(&file, bytes).unwrap();
        bads.push((c, ""));
        goods.push(good);
    }

    let store = tmp.path().join("store");
    let out = narfs()
        .args(["import", "--json", "--store"])
        .arg(&store)
        .arg(&cache)
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    assert!(!out.status.success(), "bad entries must fail the run: {v}");
    assert_eq!(v["imported"], 3, "{v}");
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 6, "{v}");
    for (e, why) in &bads {
        let f = failed
            .iter()
            .find(|f| f["narinfo"].as_str().unwrap().contains(&e.base()))
            .unwrap_or_else(|| panic!("{} not failed: {v}", e.name));
        let error = f["error"].as_str().unwrap();
        assert!(error.contains(why), "{}: {error}", e.name);
    }

    let ls = narfs()
        .args(["ls", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let names: Vec<String> = String::from_utf8(ls.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["name"].to_string())
        .collect();
    assert_eq!(
        names.len(),
        3,
        "nothing recorded for the bad entries: {names:?}"
    );
    for g in &goods {
        let path = format!("/gnu/store/{}", g.base());
        assert!(names.contains(&format!("\"{path}\"")), "{path}: {names:?}");
        let dec = run(narfs().args(["decode", "--store"]).arg(&store).arg(&path));
        assert!(dec.stdout == g.nar, "{path} decodes to other bytes");
    }
    let stats = narfs()
        .args(["stats", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(stats.status.success());
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    let blocks = stats["unique_blocks"].as_u64().unwrap();
    assert!(
        blocks < 64,
        "{blocks} blocks in the store: a bomb was encoded on: {stats}"
    );
}
