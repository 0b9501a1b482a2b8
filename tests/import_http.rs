//! `narfs import http://…`: a cache read over HTTP as Nix reads one. From `narfs serve`
//! of another store (every root byte-exact on decode), from `python3 -m http.server`
//! over a file cache (the closure followed through `References`), and from a hostile
//! server: a 500 retried, a stalled NAR timed out, a lying NarHash, an endless
//! narinfo, a redirect to a non-loopback host (never followed), each reported and
//! skipped while the good entry is imported.

mod common;
mod serve_support;

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::run;
use serve_support::*;

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {:?}, stderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn import(url: &str, store: &Path, paths: &[String], extra: &[&str]) -> Output {
    let list = store.with_extension("paths");
    std::fs::write(&list, paths.join("\n")).unwrap();
    narfs()
        .args(["import", url, "--json", "--store"])
        .arg(store)
        .arg("--paths")
        .arg(&list)
        .args(extra)
        .output()
        .unwrap()
}

fn decode(store: &Path, name: &str) -> Vec<u8> {
    let out = narfs()
        .args(["decode", "--store"])
        .arg(store)
        .arg(name)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "decode {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Four entries, the first referencing the second and itself, the second the third;
/// the fourth referenced by none.
fn entries(tmp: &Path) -> Vec<Entry> {
    let t1 = sample_tree(tmp, 1, 700_000);
    let t2 = sample_tree(tmp, 2, 3_000);
    let single = tmp.join("single");
    std::fs::write(&single, b"just a file\n").unwrap();
    let mut e = vec![
        Entry::new(1, "one-1.0", nar_of(&t1), "xz"),
        Entry::new(2, "two-2.0", nar_of(&t2), "zstd"),
        Entry::new(3, "single", nar_of(&single), "bzip2"),
        Entry::new(4, "lonely", nar_of(&t2), "none"),
    ];
    e[0].references = vec![e[1].base(), e[0].base()];
    e[1].references = vec![e[2].base()];
    e
}

#[test]
fn imports_from_narfs_serve_byte_exact() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = entries(tmp.path());
    let cache = tmp.path().join("cache");
    write_cache(&cache, &entries);
    let source = tmp.path().join("source");
    run(narfs().args(["import", "--store"]).arg(&source).arg(&cache));
    let server = Server::start(&source);

    let store = tmp.path().join("store");
    let all: Vec<String> = entries.iter().map(Entry::store_path).collect();
    let out = import(&server.url, &store, &all, &["--no-closure"]);
    let v = json(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(
        (v["imported"].as_u64(), v["failed"].as_array().map(Vec::len)),
        (Some(4), Some(0)),
        "{v}"
    );
    for e in &entries {
        assert!(
            decode(&store, &e.store_path()) == e.nar,
            "{} differs",
            e.store_path()
        );
    }
    // Resume: everything present, no NAR asked for (the served NAR count stays).
    let again = json(&import(&server.url, &store, &all, &[]));
    assert_eq!(
        (
            again["imported"].as_u64(),
            again["already_present"].as_u64()
        ),
        (Some(0), Some(4)),
        "{again}"
    );
}

#[test]
fn follows_references_from_a_static_file_server() {
    let tmp = tempfile::tempdir().unwrap();
    let entries = entries(tmp.path());
    let cache = tmp.path().join("cache");
    write_cache(&cache, &entries);
    let Some(server) = common::http_server::py_server(&cache) else {
        return;
    };
    let store = tmp.path().join("store");
    // Only the first is asked for, by hash alone: its closure is the first three.
    let out = import(
        &format!("{}/", server.url),
        &store,
        &[entries[0].hash.clone()],
        &["--jobs", "2"],
    );
    let v = json(&out);
    assert!(out.status.success(), "{v}");
    assert_eq!(v["imported"], 3, "{v}");
    for e in &entries[..3] {
        assert!(
            decode(&store, &e.store_path()) == e.nar,
            "{}",
            e.store_path()
        );
    }
    let ls = narfs()
        .args(["ls", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(!ls.contains(&entries[3].hash), "not in the closure: {ls}");
    // --no-closure: just the one asked for.
    let other = tmp.path().join("other");
    let v = json(&import(
        &format!("{}/", server.url),
        &other,
        &[entries[1].store_path()],
        &["--no-closure"],
    ));
    assert_eq!(v["imported"], 1, "{v}");
}

/// A scripted HTTP/1.0 server on 127.0.0.1: `answer(path, nth request for it)` writes
/// the whole answer to the stream; one thread per connection, for at most 60 s.
fn hostile<F>(answer: F) -> String
where
    F: Fn(&str, usize, &mut TcpStream) + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let answer = Arc::new(answer);
    let counts = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
        String,
        usize,
    >::new()));
    std::thread::spawn(move || {
        let start = Instant::now();
        for s in listener.incoming() {
            if start.elapsed() > Duration::from_secs(60) {
                break;
            }
            let Ok(mut s) = s else { continue };
            let (answer, counts) = (Arc::clone(&answer), Arc::clone(&counts));
            std::thread::spawn(move || {
                let mut line = String::new();
                let mut r = BufReader::new(s.try_clone().unwrap());
                if r.read_line(&mut line).is_err() {
                    return;
                }
                loop {
                    let mut h = String::new();
                    if r.read_line(&mut h).is_err() || h.trim().is_empty() {
                        break;
                    }
                }
                let path = line.split(' ').nth(1).unwrap_or("").to_string();
                let n = {
                    let mut c = counts.lock().unwrap();
                    let n = c.entry(path.clone()).or_default();
                    *n += 1;
                    *n
                };
                answer(&path, n, &mut s);
            });
        }
    });
    url
}

fn reply(s: &mut TcpStream, status: &str, body: &[u8]) {
    let _ = write!(
        s,
        "HTTP/1.0 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let _ = s.write_all(body);
}

#[test]
fn survives_a_hostile_server() {
    let tmp = tempfile::tempdir().unwrap();
    let mk = |seed: u8, name: &str| {
        let f = tmp.path().join(name);
        std::fs::write(&f, format!("{name} {seed}\n")).unwrap();
        Entry::new(seed, name, nar_of(&f), "none")
    };
    let [good, stall, liar, endless, redirect] = [
        mk(1, "good"),
        mk(2, "stall"),
        mk(3, "liar"),
        mk(4, "endless"),
        mk(5, "redirect"),
    ];
    let narinfo = |e: &Entry, hash: &str| {
        format!(
            "StorePath: {}\nURL: nar/{}.nar\nCompression: none\nNarHash: {hash}\nNarSize: {}\nReferences: \n",
            e.store_path(),
            e.hash,
            e.nar.len()
        )
    };
    let infos: Vec<(String, String)> = [&good, &stall, &liar]
        .iter()
        .map(|e| {
            let hash = if e.name == "liar" {
                nar_hash(&good.nar)
            } else {
                nar_hash(&e.nar)
            };
            (format!("/{}.narinfo", e.hash), narinfo(e, &hash))
        })
        .collect();
    let nars: Vec<(String, Vec<u8>)> = [&good, &liar]
        .iter()
        .map(|e| (format!("/nar/{}.nar", e.hash), e.nar.clone()))
        .collect();
    let (stall_nar, endless_info, redirect_info) = (
        format!("/nar/{}.nar", stall.hash),
        format!("/{}.narinfo", endless.hash),
        format!("/{}.narinfo", redirect.hash),
    );
    let good_info = infos[0].0.clone();
    let good_tries = Arc::new(AtomicUsize::new(0));
    let tries = Arc::clone(&good_tries);
    let url = hostile(move |path, n, s| {
        if path == "/nix-cache-info" {
            reply(s, "200 OK", b"StoreDir: /nix/store\n");
        } else if path == good_info && n == 1 {
            tries.fetch_add(1, Ordering::Relaxed);
            reply(s, "500 Internal Server Error", b"try again\n");
        } else if let Some((_, text)) = infos.iter().find(|(p, _)| p == path) {
            if path == good_info {
                tries.fetch_add(1, Ordering::Relaxed);
            }
            reply(s, "200 OK", text.as_bytes());
        } else if let Some((_, nar)) = nars.iter().find(|(p, _)| p == path) {
            reply(s, "200 OK", nar);
        } else if path == stall_nar {
            // The head, a few bytes, then nothing until well past the client's timeout.
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\nnix-");
            std::thread::sleep(Duration::from_secs(8));
        } else if path == endless_info {
            let _ = s.write_all(b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n");
            let line = [b'x'; 4096];
            // Up to 64 MiB: far past the narinfo bound, and bounded here too.
            for _ in 0..(16 << 10) {
                if s.write_all(&line).is_err() {
                    break;
                }
            }
        } else if path == redirect_info {
            let _ = write!(
                s,
                "HTTP/1.0 302 Found\r\nLocation: http://192.0.2.1/x.narinfo\r\nContent-Length: 0\r\n\r\n"
            );
        } else {
            reply(s, "404 Not Found", b"");
        }
    });

    let store = tmp.path().join("store");
    let all: Vec<String> = [&good, &stall, &liar, &endless, &redirect]
        .iter()
        .map(|e| e.store_path())
        .collect();
    let t = Instant::now();
    let out = import(
        &url,
        &store,
        &all,
        &["--timeout", "1", "--attempts", "2", "--jobs", "5"],
    );
    let took = t.elapsed();
    let v = json(&out);
    assert!(!out.status.success(), "four entries are bad: {v}");
    assert_eq!(v["imported"], 1, "{v}");
    assert_eq!(
        good_tries.load(Ordering::Relaxed),
        2,
        "the 500 is retried once"
    );
    assert!(decode(&store, &good.store_path()) == good.nar);
    let failed = v["failed"].as_array().unwrap();
    assert_eq!(failed.len(), 4, "{v}");
    let why = |e: &Entry| -> String {
        failed
            .iter()
            .find(|f| f["narinfo"].as_str().unwrap().contains(&e.hash))
            .unwrap_or_else(|| panic!("{} not failed: {v}", e.name))["error"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert!(why(&stall).contains("no answer for 1s"), "{}", why(&stall));
    assert!(why(&liar).contains("NarHash"), "{}", why(&liar));
    assert!(why(&endless).contains("larger than"), "{}", why(&endless));
    let r = why(&redirect);
    assert!(r.contains("302") && r.contains("not followed"), "{r}");
    // The stall costs its two tries' timeouts, not the server's 8 s stall per try.
    assert!(took < Duration::from_secs(15), "took {took:?}");
    let ls = narfs()
        .args(["ls", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&ls.stdout).lines().count(),
        1,
        "only the good one recorded"
    );
}

#[test]
fn refuses_what_is_not_an_http_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let out = narfs()
        .args(["import", "http://127.0.0.1:9/", "--store"])
        .arg(&store)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--paths"));
}
