//! The seed's scenario with the seed's own client: the real Guix daemon (Guix 1.5.0,
//! `.ci/guix.sh`) substitutes through the local narfs proxy, whose blocks come over
//! IPFS (two Kubo nodes on loopback), never from the publisher.
//!
//! - The publisher: a real `guix publish --cache` bakes store items (a text, a tree
//!   with an executable and a symlink, an item with a reference), `narfs import` reads
//!   its cache; one more item narfs encodes itself as the zstd fallback (`encode
//!   --fallback`, signed by `narfs serve --sign-key` with a key the real Guix made);
//!   `narfs publish --ipfs-api A` puts every DAG into Kubo node A; `narfs serve
//!   --access-log` answers the narinfos.
//! - The client: Kubo node B connected to A only; `narfs serve --upstream PUBLISHER
//!   --gateway B` over a fresh store; the daemon, with both keys authorized, deletes
//!   each item and substitutes it back through the proxy (`ensure-path`).
//!
//! Checked: `guix hash -S nar` equals the NarHash and `guix gc --verify=contents`
//! passes; B received the blocks from A over bitswap; the publisher served no `/nar/`.
//! Then a proxy whose gateway corrupts every block it relays, and one whose upstream
//! alters a narinfo above its `Signature:`, each leave the path invalid: the first
//! because the proxy refuses the block (502), the second because Guix refuses the
//! signature before it asks for the NAR.

mod common;
mod guix_support;
mod kubo_support;
mod serve_support;

use std::path::Path;
use std::time::Instant;

use common::narfs;
use guix_support::tamper::{relay, Tamper};
use guix_support::{
    bake, base, delete, generate_key, guix, guix_dir, substitute, valid, Acl, Publish,
};
use kubo_support::{have_ipfs, Kubo};
use serve_support::Server;

/// Runs a `narfs` command, panicking with its stderr if it fails.
fn run(cmd: &mut std::process::Command) {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The proxy under test: `--access-log`, two tries of 10 s for each block.
fn proxy(store: &Path, upstream: &str, gateway: &str, log: &Path) -> Server {
    let args = [
        "--fetch-timeout",
        "10",
        "--fetch-attempts",
        "2",
        "--access-log",
    ];
    Server::start_proxy(store, upstream, gateway, &args, log)
}

fn read(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

#[test]
fn guix_substitutes_over_ipfs_through_the_proxy() {
    let Some(dir) = guix_dir() else { return };
    if !have_ipfs() {
        return;
    }
    let t0 = Instant::now();
    let (work, inside) = guix_support::work_dir(&dir, "narfs-guix-ipfs-");
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tree = work.path().join("tree");
    std::fs::create_dir_all(tree.join("bin")).unwrap();
    common::write(&tree.join("bin/run"), b"#!/bin/sh\necho run\n", true);
    common::write(&tree.join("lib.bin"), &common::bytes(7, 600_000), false);
    common::symlink(b"bin/run", &tree.join("link"));
    let pid = std::process::id();
    let paths = guix_support::add_to_store(
        &dir,
        work.path(),
        &inside,
        &format!(
            r#"(hello (add-text-to-store s "hello.txt" "hello over ipfs {pid}\n"))
         (refs (add-text-to-store s "refs.txt" hello (list hello)))
         (tree (add-to-store s "tree" #t "sha256" "{inside}/tree"))
         (own (add-text-to-store s "own.txt" (string-append "narfs packed this " hello) (list hello)))"#
        ),
        &["hello", "refs", "tree", "own"],
    );
    let (published, own) = (&paths[..3], &paths[3]);

    // The publisher's store: guix publish's cache imported, and `own` encoded by narfs
    // as the zstd fallback from the NAR Guix's own writer makes.
    let cache = work.path().join("cache");
    let publish = Publish::start(&dir, &format!("{inside}/cache"));
    bake(&publish, &cache, published);
    drop(publish);
    let store = t.join("publisher-store");
    run(narfs().arg("import").arg(&cache).arg("--store").arg(&store));
    let own_nar = guix_support::dump_nar(&dir, work.path(), &inside, own, "own.nar");
    run(narfs()
        .args(["encode", "--fallback", "--store"])
        .arg(&store)
        .args(["--store-path", own, "--reference", base(&paths[0])])
        .arg(&own_nar));
    generate_key(&dir, work.path(), &inside, "narfs");
    let _acl = Acl::authorize(
        &dir,
        &["/etc/guix/signing-key.pub", &format!("{inside}/narfs.pub")],
    );

    // Kubo A holds every DAG; the publisher's narfs serve answers narinfos.
    let mut a = Kubo::init(None);
    a.start_online();
    let mut publish = narfs();
    publish
        .args([
            "publish",
            "--ipfs-api",
            a.api.as_deref().unwrap(),
            "--store",
        ])
        .arg(&store)
        .args(&paths);
    run(&mut publish);
    let key = work.path().join("narfs.sec");
    let pub_log = t.join("publisher.log");
    let publisher = Server::start_logged(
        &store,
        &["--access-log", "--sign-key", key.to_str().unwrap()],
        &pub_log,
    );
    let said = |p: &str| {
        let r = serve_support::get(publisher.addr, &format!("/{}.narinfo", &base(p)[..32]), &[]);
        assert_eq!(r.status, 200, "{p}");
        r.text()
    };
    assert!(said(&paths[0]).contains("\nIPFS-Encoding: none\n"));
    assert!(
        said(own).contains("\nIPFS-Encoding: zstd\n"),
        "{}",
        said(own)
    );

    // The client: B connected to A only, the proxy over a fresh store.
    let mut b = Kubo::init(None);
    b.config_json("Gateway.NoFetch", "false");
    b.start_online();
    b.connect_to(&a);
    let gateway = b.gateway.clone().unwrap();
    let proxy_log = t.join("proxy.log");
    let client = proxy(&t.join("proxy-store"), &publisher.url, &gateway, &proxy_log);

    // The proxy passes each narinfo through its Signature: line byte for byte.
    for p in &paths {
        let r = serve_support::get(client.addr, &format!("/{}.narinfo", &base(p)[..32]), &[]);
        assert_eq!(r.status, 200, "{p}: {}", r.text());
        let (ours, theirs) = (r.text(), said(p));
        let signed = &theirs[..theirs.find("URL:").unwrap()];
        assert!(signed.contains("\nSignature: 1;"), "{theirs}");
        assert!(ours.starts_with(signed), "{ours}");
    }

    let all: Vec<&str> = paths.iter().map(String::as_str).collect();
    let want: Vec<String> = all
        .iter()
        .map(|p| guix(&dir, &["guix", "hash", "-S", "nar", p]))
        .collect();
    delete(&dir, &all);
    let before = b.bitswap_received();
    for (p, want) in all.iter().zip(&want) {
        let (ok, err) = substitute(&dir, work.path(), &inside, &client.url, p);
        assert!(
            ok && valid(&dir, p),
            "{p} not substituted through the proxy: {err}\nproxy: {}",
            read(&proxy_log)
        );
        assert_eq!(&guix(&dir, &["guix", "hash", "-S", "nar", p]), want, "{p}");
    }
    guix(&dir, &["guix", "gc", "--verify=contents"]);
    let after = b.bitswap_received();
    let (blocks, bytes) = (after.0 - before.0, after.1 - before.1);
    eprintln!(
        "the Guix daemon substituted {} items through the proxy; B received {blocks} blocks, \
         {bytes} bytes over bitswap",
        all.len()
    );
    assert!(
        blocks >= all.len() as u64 && bytes > 600_000,
        "B received {blocks} blocks, {bytes} bytes"
    );
    let log = read(&proxy_log);
    assert_eq!(
        log.matches("narfs: access: GET /nar/").count(),
        all.len(),
        "{log}"
    );
    let access = read(&pub_log);
    assert!(access.contains(".narinfo 200"), "{access}");
    assert!(
        !access.contains("/nar/"),
        "the publisher served a NAR: {access}"
    );

    // A gateway that corrupts every block: the proxy refuses, the path stays invalid.
    let hello = all[0];
    delete(&dir, &[hello]);
    let bad_log = t.join("bad-gateway.log");
    let bad_gateway = relay(
        gateway.trim_start_matches("http://").parse().unwrap(),
        Tamper::Blocks,
    );
    let bad = proxy(&t.join("bad-store"), &publisher.url, &bad_gateway, &bad_log);
    let (ok, err) = substitute(&dir, work.path(), &inside, &bad.url, hello);
    eprintln!(
        "--- Guix through a gateway corrupting blocks:\n{}",
        err.trim()
    );
    let log = read(&bad_log);
    assert!(
        !ok && !valid(&dir, hello),
        "Guix took a corrupted NAR: {log}"
    );
    assert!(
        log.contains(" 502") && log.contains("not the block"),
        "{log}"
    );

    // A narinfo altered above its Signature (on the way from the publisher): Guix
    // refuses it before asking for the NAR.
    let other_hash = said(all[2])
        .lines()
        .find(|l| l.starts_with("NarHash:"))
        .unwrap()
        .to_string();
    let bad_upstream = relay(publisher.addr, Tamper::NarInfo(other_hash));
    let forged_log = t.join("forged.log");
    let forged = proxy(
        &t.join("forged-store"),
        &bad_upstream,
        &gateway,
        &forged_log,
    );
    let (ok, err) = substitute(&dir, work.path(), &inside, &forged.url, hello);
    eprintln!(
        "--- Guix on a narinfo altered above Signature:\n{}",
        err.trim()
    );
    let log = read(&forged_log);
    assert!(
        !ok && !valid(&dir, hello),
        "Guix took a forged narinfo: {log}"
    );
    assert!(
        log.contains(".narinfo 200") && !log.contains("/nar/"),
        "{log}"
    );
    eprintln!("guix over ipfs took {:?}", t0.elapsed());
}
