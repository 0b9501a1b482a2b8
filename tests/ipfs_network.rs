//! The LAN scenario end to end, on loopback, with real Kubo and real Nix:
//!
//! - a publisher: Nix adds store paths and writes a signed file cache of them,
//!   `narfs import` reads it, `narfs publish` puts the DAGs into Kubo node A, and
//!   `narfs serve --access-log` answers narinfos (which carry `IPFS-CID:`);
//! - a client machine: Kubo node B, connected to A only (`ipfs swarm connect`; no
//!   bootstrap, no routing), and `narfs serve --upstream PUBLISHER --gateway B`, the
//!   substituter proxy, from which an unmodified `nix copy --from http://…` (with the
//!   publisher's key trusted) copies the paths into a fresh store.
//!
//! Checked: Nix's copy and `nix store verify --all` pass; B received the blocks from A
//! over bitswap; the publisher was never asked for a NAR; the next version of a path
//! (one file of many changed) moves only about its new blocks over bitswap; and with
//! B gone, `nix copy` fails, the proxy says why, and neither Nix's store nor the
//! proxy's holds anything half-written.
//!
//! Without `ipfs` or `nix` the tests skip loudly, and fail under CI.

mod common;
mod kubo_support;
mod serve_support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::{nix, ok_text as ok};
use kubo_support::{have_ipfs, Kubo};
use serve_support::{bytes, narfs, Server};

fn have_peers() -> bool {
    // Both checked (each fails under CI on its own).
    let ipfs = have_ipfs();
    let nix = common::have("nix") && common::have("nix-store");
    ipfs && nix
}

/// A package tree: `files` files of 200 KB each plus a script and a symlink; version
/// `v` changes only `lib/part-0.bin`.
fn package(root: &Path, v: u64, files: u64) -> PathBuf {
    let t = root.join(format!("pkg-v{v}"));
    std::fs::create_dir_all(t.join("lib")).unwrap();
    std::fs::create_dir_all(t.join("bin")).unwrap();
    common::write(&t.join("bin/run"), b"#!/bin/sh\nexec true\n", true);
    for i in 0..files {
        let seed = if i == 0 { 1000 + v } else { i };
        common::write(
            &t.join(format!("lib/part-{i}.bin")),
            &bytes(seed, 200_000),
            false,
        );
    }
    std::os::unix::fs::symlink("lib/part-1.bin", t.join("link")).unwrap();
    t
}

/// The publisher: a Nix store, its signed file cache, the narfs store imported from
/// it, Kubo node A holding the published DAGs, and `narfs serve` over the store.
struct Publisher {
    t: PathBuf,
    nix_store: String,
    cache: PathBuf,
    secret_key: PathBuf,
    public_key: String,
    store: PathBuf,
    kubo: Kubo,
    server: Server,
    log: PathBuf,
}

impl Publisher {
    fn new(t: &Path) -> Publisher {
        let (sk, pk) = (t.join("sk"), t.join("pk"));
        ok(nix(t, "nix-store")
            .args(["--generate-binary-cache-key", "narfs-lan-1"])
            .arg(&sk)
            .arg(&pk));
        let mut kubo = Kubo::init(None);
        kubo.start_online();
        let store = t.join("publisher-store");
        let log = t.join("publisher.log");
        let server = Server::start_logged(&store, &["--access-log"], &log);
        Publisher {
            t: t.to_path_buf(),
            nix_store: t.join("s-publisher").to_str().unwrap().to_string(),
            cache: t.join("cache"),
            secret_key: sk,
            public_key: std::fs::read_to_string(&pk).unwrap().trim().to_string(),
            store,
            kubo,
            server,
            log,
        }
    }

    /// Adds `tree` to Nix, caches it signed, imports and publishes it: its store path.
    fn release(&self, tree: &Path) -> String {
        let t = &self.t;
        let path = ok(nix(t, "nix-store")
            .args(["--store", &self.nix_store, "--add"])
            .arg(tree));
        let to = format!(
            "file://{}?secret-key={}",
            self.cache.display(),
            self.secret_key.display()
        );
        ok(nix(t, "nix").args(["--store", &self.nix_store, "copy", "--to", &to, &path]));
        ok(narfs()
            .arg("import")
            .arg(&self.cache)
            .arg("--store")
            .arg(&self.store));
        let api = self.kubo.api.as_deref().unwrap();
        ok(narfs()
            .args(["publish", "--ipfs-api", api, "--store"])
            .arg(&self.store)
            .arg(&path));
        path
    }

    /// The publisher store's record of `path` (`narfs ls --json`).
    fn record(&self, path: &str) -> serde_json::Value {
        let ls = ok(narfs().args(["ls", "--json", "--store"]).arg(&self.store));
        ls.lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
            .find(|r| r["name"] == path)
            .unwrap_or_else(|| panic!("{path} not recorded: {ls}"))
    }

    fn access_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The client machine: Kubo node B connected to A, the proxy over its own store, and
/// a Nix store to copy into.
struct Client {
    t: PathBuf,
    kubo: Kubo,
    store: PathBuf,
    proxy: Server,
    log: PathBuf,
    nix_store: String,
}

impl Client {
    fn new(t: &Path, publisher: &Publisher) -> Client {
        Client::via(t, publisher, None, 8)
    }

    /// The proxy asks `gateway` (default: B's own) for blocks, `jobs` at once.
    fn via(t: &Path, publisher: &Publisher, gateway: Option<&str>, jobs: u32) -> Client {
        let mut kubo = Kubo::init(None);
        // B's gateway fetches what it lacks over bitswap.
        kubo.config_json("Gateway.NoFetch", "false");
        kubo.start_online();
        kubo.connect_to(&publisher.kubo);
        let store = t.join("proxy-store");
        let log = t.join("proxy.log");
        let gateway = gateway.map_or_else(|| kubo.gateway.clone().unwrap(), str::to_string);
        let proxy = start_proxy(&store, &publisher.server.url, &gateway, &log, jobs);
        Client {
            t: t.to_path_buf(),
            kubo,
            store,
            proxy,
            log,
            nix_store: t.join("s-client").to_str().unwrap().to_string(),
        }
    }

    /// `nix copy --from PROXY --to the client store PATHS`, the publisher's key
    /// trusted (signatures checked).
    fn nix_copy(&self, public_key: &str, paths: &[&str]) -> std::process::Output {
        nix(&self.t, "nix")
            .args([
                "--store",
                &self.nix_store,
                "copy",
                "--from",
                &self.proxy.url,
            ])
            .args(["--option", "trusted-public-keys", public_key])
            .args(paths)
            .output()
            .unwrap()
    }

    fn verify(&self) {
        ok(nix(&self.t, "nix").args(["--store", &self.nix_store, "store", "verify", "--all"]));
        ok(narfs()
            .args(["store", "verify", "--store"])
            .arg(&self.store));
    }

    /// After a failed copy of `path`, nothing half-written: Nix's store holds no such
    /// path and verifies; the proxy's store records nothing and verifies.
    fn holds_nothing_of(&self, path: &str) {
        let info = nix(&self.t, "nix")
            .args(["--store", &self.nix_store, "path-info", path])
            .output()
            .unwrap();
        assert!(!info.status.success(), "{path} is in the client's store");
        self.verify();
        let ls = ok(narfs().args(["ls", "--json", "--store"]).arg(&self.store));
        assert!(ls.is_empty(), "the proxy recorded: {ls}");
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The bytes the proxy's log says it fetched for `cid`.
    fn fetched_bytes(&self, cid: &str) -> u64 {
        let log = self.log();
        let line = log
            .lines()
            .find(|l| l.starts_with(&format!("narfs: proxy: {cid}: fetched ")))
            .unwrap_or_else(|| panic!("no fetch of {cid} in the proxy's log: {log}"));
        let after = line.split(" blocks (").nth(1).unwrap();
        after.split(' ').next().unwrap().parse().unwrap()
    }
}

fn start_proxy(store: &Path, upstream: &str, gateway: &str, log: &Path, jobs: u32) -> Server {
    let jobs = jobs.to_string();
    let args = [
        "--fetch-timeout",
        "10",
        "--fetch-attempts",
        "2",
        "--fetch-jobs",
        &jobs,
        "--access-log",
    ];
    Server::start_proxy(store, upstream, gateway, &args, log)
}

/// A TCP relay on 127.0.0.1 to `target` that dies, as a killed gateway does, once it
/// has passed `limit` bytes of answers: every connection is shut and the port closed.
struct DyingRelay {
    url: String,
    passed: Arc<AtomicU64>,
    dead: Arc<AtomicBool>,
}

impl DyingRelay {
    fn start(target: &str, limit: u64) -> DyingRelay {
        let target = target.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (passed, dead) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let (p, d) = (passed.clone(), dead.clone());
        std::thread::spawn(move || {
            while !d.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let server = TcpStream::connect(&target).unwrap();
                let pipe = |mut from: TcpStream, mut to: TcpStream, count: bool| {
                    let (p, d) = (p.clone(), d.clone());
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 16 << 10];
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if d.load(Ordering::SeqCst) || to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            if count && p.fetch_add(n as u64, Ordering::SeqCst) + n as u64 > limit {
                                d.store(true, Ordering::SeqCst);
                                break;
                            }
                        }
                        let _ = from.shutdown(Shutdown::Both);
                        let _ = to.shutdown(Shutdown::Both);
                    });
                };
                pipe(
                    client.try_clone().unwrap(),
                    server.try_clone().unwrap(),
                    false,
                );
                pipe(server, client, true);
            }
            // The listener goes with this thread: the port now refuses connections.
        });
        DyingRelay { url, passed, dead }
    }
}

fn nar_size(record: &serde_json::Value) -> u64 {
    record["nar_size"].as_u64().unwrap()
}

#[test]
fn nix_substitutes_over_bitswap_through_the_proxy() {
    if !have_peers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let publisher = Publisher::new(t);
    let v1 = publisher.release(&package(t, 1, 12));
    let small = t.join("note.txt");
    std::fs::write(&small, "a small path\n").unwrap();
    let note = publisher.release(&small);
    let client = Client::new(t, &publisher);

    // First fetch: everything comes from A over bitswap.
    let before = client.kubo.bitswap_received();
    let out = client.nix_copy(&publisher.public_key, &[&v1, &note]);
    assert!(
        out.status.success(),
        "nix copy failed: {}\nproxy: {}",
        String::from_utf8_lossy(&out.stderr),
        client.log()
    );
    client.verify();
    let (r1, rn) = (publisher.record(&v1), publisher.record(&note));
    let first = client.kubo.bitswap_received();
    let (blocks1, data1) = (first.0 - before.0, first.1 - before.1);
    let nar1 = nar_size(&r1) + nar_size(&rn);
    eprintln!(
        "first fetch: NARs {nar1} bytes; bitswap: {blocks1} blocks, {data1} bytes received by B"
    );
    assert!(blocks1 > 12, "B received {blocks1} blocks");
    assert!(
        data1 as f64 >= 0.95 * nar1 as f64,
        "B received {data1} bytes over bitswap for NARs of {nar1}"
    );
    // The proxy fetched through B what the DAG holds, and Nix has the same trees.
    let cid1 = r1["root"].as_str().unwrap();
    let fetched1 = client.fetched_bytes(cid1);
    assert!(
        fetched1 >= 12 * 200_000 && data1 >= fetched1,
        "the proxy fetched {fetched1} bytes for a NAR of {}: {}",
        nar_size(&r1),
        client.log()
    );
    let nar_of =
        |store: &str, p: &str| ok(nix(t, "nix").args(["--store", store, "store", "dump-path", p]));
    assert!(nar_of(&client.nix_store, &v1) == nar_of(&publisher.nix_store, &v1));
    let sigs = ok(nix(t, "nix").args(["--store", &client.nix_store, "path-info", "--sigs", &v1]));
    assert!(sigs.contains("narfs-lan-1:"), "signature not kept: {sigs}");

    // The publisher answered narinfos, and never a NAR.
    let access = publisher.access_log();
    assert!(
        access.contains(".narinfo 200"),
        "no narinfo in the publisher's log: {access}"
    );
    assert!(
        !access.contains("/nar/"),
        "the publisher served a NAR: {access}"
    );

    // The next version: one 200 KB file of twelve changed.
    let v2 = publisher.release(&package(t, 2, 12));
    let r2 = publisher.record(&v2);
    let new_bytes = r2["new_bytes"].as_u64().unwrap();
    let before = client.kubo.bitswap_received();
    let out = client.nix_copy(&publisher.public_key, &[&v2]);
    assert!(
        out.status.success(),
        "nix copy of v2 failed: {}\nproxy: {}",
        String::from_utf8_lossy(&out.stderr),
        client.log()
    );
    client.verify();
    let second = client.kubo.bitswap_received();
    let (blocks2, data2) = (second.0 - before.0, second.1 - before.1);
    let cid2 = r2["root"].as_str().unwrap();
    let fetched2 = client.fetched_bytes(cid2);
    eprintln!(
        "second fetch: NAR {} bytes, new blocks {new_bytes} bytes; bitswap: {blocks2} blocks, \
         {data2} bytes received by B; the proxy fetched {fetched2} bytes through B",
        nar_size(&r2)
    );
    // Overhead allowance: a few dag-pb nodes could be asked for again by the gateway.
    let allowance = 16 << 10;
    assert!(
        data2 <= new_bytes + allowance,
        "B received {data2} bytes for v2, whose new blocks are {new_bytes}"
    );
    assert!(
        fetched2 <= new_bytes + allowance,
        "{fetched2} > {new_bytes}"
    );
    assert!(
        data2 * 5 < nar_size(&r2),
        "{data2} bytes moved for a NAR of {}",
        nar_size(&r2)
    );
    assert!(data2 >= 200_000, "the changed file came: {data2} bytes");
    assert!(!publisher.access_log().contains("/nar/"));
}

#[test]
fn a_dead_gateway_fails_the_copy_cleanly() {
    if !have_peers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let publisher = Publisher::new(t);
    let v1 = publisher.release(&package(t, 1, 6));
    let mut client = Client::new(t, &publisher);
    client.kubo.kill();
    let out = client.nix_copy(&publisher.public_key, &[&v1]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "nix copy passed without a gateway");
    let log = client.log();
    assert!(
        log.contains("502") && log.contains("cannot connect"),
        "the proxy did not say why: {log}\nnix: {stderr}"
    );
    client.holds_nothing_of(&v1);
    assert!(!publisher.access_log().contains("/nar/"));
}

#[test]
fn a_gateway_killed_mid_fetch_fails_the_copy_cleanly_and_the_retry_resumes() {
    if !have_peers() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let publisher = Publisher::new(t);
    let v1 = publisher.release(&package(t, 1, 12));
    // B's gateway behind a relay that dies after 600 KB of the 2.4 MB DAG.
    std::fs::create_dir_all(t.join("b")).unwrap();
    let b = Client::new(&t.join("b"), &publisher);
    let relay = DyingRelay::start(b.kubo.gateway.as_deref().unwrap(), 600_000);
    std::fs::create_dir_all(t.join("c")).unwrap();
    // One block at a time: when the relay dies, the blocks before the cut have arrived
    // whole (with several in flight, 600 KB could be parts of eight, none whole).
    let mut client = Client::via(&t.join("c"), &publisher, Some(&relay.url), 1);
    client.kubo.kill();
    let out = client.nix_copy(&publisher.public_key, &[&v1]);
    assert!(
        !out.status.success(),
        "nix copy passed through a dead gateway"
    );
    assert!(relay.dead.load(Ordering::SeqCst), "the relay never died");
    let passed = relay.passed.load(Ordering::SeqCst);
    assert!(
        passed > 600_000,
        "the fetch was not under way: {passed} bytes"
    );
    let log = client.log();
    assert!(log.contains("/nar/") && log.contains(" 502"), "{log}");
    client.holds_nothing_of(&v1);

    // The retry, through B itself, asks only for what did not arrive.
    let cid = publisher.record(&v1)["root"].as_str().unwrap().to_string();
    client.proxy = start_proxy(
        &client.store,
        &publisher.server.url,
        b.kubo.gateway.as_deref().unwrap(),
        &client.log,
        8,
    );
    let out = client.nix_copy(&publisher.public_key, &[&v1]);
    assert!(
        out.status.success(),
        "the retry failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        client.log()
    );
    client.verify();
    let log = client.log();
    let fetched: u64 = log
        .lines()
        .filter_map(|l| l.strip_prefix(&format!("narfs: proxy: {cid}: fetched ")))
        .filter_map(|l| l.split(" blocks (").nth(1)?.split(' ').next()?.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no fetch line: {log}"));
    let nar = nar_size(&publisher.record(&v1));
    eprintln!("after a cut at {passed} bytes, the retry fetched {fetched} of a {nar}-byte NAR");
    assert!(
        fetched + 200_000 < nar,
        "the retry fetched {fetched} bytes again"
    );
    assert!(!publisher.access_log().contains("/nar/"));
}
