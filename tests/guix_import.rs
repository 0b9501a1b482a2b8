//! `narfs import` of a cache a real `guix publish --cache` baked (Guix 1.5.0 in the
//! chroot `.ci/guix.sh` sets up): store items made by the real daemon (text, text with a
//! reference, a tree with an executable and a symlink, one over 10 MiB), lzip and zstd
//! NARs, every item decoded byte for byte as the real `lzip -d` and `zstd -d` read
//! those NARs and hashing to `guix hash -S nar`; a corrupted lzip NAR and an lzip bomb are failed
//! entries with nothing recorded; a second import resumes.

mod common;
mod guix_support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{narfs, run};
use guix_support::{bake, base, guix, guix_dir, Publish};
use sha2::{Digest, Sha256};

/// The store items made for the test: (store path, a name saying what it is).
fn make_items(dir: &Path, work: &Path, inside: &str) -> Vec<String> {
    let tree = work.join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    common::write(&tree.join("bin/run"), b"#!/bin/sh\necho run\n", true);
    common::write(&tree.join("README"), b"a tree\n", false);
    common::symlink(b"bin/run", &tree.join("link"));
    common::write(&work.join("big.bin"), &common::bytes(18, 11 << 20), false);
    let pid = std::process::id();
    let script = format!(
        r#"(use-modules (guix store))
(with-store s
  (let* ((hello (add-text-to-store s "hello.txt" "hello from narfs {pid}\n"))
         (refs (add-text-to-store s "refs.txt" hello (list hello)))
         (tree (add-to-store s "tree" #t "sha256" "{inside}/tree"))
         (big (add-to-store s "big.bin" #t "sha256" "{inside}/big.bin"))
         (bad (add-text-to-store s "corrupt.txt" "to be corrupted {pid}\n"))
         (bomb (add-text-to-store s "bomb.txt" "to be a bomb {pid}\n")))
    (for-each (lambda (p) (display p) (newline)) (list hello refs tree big bad bomb))))
"#
    );
    std::fs::write(work.join("mk.scm"), script).unwrap();
    let out = guix(dir, &["guix", "repl", &format!("{inside}/mk.scm")]);
    let paths: Vec<String> = out.lines().map(str::to_string).collect();
    assert_eq!(paths.len(), 6, "{out}");
    paths
}

#[test]
fn imports_what_guix_publish_baked() {
    let Some(dir) = guix_dir() else { return };
    let (work, inside) = guix_support::work_dir(&dir, "narfs-guix-import-");
    let paths = make_items(&dir, work.path(), &inside);
    let cache = work.path().join("cache");
    let t = Instant::now();
    let publish = Publish::start(&dir, &format!("{inside}/cache"));
    bake(&publish, &cache, &paths);
    eprintln!(
        "guix publish baked {} items in {:?}",
        paths.len(),
        t.elapsed()
    );

    // The corrupt one and the bomb, read as lzip: their narinfo keeps only its lzip group.
    let (good, bad) = paths.split_at(4);
    for (p, what) in bad.iter().zip(["corrupt", "bomb"]) {
        let b = base(p);
        let info = cache.join(format!("lzip/{b}.narinfo"));
        let text = std::fs::read_to_string(&info).unwrap();
        let cut = text.find("URL: nar/zstd/").expect("a zstd group");
        std::fs::remove_file(&info).unwrap(); // a hard link of zstd/'s: not written through
        std::fs::write(&info, &text[..cut]).unwrap();
        std::fs::remove_file(cache.join(format!("zstd/{b}.narinfo"))).unwrap();
        let nar = cache.join(format!("lzip/{b}.nar"));
        if what == "corrupt" {
            let mut bytes = std::fs::read(&nar).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            std::fs::write(&nar, bytes).unwrap();
        } else {
            lzip_bomb(&dir, &format!("{inside}/cache/lzip/{b}.nar"));
        }
    }

    let store = work.path().join("store");
    let import = || {
        let out = narfs()
            .arg("import")
            .arg(&cache)
            .arg("--store")
            .arg(&store)
            .arg("--json")
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "two entries are bad: the import must fail"
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        v
    };
    let t = Instant::now();
    let v = import();
    eprintln!("narfs import took {:?}: {v}", t.elapsed());
    assert_eq!(v["imported"], 4, "{v}");
    let failed: Vec<String> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["narinfo"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(failed.len(), 2, "{v}");
    for p in bad {
        assert!(
            failed.iter().any(|f| f.contains(base(p))),
            "{p} not failed: {v}"
        );
    }
    let bomb_error = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["narinfo"].as_str().unwrap().contains("bomb"))
        .map(|f| f["error"].as_str().unwrap().to_string())
        .unwrap();
    assert!(bomb_error.contains("NarSize"), "{bomb_error}");

    let ls = narfs()
        .args(["ls", "--json", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let recs: Vec<serde_json::Value> = String::from_utf8(ls.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(
        recs.len(),
        4,
        "nothing recorded for the bad entries: {recs:?}"
    );
    for p in good {
        let rec = recs
            .iter()
            .find(|r| r["name"] == p.as_str())
            .unwrap_or_else(|| panic!("{p} not recorded"));
        // The narinfo text kept verbatim (its Signature: signs it).
        let text =
            std::fs::read_to_string(cache.join(format!("zstd/{}.narinfo", base(p)))).unwrap();
        assert_eq!(rec["narinfo"]["text"], text.as_str(), "{p}");
        let dec = run(narfs().args(["decode", "--store"]).arg(&store).arg(p));
        // As the real lzip and zstd decompress what Guix baked, and hashing to what
        // Guix says.
        for (c, tool) in [("lzip", "lzip"), ("zstd", "zstd")] {
            let file = format!("{inside}/cache/{c}/{}.nar", base(p));
            let out = Command::new(dir.join("guix-run"))
                .args([tool, "-dc", &file])
                .output()
                .unwrap();
            assert!(out.status.success(), "{tool} -dc {file}");
            assert!(
                dec.stdout == out.stdout,
                "{p} decodes differently from its {c} NAR"
            );
        }
        let want = guix(&dir, &["guix", "hash", "-S", "nar", "-f", "hex", p]);
        assert_eq!(hex(&Sha256::digest(&dec.stdout)), want.trim(), "{p}");
    }
    // The reference is kept.
    let refs = recs.iter().find(|r| r["name"] == good[1].as_str()).unwrap();
    assert_eq!(
        refs["narinfo"]["references"],
        serde_json::json!([base(&good[0])])
    );
    drop(publish);

    // A second run resumes: the four are present, the two still fail.
    let v = import();
    assert_eq!(
        (v["imported"].as_u64(), v["already_present"].as_u64()),
        (Some(0), Some(4)),
        "{v}"
    );
    assert_eq!(v["failed"].as_array().unwrap().len(), 2, "{v}");
}

/// Writes (inside the chroot) `out`: the lzip, by the real `lzip -9`, of a valid NAR
/// start (one regular file of 64 MiB of zeros) far past its narinfo's NarSize.
fn lzip_bomb(dir: &Path, out: &str) {
    let size: u64 = 64 << 20;
    let mut lzip = Command::new(dir.join("guix-run"))
        .args(["sh", "-c", &format!("lzip -9 > {out}")])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    let mut w = lzip.stdin.take().unwrap();
    for s in ["nix-archive-1", "(", "type", "regular", "contents"] {
        w.write_all(&(s.len() as u64).to_le_bytes()).unwrap();
        w.write_all(s.as_bytes()).unwrap();
        w.write_all(&[0; 8][..(8 - s.len() % 8) % 8]).unwrap();
    }
    w.write_all(&size.to_le_bytes()).unwrap();
    std::io::copy(&mut std::io::repeat(0).take(size), &mut w).unwrap();
    drop(w);
    assert!(lzip.wait().unwrap().success());
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A running `guix publish` (no `--cache`: NARs compressed as they are asked for) read
/// over HTTP: given the item with a reference and the tree, the closure brings the
/// referenced one too; each decodes to what `guix hash -S nar` hashes.
#[test]
fn imports_from_a_running_guix_publish() {
    let Some(dir) = guix_dir() else { return };
    let (work, inside) = guix_support::work_dir(&dir, "narfs-guix-http-");
    let paths = make_items(&dir, work.path(), &inside);
    let publish = Publish::with_args(&dir, &["--compression=gzip:1", "--compression=zstd:3"]);
    let port = publish.port;
    // hello, refs (references hello), tree: ask for refs and tree.
    let (hello, refs, tree) = (&paths[0], &paths[1], &paths[2]);
    let list = work.path().join("paths");
    std::fs::write(&list, format!("{refs}\n{tree}\n")).unwrap();
    let store = work.path().join("store");
    let t = Instant::now();
    let out = narfs()
        .arg("import")
        .arg(format!("http://127.0.0.1:{port}/"))
        .arg("--paths")
        .arg(&list)
        .arg("--store")
        .arg(&store)
        .arg("--json")
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
    eprintln!("narfs import over HTTP took {:?}: {v}", t.elapsed());
    assert!(out.status.success(), "{v}");
    assert_eq!(v["imported"], 3, "the two and the one referenced: {v}");
    for p in [hello, refs, tree] {
        let dec = run(narfs().args(["decode", "--store"]).arg(&store).arg(p));
        let want = guix(&dir, &["guix", "hash", "-S", "nar", "-f", "hex", p]);
        assert_eq!(hex(&Sha256::digest(&dec.stdout)), want.trim(), "{p}");
    }
    drop(publish);
}
