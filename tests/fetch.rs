//! `narfs fetch` through real gateways on loopback: Kubo's (a NAR published into it
//! comes back byte for byte, as a NAR and as the tree `nix-store --restore` makes, and
//! the next version asks only for its new blocks) and `narfs serve`'s; and through
//! gateways that fail: one that sends wrong bytes, one that corrupts one node, one
//! that dies mid-fetch, one that streams a block past the limit, and none at all.
//! Each failure is one line naming the CID, a non-zero exit, no output file and
//! nothing recorded.

mod common;
mod kubo_support;
mod serve_support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use kubo_support::*;
use narfs_core::car::CarReader;

fn fetch(gateway: &str, store: &Path, args: &[&str]) -> Output {
    narfs()
        .args(["fetch", "--gateway", gateway, "--store"])
        .arg(store)
        .args(args)
        .output()
        .unwrap()
}

/// Every block of the DAG under `root` in `store`, with its size.
fn dag_blocks(store: &Path, root: &str) -> BTreeMap<String, u64> {
    let out = run(narfs()
        .args(["car", "export", "-o", "-", "--store"])
        .arg(store)
        .arg(root));
    let mut reader = CarReader::new(&out.stdout[..]).unwrap();
    let mut blocks = BTreeMap::new();
    while let Some((cid, data)) = reader.next_block().unwrap() {
        blocks.insert(cid.to_string(), data.len() as u64);
    }
    blocks
}

fn roots_recorded(store: &Path) -> usize {
    let out = run(narfs()
        .args(["store", "ls", "--json", "--store"])
        .arg(store));
    String::from_utf8(out.stdout).unwrap().lines().count()
}

/// What a [`Proxy`] does to the answers it relays.
#[derive(Clone, Default)]
struct Mischief {
    /// Flip the last byte of this block wherever an answer holds it (alone, or in a
    /// CAR of a node or of the whole DAG).
    corrupt: Option<Vec<u8>>,
    /// After this many answers, cut the next one halfway and stop listening.
    die_after: Option<usize>,
}

/// A relay on 127.0.0.1 in front of a gateway, one connection per request (it asks
/// the gateway to close after answering, and for uncompressed answers), counting what
/// it relays.
struct Proxy {
    url: String,
    /// Request targets, and the bytes relayed back (heads included).
    log: Arc<Mutex<(Vec<String>, u64)>>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(upstream: &str, mischief: Mischief) -> Proxy {
        let upstream = upstream.strip_prefix("http://").unwrap().to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new((Vec::new(), 0u64)));
        let stop = Arc::new(AtomicBool::new(false));
        let (l, s) = (log.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut answered = 0;
            while !s.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let die = mischief.die_after == Some(answered);
                answered += 1;
                let (l, m, up) = (l.clone(), mischief.clone(), upstream.clone());
                let relay = std::thread::spawn(move || relay(client, &up, &m, &l, die));
                if die {
                    let _ = relay.join();
                    s.store(true, Ordering::Relaxed);
                }
            }
            // The listener goes: from now on, connections are refused.
        });
        Proxy { url, log, stop }
    }

    fn requests(&self) -> Vec<String> {
        self.log.lock().unwrap().0.clone()
    }

    fn bytes(&self) -> u64 {
        self.log.lock().unwrap().1
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(
    mut client: TcpStream,
    upstream: &str,
    m: &Mischief,
    log: &Mutex<(Vec<String>, u64)>,
    die: bool,
) {
    client.set_nonblocking(false).unwrap();
    let Some(head) = common::read_head(&mut client) else {
        return;
    };
    let target = head.split(' ').nth(1).unwrap_or_default().to_string();
    let mut out = String::new();
    // The answers are inspected byte for byte: asked for as they are, not zstd.
    for line in head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if !lower.starts_with("connection:") && !lower.starts_with("accept-encoding:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut up = TcpStream::connect(upstream).unwrap();
    up.write_all(out.as_bytes()).unwrap();
    let mut answer = Vec::new();
    up.read_to_end(&mut answer).unwrap();
    if let Some(block) = &m.corrupt {
        if let Some(at) = answer.windows(block.len()).position(|w| w == &block[..]) {
            answer[at + block.len() - 1] ^= 1;
        }
    }
    if die {
        answer.truncate(answer.len() / 2);
    }
    let mut l = log.lock().unwrap();
    l.0.push(target);
    l.1 += answer.len() as u64;
    drop(l);
    let _ = client.write_all(&answer);
}

/// The block `cid` as `url` serves it (`?format=raw`, one request, no keep-alive).
fn raw_block(url: &str, cid: &str) -> Vec<u8> {
    let mut c = TcpStream::connect(url.strip_prefix("http://").unwrap()).unwrap();
    let head = format!(
        "GET /ipfs/{cid}?format=raw HTTP/1.1\r\nHost: x\r\nAccept: application/vnd.ipld.raw\r\nConnection: close\r\n\r\n"
    );
    c.write_all(head.as_bytes()).unwrap();
    let mut answer = Vec::new();
    c.read_to_end(&mut answer).unwrap();
    let at = answer.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&answer[..at]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .expect("a raw block with its length")
        .trim()
        .parse()
        .unwrap();
    assert_eq!(answer.len() - at - 4, length);
    answer[at + 4..].to_vec()
}

/// A gateway on 127.0.0.1 that answers every request with `answer`; its URL.
fn fake_gateway(answer: impl Fn(&mut TcpStream) + Send + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for mut c in listener.incoming().flatten() {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            answer(&mut c);
        }
    });
    url
}

/// A publisher's store holding `names`, published into a fresh Kubo.
fn published(tmp: &Path, names: &[&str]) -> (Kubo, PathBuf, Vec<String>) {
    let store = tmp.join("publisher");
    let roots: Vec<String> = names.iter().map(|n| encode_named(&store, n)).collect();
    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();
    run(narfs()
        .args(["publish", "--ipfs-api", &api, "--store"])
        .arg(&store)
        .args(names));
    (kubo, store, roots)
}

#[test]
fn a_nar_published_into_kubo_is_fetched_back_and_the_next_version_moves_only_new_blocks() {
    if !have_ipfs() || !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (kubo, publisher, roots) = published(tmp.path(), &["attrs-24.1.0", "attrs-24.2.0"]);
    let gateway = kubo.gateway.clone().unwrap();
    let (v1, v2) = (&roots[0], &roots[1]);

    // Into an empty store, as a NAR: the original, byte for byte.
    let store = tmp.path().join("client");
    let nar = tmp.path().join("out.nar");
    let out = fetch(&gateway, &store, &[v1, "-o", nar.to_str().unwrap()]);
    assert!(out.status.success(), "{out:?}");
    assert!(std::fs::read(&nar).unwrap() == std::fs::read(corpus("attrs-24.1.0.nar")).unwrap());
    assert_eq!(roots_recorded(&store), 1);

    // Into another empty store, as a tree: what nix-store --restore makes of the NAR.
    let dir = tmp.path().join("tree");
    let out = fetch(
        &gateway,
        &tmp.path().join("client2"),
        &[v1, "--to", dir.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let nix = tmp.path().join("nix");
    nix_restore(&std::fs::read(corpus("attrs-24.1.0.nar")).unwrap(), &nix);
    assert!(
        listing(&dir) == listing(&nix),
        "--to differs from nix-store --restore"
    );

    // The next version, into the store holding the first: only the new blocks.
    let old = dag_blocks(&publisher, v1);
    let new: BTreeMap<String, u64> = dag_blocks(&publisher, v2)
        .into_iter()
        .filter(|(cid, _)| !old.contains_key(cid))
        .collect();
    assert!(
        !new.is_empty() && new.len() < old.len(),
        "{} new blocks",
        new.len()
    );
    // With a base named: Kubo does not speak narfs's delta transfer, which one probe
    // tells (a 404), and the fetch goes on by the trustless gateway, silently.
    let proxy = Proxy::start(&gateway, Mischief::default());
    let nar = tmp.path().join("v2.nar");
    let out = fetch(
        &proxy.url,
        &store,
        &[v2, "--base", v1, "-o", nar.to_str().unwrap()],
    );
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(!err.contains("delta"), "{err}");
    assert!(std::fs::read(&nar).unwrap() == std::fs::read(corpus("attrs-24.2.0.nar")).unwrap());
    let (probes, requests): (Vec<String>, Vec<String>) = proxy
        .requests()
        .into_iter()
        .partition(|t| t.starts_with("/narfs/"));
    assert_eq!(
        probes,
        [format!("/narfs/v1/names/{v2}")],
        "one probe per fetch"
    );
    for target in &requests {
        let cid = target
            .strip_prefix("/ipfs/")
            .unwrap()
            .split('?')
            .next()
            .unwrap();
        assert!(
            new.contains_key(cid),
            "asked for {target}, a block the store held"
        );
    }
    // Bytes: the new blocks, plus per request its HTTP head (Kubo's is under 1 KiB)
    // and, for a CAR, its header, section heads and the node again.
    let new_bytes: u64 = new.values().sum();
    let nodes: u64 = new
        .iter()
        .filter(|(c, _)| c.starts_with("bafy"))
        .map(|(_, n)| n)
        .sum();
    let bound = new_bytes + nodes + 1024 * (requests.len() + 1) as u64 + 80 * new.len() as u64;
    assert!(
        proxy.bytes() <= bound,
        "received {} bytes for {} new blocks of {new_bytes} bytes (bound {bound})",
        proxy.bytes(),
        new.len()
    );
    assert!(requests.len() <= new.len());
    assert_eq!(roots_recorded(&store), 2);
}

#[test]
fn a_nar_is_fetched_from_narfs_serve() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let root = encode_named(&publisher, "tzdata-2024.1");
    let server = serve_support::Server::start(&publisher);
    let store = tmp.path().join("client");
    let nar = tmp.path().join("out.nar");
    for per_block in [false, true] {
        let _ = std::fs::remove_dir_all(&store);
        let mut args = vec![root.as_str(), "-o", nar.to_str().unwrap()];
        if per_block {
            args.push("--per-block");
        }
        let out = fetch(&server.url, &store, &args);
        assert!(out.status.success(), "{out:?}");
        assert!(
            std::fs::read(&nar).unwrap() == std::fs::read(corpus("tzdata-2024.1.nar")).unwrap()
        );
    }
    // Fetched again: nothing asked for, the same NAR.
    let out = fetch("http://127.0.0.1:9", &store, &[&root]);
    assert!(out.status.success(), "{out:?}");
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("fetched 0 blocks (0 bytes) in 0 requests"),
        "{err}"
    );
}

#[test]
fn wrong_bytes_are_refused_naming_the_cid() {
    let tmp = tempfile::tempdir().unwrap();
    let root = encode_named(&tmp.path().join("publisher"), "attrs-24.1.0");
    let gateway = fake_gateway(|c| {
        let body = b"not the block you asked for";
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.raw\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let _ = c.write_all(head.as_bytes());
        let _ = c.write_all(body);
    });
    let store = tmp.path().join("client");
    let nar = tmp.path().join("out.nar");
    let err = failure(&fetch(
        &gateway,
        &store,
        &[&root, "-o", nar.to_str().unwrap()],
    ));
    assert!(err.contains(&format!("block {root} at the root")), "{err}");
    assert!(err.contains("not the block"), "{err}");
    assert!(!nar.exists());
    assert_eq!(roots_recorded(&store), 0);
}

#[test]
fn a_corrupted_node_is_refused_naming_its_cid_and_path() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let root = encode_named(&publisher, "attrs-24.1.0");
    let entries = tmp.path().join("entries");
    run(narfs()
        .args(["encode", "--entries"])
        .arg(&entries)
        .arg(corpus("attrs-24.1.0.nar")));
    let path = "attrs-24.1.0.dist-info/licenses";
    let cid = std::fs::read_to_string(&entries)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|e| e["path"] == path)
        .unwrap()["cid"]
        .as_str()
        .unwrap()
        .to_string();
    let server = serve_support::Server::start(&publisher);
    let proxy = Proxy::start(
        &server.url,
        Mischief {
            corrupt: Some(raw_block(&server.url, &cid)),
            ..Mischief::default()
        },
    );
    let (store, dir) = (tmp.path().join("client"), tmp.path().join("tree"));
    let err = failure(&fetch(
        &proxy.url,
        &store,
        &[&root, "--to", dir.to_str().unwrap()],
    ));
    assert!(err.contains(&format!("block {cid} at /{path}")), "{err}");
    assert!(!dir.exists());
    assert_eq!(roots_recorded(&store), 0);
}

#[test]
fn a_gateway_dying_mid_fetch_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let root = encode_named(&publisher, "tzdata-2024.1");
    let server = serve_support::Server::start(&publisher);
    // The first answer is the delta probe's (narfs serve speaks it; there is no base
    // to use). By default the root comes alone, then the whole DAG as one CAR: that
    // one is cut. Block by block, the seventh answer is.
    for (mode, die_after) in [(None, 2), (Some("--per-block"), 6)] {
        let proxy = Proxy::start(
            &server.url,
            Mischief {
                die_after: Some(die_after),
                ..Mischief::default()
            },
        );
        let dir = tmp.path().join(format!("{die_after}"));
        let (store, nar) = (dir.join("client"), dir.join("out.nar"));
        let mut args = vec![
            root.as_str(),
            "-o",
            nar.to_str().unwrap(),
            "--attempts",
            "2",
        ];
        args.extend(mode);
        let err = failure(&fetch(&proxy.url, &store, &args));
        assert!(
            // Which block is in flight when the gateway dies (a leaf or a node)
            // depends on timing.
            err.contains("not fetched from") && err.contains("block baf"),
            "{mode:?}: {err}"
        );
        assert!(err.contains("gave up after 2 attempts"), "{mode:?}: {err}");
        assert!(!nar.exists());
        assert_eq!(roots_recorded(&store), 0);
        // What did arrive is kept: fetched again from a live gateway, it is not asked
        // for.
        let proxy = Proxy::start(&server.url, Mischief::default());
        let out = fetch(&proxy.url, &store, &[&root, "-o", nar.to_str().unwrap()]);
        assert!(out.status.success(), "{out:?}");
        assert!(
            std::fs::read(&nar).unwrap() == std::fs::read(corpus("tzdata-2024.1.nar")).unwrap()
        );
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(!err.contains("reused 0 blocks"), "{mode:?}: {err}");
    }
}

#[test]
fn a_block_past_the_limit_is_refused_without_reading_it_all() {
    let tmp = tempfile::tempdir().unwrap();
    let root = encode_named(&tmp.path().join("publisher"), "attrs-24.1.0");
    let written = Arc::new(Mutex::new(0u64));
    let w = written.clone();
    // Chunked, no length announced: the client must stop reading by itself.
    let gateway = fake_gateway(move |c| {
        let head = "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.ipld.raw\r\nTransfer-Encoding: chunked\r\n\r\n";
        let _ = c.write_all(head.as_bytes());
        let chunk = vec![b'x'; 1 << 16];
        for _ in 0..1024 {
            let ok = c
                .write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
                .is_ok()
                && c.write_all(&chunk).is_ok()
                && c.write_all(b"\r\n").is_ok();
            if !ok {
                break;
            }
            *w.lock().unwrap() += chunk.len() as u64;
        }
    });
    let store = tmp.path().join("client");
    let err = failure(&fetch(&gateway, &store, &[&root]));
    assert!(err.contains(&format!("block {root} at the root")), "{err}");
    assert!(err.contains("larger than the block limit"), "{err}");
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        *written.lock().unwrap() < 32 << 20,
        "the whole answer was read"
    );
}

#[test]
fn an_unreachable_gateway_is_a_clean_error() {
    let tmp = tempfile::tempdir().unwrap();
    let root = encode_named(&tmp.path().join("publisher"), "attrs-24.1.0");
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let gateway = format!("http://127.0.0.1:{port}");
    let (store, nar) = (tmp.path().join("client"), tmp.path().join("out.nar"));
    let out = fetch(
        &gateway,
        &store,
        &[&root, "-o", nar.to_str().unwrap(), "--attempts", "2"],
    );
    let err = failure(&out);
    assert!(
        err.contains(&format!("cannot fetch {root} from {gateway}")),
        "{err}"
    );
    assert!(err.contains("cannot connect to the gateway"), "{err}");
    assert!(!nar.exists());
    assert_eq!(roots_recorded(&store), 0);
    let err = failure(&fetch("ftp://x", &store, &[&root]));
    assert!(err.contains("not the http://HOST:PORT address"), "{err}");
}
