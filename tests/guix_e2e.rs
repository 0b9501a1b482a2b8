//! The real Guix daemon (Guix 1.5.0, `.ci/guix.sh`) substituting from `narfs serve`:
//! store items a real `guix publish --cache` baked (lzip, zstd) and `narfs import`
//! read, served with their original signatures, and an item narfs encoded itself,
//! signed by `narfs serve --sign-key` with a key the real Guix made; each one deleted
//! and substituted back by the daemon (as plain NARs, then as zstd NARs made on the
//! fly by `--nar-compression zstd`), its `guix hash -S nar` equal to the NarHash and
//! `guix gc --verify=contents` clean. A NAR or a narinfo tampered with on the way makes
//! Guix refuse the substitute (the path stays invalid; its words are printed).

mod common;
mod guix_support;
mod serve_support;

use std::time::Instant;

use common::{narfs, run};
use guix_support::tamper::{relay, Tamper};
use guix_support::{
    bake, base, delete, generate_key, guix, guix_dir, substitute, valid, Acl, Publish,
};
use serve_support::Server;

#[test]
fn guix_substitutes_from_narfs_serve() {
    let Some(dir) = guix_dir() else { return };
    let t0 = Instant::now();
    let (work, inside) = guix_support::work_dir(&dir, "narfs-guix-e2e-");
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    common::write(&tree.join("bin/run"), b"#!/bin/sh\necho run\n", true);
    common::write(&tree.join("README"), b"a tree\n", false);
    common::symlink(b"bin/run", &tree.join("link"));
    common::write(
        &work.path().join("big.bin"),
        &common::bytes(29, 11 << 20),
        false,
    );
    let pid = std::process::id();
    let paths = guix_support::add_to_store(
        &dir,
        work.path(),
        &inside,
        &format!(
            r#"(hello (add-text-to-store s "hello.txt" "hello from narfs e2e {pid}\n"))
         (refs (add-text-to-store s "refs.txt" hello (list hello)))
         (tree (add-to-store s "tree" #t "sha256" "{inside}/tree"))
         (big (add-to-store s "big.bin" #t "sha256" "{inside}/big.bin"))
         (own (add-text-to-store s "own.txt" (string-append "narfs encoded this " hello) (list hello)))"#
        ),
        &["hello", "refs", "tree", "big", "own"],
    );
    let (published, own) = (&paths[..4], &paths[4]);

    // guix publish bakes lzip and zstd for the four; narfs imports its cache.
    let cache = work.path().join("cache");
    let publish = Publish::start(&dir, &format!("{inside}/cache"));
    bake(&publish, &cache, published);
    drop(publish);
    let store = work.path().join("store");
    run(narfs()
        .arg("import")
        .arg(&cache)
        .arg("--store")
        .arg(&store)
        .arg("--json"));
    // The fifth narfs encodes itself, from its NAR as Guix's own writer makes it.
    let own_nar = guix_support::dump_nar(&dir, work.path(), &inside, own, "own.nar");
    let hello_base = base(&paths[0]).to_string();
    run(narfs()
        .args(["encode", "--store"])
        .arg(&store)
        .args(["--store-path", own, "--reference", &hello_base])
        .arg(&own_nar));

    // A key for narfs, made by the real Guix; the daemon trusts it and the
    // publisher's key.
    generate_key(&dir, work.path(), &inside, "narfs");
    let _acl = Acl::authorize(
        &dir,
        &["/etc/guix/signing-key.pub", &format!("{inside}/narfs.pub")],
    );

    let key = work.path().join("narfs.sec");
    let server = Server::start_with(&store, &["--sign-key".as_ref(), key.as_os_str()]);
    let info = |p: &str| {
        let r = serve_support::get(server.addr, &format!("/{}.narinfo", &base(p)[..32]), &[]);
        assert_eq!(r.status, 200, "{p}");
        r.text()
    };
    // The imported ones keep guix publish's signed text; ours is signed by narfs.
    let published_text =
        std::fs::read_to_string(cache.join(format!("zstd/{}.narinfo", base(&paths[0])))).unwrap();
    let cut = published_text.find("URL:").unwrap();
    assert!(info(&paths[0]).starts_with(&published_text[..cut]));
    assert!(info(own).contains("Signature: 1;narfs;"), "{}", info(own));
    let cache_info = serve_support::get(server.addr, "/nix-cache-info", &[]).text();
    assert!(cache_info.contains("StoreDir: /gnu/store"), "{cache_info}");

    // Delete every item (refs and own refer to hello) and substitute each back.
    let all: Vec<&str> = paths.iter().map(String::as_str).collect();
    let want: Vec<String> = all
        .iter()
        .map(|p| guix(&dir, &["guix", "hash", "-S", "nar", p]))
        .collect();
    delete(&dir, &all);
    for (p, want) in all.iter().zip(&want) {
        let (ok, err) = substitute(&dir, work.path(), &inside, &server.url, p);
        assert!(
            ok && valid(&dir, p),
            "{p} not substituted from narfs: {err}"
        );
        assert_eq!(&guix(&dir, &["guix", "hash", "-S", "nar", p]), want, "{p}");
    }
    guix(&dir, &["guix", "gc", "--verify=contents"]);
    eprintln!(
        "the Guix daemon substituted {} items from narfs serve",
        all.len()
    );

    // Again as zstd NARs made on the fly (`--nar-compression zstd`): the signed text
    // unchanged, a zstd group first, and the daemon takes them.
    let zlog = work.path().join("zstd-serve.log");
    let key_arg = key.to_str().unwrap();
    let zsrv = Server::start_logged(
        &store,
        &[
            "--sign-key",
            key_arg,
            "--nar-compression",
            "zstd",
            "--access-log",
        ],
        &zlog,
    );
    let zinfo = serve_support::get(
        zsrv.addr,
        &format!("/{}.narinfo", &base(&paths[0])[..32]),
        &[],
    )
    .text();
    assert!(zinfo.starts_with(&published_text[..cut]), "{zinfo}");
    assert!(
        zinfo[cut..].starts_with("URL: nar/") && zinfo.contains(".nar.zst\nCompression: zstd\n"),
        "{zinfo}"
    );
    delete(&dir, &all);
    for (p, want) in all.iter().zip(&want) {
        let (ok, err) = substitute(&dir, work.path(), &inside, &zsrv.url, p);
        assert!(
            ok && valid(&dir, p),
            "{p} not substituted from narfs as zstd: {err}"
        );
        assert_eq!(&guix(&dir, &["guix", "hash", "-S", "nar", p]), want, "{p}");
    }
    guix(&dir, &["guix", "gc", "--verify=contents"]);
    let log = std::fs::read_to_string(&zlog).unwrap();
    assert!(
        log.contains(".nar.zst 200"),
        "Guix did not take the zstd NARs: {log}"
    );
    drop(zsrv);

    // Tampered on the way: the NAR (one byte of hello's text), then the narinfo (the
    // NarHash above the signature swapped for another item's).
    let hello = all[0];
    let needle = format!("hello from narfs e2e {pid}");
    let other_hash = info(all[3])
        .lines()
        .find(|l| l.starts_with("NarHash:"))
        .unwrap()
        .to_string();
    for (what, tamper) in [
        ("NAR", Tamper::Nar(needle.into_bytes())),
        ("narinfo", Tamper::NarInfo(other_hash)),
    ] {
        delete(&dir, &[hello]);
        let proxy = relay(server.addr, tamper);
        let (ok, err) = substitute(&dir, work.path(), &inside, &proxy, hello);
        eprintln!("--- Guix on a tampered {what}:\n{}", err.trim());
        assert!(!ok && !valid(&dir, hello), "Guix took a tampered {what}");
    }
    guix(&dir, &["guix", "gc", "--verify=contents"]);
    eprintln!("guix e2e took {:?}", t0.elapsed());
}
