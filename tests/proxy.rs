//! The substituter proxy (`narfs serve --upstream --gateway`) against a publisher's
//! `narfs serve`, which is both its upstream (narinfos) and its trustless gateway
//! (blocks): no Kubo needed. What the network tests (`ipfs_network.rs`,
//! `guix_ipfs.rs`) cannot pin down cheaply:
//!
//! - `IPFS-Encoding:` decides how a root is decoded: a tree and a zstd fallback both
//!   come through byte for byte; an upstream narinfo without it, or with one the proxy
//!   does not know, is a 502 that says so, and nothing is fetched;
//! - `HEAD /nar/…` answers the narinfo's NarSize without fetching a block, 404 for a
//!   root no narinfo named.

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;

use serve_support::{get, nar_of, request, sample_tree, write_cache, Entry, Server};

fn narfs_ok(cmd: &mut std::process::Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A publisher store holding a tree imported from a cache (`tree`) and the same
/// tree's NAR encoded as the zstd fallback under another store path (`packed`).
fn publisher_store(t: &Path) -> (std::path::PathBuf, Entry, String, Vec<u8>) {
    let nar = nar_of(&sample_tree(t, 3, 300_000));
    let tree = Entry::new(1, "tree", nar.clone(), "xz");
    write_cache(&t.join("cache"), std::slice::from_ref(&tree));
    let store = t.join("publisher-store");
    narfs_ok(
        serve_support::narfs()
            .arg("import")
            .arg(t.join("cache"))
            .arg("--store")
            .arg(&store),
    );
    let packed = Entry::new(2, "packed", Vec::new(), "none").store_path();
    std::fs::write(t.join("packed.nar"), &nar).unwrap();
    narfs_ok(
        serve_support::narfs()
            .args(["encode", "--fallback", "--store"])
            .arg(&store)
            .args(["--store-path", &packed])
            .arg(t.join("packed.nar")),
    );
    (store, tree, packed, nar)
}

fn proxy(store: &Path, upstream: &str, gateway: &str, log: &Path) -> Server {
    Server::start_proxy(store, upstream, gateway, &["--fetch-attempts", "1"], log)
}

fn field<'a>(narinfo: &'a str, key: &str) -> Option<&'a str> {
    narinfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

fn hash_of(store_path: &str) -> &str {
    &store_path["/nix/store/".len()..][..32]
}

#[test]
fn each_encoding_comes_through_and_head_fetches_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let (store, tree, packed, nar) = publisher_store(t);
    let pub_log = t.join("publisher.log");
    let publisher = Server::start_logged(&store, &["--access-log"], &pub_log);
    let proxy_store = t.join("proxy-store");
    let p = proxy(
        &proxy_store,
        &publisher.url,
        &publisher.url,
        &t.join("proxy.log"),
    );

    for (path, encoding) in [(tree.store_path(), "none"), (packed, "zstd")] {
        let info = get(p.addr, &format!("/{}.narinfo", hash_of(&path)), &[]);
        assert_eq!(info.status, 200, "{}", info.text());
        let info = info.text();
        assert_eq!(field(&info, "IPFS-Encoding"), Some(encoding), "{info}");
        let url = format!("/{}", field(&info, "URL").unwrap());
        let size = field(&info, "NarSize").unwrap();
        assert_eq!(size, nar.len().to_string());

        // HEAD: the length, and no block asked of the gateway, nothing recorded.
        let asked = || {
            std::fs::read_to_string(&pub_log)
                .unwrap()
                .matches("/ipfs/")
                .count()
        };
        let ls = || {
            narfs_ok(
                serve_support::narfs()
                    .args(["ls", "--json", "--store"])
                    .arg(&proxy_store),
            )
        };
        let (asked_before, ls_before) = (asked(), ls());
        let head = request(p.addr, "HEAD", &url, &[]);
        assert_eq!(head.status, 200, "{url}");
        assert_eq!(
            head.header("content-length"),
            Some(size),
            "{:?}",
            head.headers
        );
        assert_eq!(asked(), asked_before, "HEAD asked the gateway");
        assert_eq!(ls(), ls_before, "HEAD recorded a root");
        assert!(!ls_before.contains(&path), "{ls_before}");

        // GET: the NAR, byte for byte, through the gateway.
        let got = get(p.addr, &url, &[]);
        assert_eq!(got.status, 200, "{}", got.text());
        assert!(got.complete && got.body == nar, "{path}: not the NAR");
        // Recorded now: HEAD still answers, from the record alone.
        assert_eq!(
            request(p.addr, "HEAD", &url, &[]).header("content-length"),
            Some(size)
        );
    }
    let log = std::fs::read_to_string(&pub_log).unwrap();
    assert!(log.contains("/ipfs/") && !log.contains("/nar/"), "{log}");

    // A root no narinfo named, nor the store records: 404, also for HEAD.
    let stranger = "/nar/bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku.nar";
    assert_eq!(request(p.addr, "HEAD", stranger, &[]).status, 404);
    assert_eq!(get(p.addr, stranger, &[]).status, 404);
}

/// An upstream that answers `/<hash>.narinfo` with `narinfo`, anything else 404, and
/// counts `/ipfs/` requests (a proxy that fetched would ask it, as its gateway).
fn fake_upstream(narinfo: String, ipfs: Arc<std::sync::atomic::AtomicUsize>) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut conn in l.incoming().flatten() {
            let mut head = Vec::new();
            let mut b = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match conn.read(&mut b) {
                    Ok(1) => head.push(b[0]),
                    _ => break,
                }
            }
            let head = String::from_utf8_lossy(&head);
            let target = head.split_whitespace().nth(1).unwrap_or("/");
            if target.starts_with("/ipfs/") {
                ipfs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            let (status, body) = if target.ends_with(".narinfo") {
                ("200 OK", narinfo.as_str())
            } else {
                ("404 Not Found", "")
            };
            let _ = write!(
                conn,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn a_missing_or_unknown_encoding_is_a_502_that_says_so() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let tree = Entry::new(1, "tree", nar_of(&sample_tree(t, 5, 1000)), "none");
    let narinfo = {
        write_cache(&t.join("cache"), std::slice::from_ref(&tree));
        std::fs::read_to_string(t.join(format!("cache/{}.narinfo", tree.hash))).unwrap()
    };
    let cid = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
    for (extra, says) in [
        ("", "no IPFS-Encoding line"),
        ("IPFS-Encoding: brotli\n", "IPFS-Encoding \"brotli\""),
        (
            "IPFS-Encoding: none\nIPFS-Encoding: zstd\n",
            "IPFS-Encoding twice",
        ),
    ] {
        let fetched = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let up = fake_upstream(
            format!("{narinfo}IPFS-CID: {cid}\n{extra}"),
            fetched.clone(),
        );
        let url = format!("http://{up}");
        let log = t.join("proxy.log");
        let p = proxy(&t.join("proxy-store"), &url, &url, &log);
        let r = get(p.addr, &format!("/{}.narinfo", tree.hash), &[]);
        assert_eq!(r.status, 502, "{extra:?}: {}", r.text());
        assert!(r.text().contains(says), "{extra:?}: {}", r.text());
        // The NAR it would have named is unknown: nothing is fetched.
        let nar = get(p.addr, &format!("/nar/{cid}.nar"), &[]);
        assert_eq!(nar.status, 404, "{}", nar.text());
        assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(p);
        assert!(std::fs::read_to_string(&log).unwrap().contains(says));
    }
}
