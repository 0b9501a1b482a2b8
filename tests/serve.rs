//! `narfs serve` over real HTTP on 127.0.0.1 (no external tools): the Nix binary cache
//! protocol (nix-cache-info, narinfo fields, NAR bytes), the trustless gateway (raw
//! blocks, CAR of the whole DAG, content types), status codes (400, 404, 406, 501),
//! path traversal attempts, and 32 concurrent clients each getting the right bytes.

mod common;
mod serve_support;

use std::str::FromStr;

use narfs_core::Cid;
use serve_support::*;

const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car";

/// A store with two imported paths (one referring to the other, with Deriver, Sig and
/// CA) and the entries they came from.
fn imported_store(
    tmp: &std::path::Path,
    big: usize,
    compression: &'static str,
) -> (std::path::PathBuf, Vec<Entry>) {
    let t1 = sample_tree(tmp, 1, big);
    let t2 = sample_tree(tmp, 2, 10_000);
    let mut entries = vec![
        Entry::new(1, "app-1.0", nar_of(&t1), compression),
        Entry::new(2, "lib-2.0", nar_of(&t2), "zstd"),
    ];
    entries[0].references = vec![entries[1].base()];
    entries[0].extra = format!(
        "Deriver: {}-app-1.0.drv\nSig: k-1:c2ln\nCA: fixed:r:sha256:0000000000000000000000000000000000000000000000000000\n",
        fake_hash(9)
    );
    let cache = tmp.join("cache");
    write_cache(&cache, &entries);
    let store = tmp.join("store");
    let out = narfs()
        .arg("import")
        .arg(&cache)
        .arg("--store")
        .arg(&store)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (store, entries)
}

/// A CID of no block in any test store.
fn unknown_cid() -> String {
    use narfs_core::block::{cid_for, HashAlg, RAW};
    cid_for(RAW, HashAlg::Sha2_256, b"stored nowhere").to_string()
}

fn field<'a>(narinfo: &'a str, key: &str) -> Option<&'a str> {
    narinfo
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

#[test]
fn nix_cache_protocol() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, entries) = imported_store(tmp.path(), 600_000, "xz");
    let srv = Server::start(&store);
    let a = srv.addr;

    let info = get(a, "/nix-cache-info", &[]);
    assert_eq!(info.status, 200);
    assert_eq!(
        info.text(),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n"
    );

    for e in &entries {
        let r = get(a, &format!("/{}.narinfo", e.hash), &[]);
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.header("content-type"), Some("text/x-nix-narinfo"));
        let t = r.text();
        assert_eq!(field(&t, "StorePath"), Some(e.store_path().as_str()));
        assert_eq!(field(&t, "Compression"), Some("none"));
        assert_eq!(field(&t, "NarHash"), Some(nar_hash(&e.nar).as_str()));
        assert_eq!(field(&t, "NarSize"), Some(e.nar.len().to_string().as_str()));
        assert_eq!(
            field(&t, "References"),
            Some(e.references.join(" ").as_str())
        );
        let cid = field(&t, "IPFS-CID").expect("IPFS-CID line");
        let url = field(&t, "URL").unwrap();
        assert_eq!(url, format!("nar/{cid}.nar"));

        let nar = get(a, &format!("/{url}"), &[]);
        assert_eq!(nar.status, 200);
        assert_eq!(
            nar.header("content-type"),
            Some("application/x-nix-archive")
        );
        assert_eq!(
            nar.header("content-length"),
            Some(e.nar.len().to_string().as_str())
        );
        assert!(
            nar.complete && nar.body == e.nar,
            "{} served different bytes",
            e.store_path()
        );
        let head = request(a, "HEAD", &format!("/{url}"), &[]);
        assert_eq!(head.status, 200);
        assert_eq!(
            head.header("content-length"),
            Some(e.nar.len().to_string().as_str())
        );
        assert!(head.body.is_empty(), "HEAD sent a body");
    }
    let t = get(a, &format!("/{}.narinfo", entries[0].hash), &[]).text();
    assert_eq!(
        field(&t, "Deriver"),
        Some(format!("{}-app-1.0.drv", fake_hash(9)).as_str())
    );
    assert_eq!(field(&t, "Sig"), Some("k-1:c2ln"));
    assert!(field(&t, "CA").is_some_and(|c| c.starts_with("fixed:r:sha256:")));

    // Unknown and malformed.
    assert_eq!(
        get(a, &format!("/{}.narinfo", fake_hash(50)), &[]).status,
        404
    );
    assert_eq!(get(a, "/tooshort.narinfo", &[]).status, 400);
    assert_eq!(get(a, "/nar/not-a-cid.nar", &[]).status, 400);
    let unknown = unknown_cid();
    assert_eq!(get(a, &format!("/nar/{unknown}.nar"), &[]).status, 404);
    assert_eq!(
        request(a, "HEAD", &format!("/nar/{unknown}.nar"), &[]).status,
        404
    );
    assert_eq!(get(a, "/nothing-here", &[]).status, 404);
}

#[test]
fn trustless_gateway() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, entries) = imported_store(tmp.path(), 600_000, "xz");
    let srv = Server::start(&store);
    let a = srv.addr;
    let t = get(a, &format!("/{}.narinfo", entries[0].hash), &[]).text();
    let root = field(&t, "IPFS-CID").unwrap().to_string();
    let root_cid = Cid::from_str(&root).unwrap();

    // One raw block, verified by us too.
    let r = get(a, &format!("/ipfs/{root}"), &[("Accept", RAW)]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some(RAW));
    narfs_core::block::verify(&root_cid, &r.body).unwrap();
    let by_format = get(a, &format!("/ipfs/{root}?format=raw"), &[]);
    assert_eq!((by_format.status, by_format.body == r.body), (200, true));

    // The whole DAG as a CAR: rooted at the CID, every block once and matching its CID,
    // and decoding it gives the NAR.
    let car = get(
        a,
        &format!("/ipfs/{root}?dag-scope=all"),
        &[("Accept", CAR)],
    );
    assert_eq!(car.status, 200);
    assert!(car.complete);
    assert!(car
        .header("content-type")
        .unwrap()
        .starts_with("application/vnd.ipld.car; version=1"));
    let mut reader = narfs_core::car::CarReader::new(&car.body[..]).unwrap();
    assert_eq!(reader.roots(), &[root_cid]);
    let mut seen = std::collections::HashSet::new();
    let mut first = None;
    while let Some((cid, data)) = reader.next_block().unwrap() {
        narfs_core::block::verify(&cid, &data).unwrap();
        assert!(seen.insert(cid), "block {cid} twice");
        first.get_or_insert(cid);
    }
    assert_eq!(first, Some(root_cid), "depth-first: the root comes first");
    let car_path = tmp.path().join("dag.car");
    std::fs::write(&car_path, &car.body).unwrap();
    let dec = narfs()
        .args(["decode", "--car"])
        .arg(&car_path)
        .arg(&root)
        .output()
        .unwrap();
    assert!(dec.status.success());
    assert!(dec.stdout == entries[0].nar);

    let block = get(a, &format!("/ipfs/{root}?format=car&dag-scope=block"), &[]);
    let mut reader = narfs_core::car::CarReader::new(&block.body[..]).unwrap();
    assert!(reader.next_block().unwrap().is_some());
    assert!(
        reader.next_block().unwrap().is_none(),
        "dag-scope=block is one block"
    );

    // Status codes.
    let unknown = unknown_cid();
    assert_eq!(
        get(a, &format!("/ipfs/{unknown}"), &[("Accept", RAW)]).status,
        404
    );
    assert_eq!(
        get(a, &format!("/ipfs/{unknown}"), &[("Accept", CAR)]).status,
        404
    );
    assert_eq!(get(a, "/ipfs/not-a-cid", &[("Accept", RAW)]).status, 400);
    assert_eq!(get(a, &format!("/ipfs/{root}"), &[]).status, 406);
    assert_eq!(
        get(a, &format!("/ipfs/{root}"), &[("Accept", "text/html")]).status,
        406
    );
    assert_eq!(
        get(
            a,
            &format!("/ipfs/{root}"),
            &[("Accept", "application/vnd.ipld.car; version=2")]
        )
        .status,
        406
    );
    assert_eq!(
        get(a, &format!("/ipfs/{root}/lib"), &[("Accept", RAW)]).status,
        501
    );
    assert_eq!(
        get(
            a,
            &format!("/ipfs/{root}?dag-scope=entity"),
            &[("Accept", CAR)]
        )
        .status,
        400
    );

    // Path traversal: nothing outside the store's blocks and records is reachable.
    std::fs::write(tmp.path().join("secret"), "secret").unwrap();
    for target in [
        "/../secret",
        "/%2e%2e/secret",
        "/nar/..%2F..%2Fsecret.nar",
        "/nar/../../secret.nar",
        "/ipfs/..%2F..%2Fsecret",
        "/ipfs/../../secret",
        "/..%2f..%2fsecret.narinfo",
        "/ipfs/%2e%2e",
        "//etc/passwd",
    ] {
        let r = get(a, target, &[("Accept", RAW)]);
        assert!(matches!(r.status, 400 | 404), "{target}: {}", r.status);
        assert!(
            !r.text().contains("secret") || r.text().contains("not a CID"),
            "{target}"
        );
    }
}

#[test]
fn concurrent_clients_get_the_right_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, entries) = imported_store(tmp.path(), 6 << 20, "none");
    let srv = Server::start(&store);
    let t = get(srv.addr, &format!("/{}.narinfo", entries[0].hash), &[]).text();
    let url = format!("/{}", field(&t, "URL").unwrap());
    let root = field(&t, "IPFS-CID").unwrap().to_string();
    let want = &entries[0].nar;
    let started = std::time::Instant::now();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|i| {
                let (url, root) = (&url, &root);
                s.spawn(move || {
                    if i % 4 == 3 {
                        // Some ask for the CAR meanwhile.
                        let r = get(srv.addr, &format!("/ipfs/{root}"), &[("Accept", CAR)]);
                        assert!(r.status == 200 && r.complete && r.body.len() > want.len());
                    } else {
                        let r = get(srv.addr, url, &[]);
                        assert_eq!(r.status, 200);
                        assert!(r.complete && r.body == *want, "client {i}: wrong bytes");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
    });
    assert!(started.elapsed() < std::time::Duration::from_secs(120));
    // A client that goes away mid-NAR does not disturb the server.
    {
        use std::io::{Read, Write};
        let mut s = std::net::TcpStream::connect(srv.addr).unwrap();
        write!(s, "GET {url} HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf).unwrap();
    }
    let r = get(srv.addr, &url, &[]);
    assert!(r.complete && r.body == *want);
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn slow_clients_hold_bounded_memory() {
    use std::io::{BufRead, BufReader, Read, Write};
    const CLIENTS: usize = 32;
    let tmp = tempfile::tempdir().unwrap();
    let (store, entries) = imported_store(tmp.path(), 24 << 20, "none");
    let srv = Server::start(&store);
    let t = get(srv.addr, &format!("/{}.narinfo", entries[0].hash), &[]).text();
    let url = format!("/{}", field(&t, "URL").unwrap());
    let want = &entries[0].nar;
    let before = rss_kib(srv.pid());
    let paused = std::sync::Barrier::new(CLIENTS + 1);
    let resume = std::sync::Barrier::new(CLIENTS + 1);
    let during = std::thread::scope(|s| {
        let handles: Vec<_> = (0..CLIENTS)
            .map(|_| {
                let (url, paused, resume) = (&url, &paused, &resume);
                s.spawn(move || {
                    let mut c = std::net::TcpStream::connect(srv.addr).unwrap();
                    c.set_read_timeout(Some(std::time::Duration::from_secs(60)))
                        .unwrap();
                    write!(
                        c,
                        "GET {url} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                    )
                    .unwrap();
                    let mut r = BufReader::new(c);
                    let mut line = String::new();
                    while r.read_line(&mut line).unwrap() > 2 {
                        line.clear();
                    }
                    // Read a little, then stall while the server's memory is measured.
                    let mut body = vec![0u8; 64 << 10];
                    r.read_exact(&mut body).unwrap();
                    paused.wait();
                    resume.wait();
                    r.read_to_end(&mut body).unwrap();
                    assert!(body == *want, "wrong bytes after the pause");
                })
            })
            .collect();
        paused.wait();
        std::thread::sleep(std::time::Duration::from_millis(500));
        let during = rss_kib(srv.pid());
        resume.wait();
        for h in handles {
            h.join().unwrap();
        }
        during
    });
    // Whole NARs held per client would be 32 x 24 MiB; bounded streaming holds a few
    // MiB per client (channel, one block, hyper's write buffer).
    eprintln!("server RSS: {before} KiB idle, {during} KiB with {CLIENTS} stalled clients");
    assert!(
        during - before.min(during) < 256 << 10,
        "server RSS grew by {} KiB with {CLIENTS} stalled clients",
        during - before.min(during)
    );
}
