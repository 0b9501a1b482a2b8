//! A hostile gateway's zstd bombs, against `narfs fetch`: 1 GiB of zeros in ~40 KiB
//! sent as a raw block (refused as larger than a block, one line) and as the
//! whole-DAG CAR after a real header (dropped; the walk fetches the NAR byte for
//! byte from real blocks), both in bounded memory; a `Content-Encoding` not asked for
//! refused in one line. Alone in its test binary, so that a child's peak RSS (which
//! Linux carries over from the parent at `exec`) is its own.

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};

use common::{corpus_dir, run};
use serve_support::{get, narfs, Server};

/// `narfs encode --store STORE --name NAME corpus/NAME.nar`: the root CID.
fn encode(store: &Path, name: &str) -> String {
    let out = run(narfs()
        .args(["encode", "--json", "--name", name, "--store"])
        .arg(store)
        .arg(corpus_dir().join(format!("{name}.nar"))));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["root"].as_str().unwrap().to_string()
}

/// `zstd` of `len` zeros after `prefix`: a few KiB on the wire.
fn bomb(prefix: &[u8], len: u64) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    e.write_all(prefix).unwrap();
    std::io::copy(&mut std::io::repeat(0).take(len), &mut e).unwrap();
    e.finish().unwrap()
}

/// An answer: content type, content encoding (empty: none), body.
type Answer = (String, &'static str, Vec<u8>);

/// A gateway on 127.0.0.1: each request's target goes to `answer`.
fn fake_gateway(answer: impl Fn(&str) -> Answer + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let answer = std::sync::Arc::new(answer);
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || serve_one(c, &*answer));
        }
    });
    url
}

/// Answers the requests of one keep-alive connection.
fn serve_one(mut c: TcpStream, answer: &dyn Fn(&str) -> Answer) {
    let mut buf = Vec::new();
    loop {
        let mut b = [0u8; 4096];
        let Ok(n) = c.read(&mut b) else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&b[..n]);
        while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let target = head.split(' ').nth(1).unwrap_or("").to_string();
            let (ctype, coding, body) = answer(&target);
            let mut h = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n",
                body.len()
            );
            if !coding.is_empty() {
                h.push_str(&format!("Content-Encoding: {coding}\r\n"));
            }
            h.push_str("\r\n");
            if c.write_all(h.as_bytes()).is_err() || c.write_all(&body).is_err() {
                return;
            }
        }
    }
}

/// Runs `narfs fetch` and returns (success, stderr, its peak RSS in KiB).
// The child is reaped by `wait4`, which also gives its own rusage.
#[allow(clippy::zombie_processes)]
fn fetch_measured(gateway: &str, store: &Path, root: &str) -> (bool, String, i64) {
    let child = Command::new(env!("CARGO_BIN_EXE_narfs"))
        .args(["fetch", "--gateway", gateway, "--jobs", "2", "--store"])
        .arg(store)
        .args([root, "-o", "/dev/null"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    (ok, reader.join().unwrap(), usage.ru_maxrss)
}

#[test]
fn zstd_bombs_are_refused_in_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let root = encode(&publisher, "requests-2.32.0");
    let srv = Server::start(&publisher);
    // 1 GiB of zeros in ~40 KiB.
    const GIB: u64 = 1 << 30;
    let raw_bomb = bomb(b"", GIB);
    assert!(raw_bomb.len() < 1 << 20);

    // Every block a bomb: refused as too large, having decoded little of it.
    let gw = fake_gateway(move |_| ("application/vnd.ipld.raw".into(), "zstd", raw_bomb.clone()));
    let (ok, err, peak) = fetch_measured(&gw, &tmp.path().join("c1"), &root);
    eprintln!("raw-block bomb: peak RSS {peak} KiB");
    assert!(!ok, "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains("larger than the block limit"), "{err}");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB over 64 MiB");

    // The whole-DAG CAR a bomb (a real header, then 1 GiB of zeros), the blocks real:
    // the CAR is dropped and the walk fetches the NAR, byte for byte, in bounded memory.
    let real_car = get(
        srv.addr,
        &format!("/ipfs/{root}?format=car&dag-scope=block"),
        &[],
    )
    .body;
    let header_len = real_car[0] as usize + 1; // a one-byte varint for a small header
    let car_bomb = bomb(&real_car[..header_len], GIB);
    let addr = srv.addr;
    let gw = fake_gateway(move |target| {
        if target.contains("format=car") {
            ("application/vnd.ipld.car".into(), "zstd", car_bomb.clone())
        } else {
            let r = get(addr, target, &[("Accept-Encoding", "zstd")]);
            let coding = if r.header("content-encoding").is_some() {
                "zstd"
            } else {
                ""
            };
            (
                r.header("content-type").unwrap().to_string(),
                coding,
                r.body,
            )
        }
    });
    let (ok, err, peak) = fetch_measured(&gw, &tmp.path().join("c2"), &root);
    eprintln!("CAR bomb: peak RSS {peak} KiB");
    assert!(ok, "{err}");
    assert!(peak < 64 * 1024, "peak RSS {peak} KiB over 64 MiB");

    // A coding not asked for: one line saying so.
    let gw = fake_gateway(|_| ("application/vnd.ipld.raw".into(), "gzip", vec![0; 10]));
    let (ok, err, _) = fetch_measured(&gw, &tmp.path().join("c3"), &root);
    assert!(!ok && err.trim_end().lines().count() == 1, "{err}");
    assert!(err.contains("Content-Encoding \"gzip\""), "{err}");
}
