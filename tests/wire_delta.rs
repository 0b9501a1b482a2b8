//! The delta transfer between `narfs fetch` and `narfs serve` (`/narfs/v1/delta`):
//! - a version series fetched with it is byte-exact and moves fewer bytes on the wire
//!   than the same series without it; the default base is the held record of the
//!   same package, named from the server's answer; `--base` names one;
//! - a hostile delta server (lying part heads, a reference the client cannot have,
//!   a zstd bomb, a window over the limit, a cut answer, damaged frames, trailing
//!   bytes, an unasked `Content-Encoding`): the fetch falls back to the trustless
//!   gateway for what did not come, says so in one line, and the NAR is byte-exact.
//!
//! The fallback against a gateway that does not speak delta (Kubo) is in
//! `tests/fetch.rs`, beside the other Kubo fetches.

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Output;

use common::{corpus, encode_named};
use serve_support::{narfs, Server};

const SERIES: [&str; 3] = [
    "openssl-3.0.17-1~deb12u2",
    "openssl-3.0.20-1~deb12u2",
    "openssl-3.0.22-1~deb12u2",
];

fn fetch(gateway: &str, store: &Path, root: &str, nar: &Path, args: &[&str]) -> Output {
    narfs()
        .args(["fetch", "--gateway", gateway, "--store"])
        .arg(store)
        .args(args)
        .arg(root)
        .arg("-o")
        .arg(nar)
        .output()
        .unwrap()
}

/// [`fetch`], and the child's peak RSS in KiB (from `wait4`: the child's own, the
/// test process being small).
// The child is reaped by `wait4`, which also gives its rusage.
#[allow(clippy::zombie_processes)]
fn fetch_measured(gateway: &str, store: &Path, root: &str, nar: &Path) -> (Output, i64) {
    let child = narfs()
        .args(["fetch", "--gateway", gateway, "--store"])
        .arg(store)
        .arg(root)
        .arg("-o")
        .arg(nar)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stderr = child.stderr.unwrap();
    let reader = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.read_to_end(&mut s);
        s
    });
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::wait4(pid, &mut status, 0, &mut usage) }, pid);
    let out = Output {
        status: std::os::unix::process::ExitStatusExt::from_raw(status),
        stdout: Vec::new(),
        stderr: reader.join().unwrap(),
    };
    (out, usage.ru_maxrss)
}

/// The bytes on the wire in `narfs fetch`'s summary.
fn wire_bytes(stderr: &str) -> u64 {
    let rest = &stderr[stderr
        .find("requests (")
        .unwrap_or_else(|| panic!("{stderr}"))
        + 10..];
    rest[..rest.find(" bytes on the wire").unwrap()]
        .parse()
        .unwrap()
}

fn ok(out: &Output) -> String {
    ok_in("", out)
}

fn ok_in(case: &str, out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{case}: {err}");
    err
}

#[test]
fn a_series_with_delta_is_byte_exact_and_moves_fewer_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let roots: Vec<String> = SERIES.iter().map(|n| encode_named(&publisher, n)).collect();
    let srv = Server::start(&publisher);
    let nar = tmp.path().join("out.nar");
    let (with, without) = (tmp.path().join("with"), tmp.path().join("without"));
    let (mut delta, mut plain) = (0, 0);
    for (i, (name, root)) in SERIES.iter().zip(&roots).enumerate() {
        let expected = std::fs::read(corpus(&format!("{name}.nar"))).unwrap();
        let err = ok(&fetch(&srv.url, &with, root, &nar, &[]));
        assert!(
            std::fs::read(&nar).unwrap() == expected,
            "{name} with delta"
        );
        // The first version has no base; the next ones take the previous one,
        // recorded under the name the server gave.
        assert_eq!(err.contains("delta against 1 base"), i > 0, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        let d = wire_bytes(&err);
        let err = ok(&fetch(&srv.url, &without, root, &nar, &["--no-delta"]));
        assert!(
            std::fs::read(&nar).unwrap() == expected,
            "{name} without delta"
        );
        assert!(!err.contains("delta against"), "{err}");
        let p = wire_bytes(&err);
        if i > 0 {
            delta += d;
            plain += p;
        }
    }
    assert!(
        delta * 10 < plain * 8,
        "updates: {delta} bytes with delta, {plain} without"
    );
    let listed = narfs()
        .args(["store", "ls", "--store"])
        .arg(&with)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    for name in SERIES {
        assert!(listed.contains(name), "{name} not recorded: {listed}");
    }

    // An explicit base, by name, into a store holding only the first version.
    let third = tmp.path().join("third");
    ok(&fetch(
        &srv.url,
        &third,
        &roots[0],
        &nar,
        &["--name", "old"],
    ));
    let err = ok(&fetch(
        &srv.url,
        &third,
        &roots[2],
        &nar,
        &["--base", "old"],
    ));
    assert!(err.contains("delta against 1 base"), "{err}");
    assert!(
        std::fs::read(&nar).unwrap()
            == std::fs::read(corpus(&format!("{}.nar", SERIES[2]))).unwrap()
    );
    // A base the store does not hold: one line, nothing fetched.
    let out = fetch(
        &srv.url,
        &third,
        &roots[1],
        &nar,
        &["--base", "nothing-1.0"],
    );
    assert!(!out.status.success());
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(err.contains("no such root"), "{err}");
}

/// What the hostile relay answers to a delta request (the real answer's raw HTTP
/// bytes given, its head included).
type Answer = fn(Vec<u8>) -> Vec<u8>;

/// A relay on 127.0.0.1 in front of `upstream` (a `narfs serve`): every request is
/// passed on (one connection each), and the delta answer goes through `answer`.
fn hostile(upstream: &str, answer: Answer) -> String {
    let upstream = upstream.strip_prefix("http://").unwrap().to_string();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for c in listener.incoming().flatten() {
            let up = upstream.clone();
            std::thread::spawn(move || relay(c, &up, answer));
        }
    });
    url
}

fn relay(mut client: TcpStream, upstream: &str, answer: Answer) {
    let Some(head) = common::read_head(&mut client) else {
        return;
    };
    let mut out = String::new();
    let mut length = 0usize;
    for line in head.trim_end().lines() {
        let lower = line.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("content-length:") {
            length = n.trim().parse().unwrap();
        }
        if !lower.starts_with("connection:") {
            out.push_str(line);
            out.push_str("\r\n");
        }
    }
    out.push_str("Connection: close\r\n\r\n");
    let mut body = vec![0u8; length];
    client.read_exact(&mut body).unwrap();
    let mut up = TcpStream::connect(upstream).unwrap();
    up.write_all(out.as_bytes()).unwrap();
    up.write_all(&body).unwrap();
    let mut reply = Vec::new();
    let _ = up.read_to_end(&mut reply);
    if head.starts_with("POST /narfs/v1/delta") {
        reply = answer(reply);
    }
    let _ = client.write_all(&reply);
}

/// A 200 delta answer with `body`.
fn delta_answer(body: &[u8], extra: &str) -> Vec<u8> {
    let mut r = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.narfs.delta.v1\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

fn zstd_of(data: &mut dyn Read, window_log: u32) -> Vec<u8> {
    let mut e = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    e.window_log(window_log).unwrap();
    e.long_distance_matching(window_log > 27).unwrap();
    std::io::copy(data, &mut e).unwrap();
    e.finish().unwrap()
}

/// `P 0 1` then a frame of a 4 MiB block of zeros followed by 1 GiB more: a few
/// hundred KiB on the wire.
fn bomb(_: Vec<u8>) -> Vec<u8> {
    let mut body = b"P\x00\x01".to_vec();
    let mut content = vec![0x80, 0x80, 0x80, 0x02]; // varint(4 MiB)
    content.truncate(4);
    let mut zeros = std::io::repeat(0).take(1 << 30);
    let mut both = (&content[..]).chain(&mut zeros);
    body.extend(zstd_of(&mut both, 20));
    body.push(b'E');
    delta_answer(&body, "")
}

/// A frame whose window (2^30) is over the client's limit.
fn wide(_: Vec<u8>) -> Vec<u8> {
    let mut body = b"P\x00\x01".to_vec();
    body.extend(zstd_of(&mut std::io::repeat(7).take(1 << 20), 30));
    delta_answer(&body, "")
}

fn lying_item(_: Vec<u8>) -> Vec<u8> {
    delta_answer(b"D\xff\x7f\x0a", "")
}

/// A reference longer than any base the client holds could be (64 MiB).
fn long_reference(_: Vec<u8>) -> Vec<u8> {
    let mut body = b"D\x00".to_vec();
    body.extend([0x80, 0x80, 0x80, 0x20]);
    delta_answer(&body, "")
}

fn bad_head(_: Vec<u8>) -> Vec<u8> {
    delta_answer(b"Q", "")
}

fn cut(real: Vec<u8>) -> Vec<u8> {
    let n = real.len() / 2;
    real[..n].to_vec()
}

/// The real answer with bytes of its middle flipped.
fn damaged(mut real: Vec<u8>) -> Vec<u8> {
    let at = real.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let mid = at + (real.len() - at) / 2;
    for b in &mut real[mid..mid + 64] {
        *b ^= 0x5a;
    }
    real
}

fn trailing(_: Vec<u8>) -> Vec<u8> {
    delta_answer(b"EEEE", "")
}

fn coded(_: Vec<u8>) -> Vec<u8> {
    delta_answer(b"E", "Content-Encoding: zstd\r\n")
}

#[test]
fn a_hostile_delta_server_costs_a_fallback_never_wrong_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    let publisher = tmp.path().join("publisher");
    let v1 = encode_named(&publisher, SERIES[0]);
    let v2 = encode_named(&publisher, SERIES[1]);
    let expected = std::fs::read(corpus(&format!("{}.nar", SERIES[1]))).unwrap();
    let srv = Server::start(&publisher);
    let nar = tmp.path().join("out.nar");
    // Each case, and what its one line says.
    let cases: [(&str, Answer, &str); 10] = [
        ("bomb", bomb, "a part holds a block that is not"),
        ("wide", wide, "Frame requires too much memory"),
        ("lying item", lying_item, "item 16383, which has no base"),
        ("long reference", long_reference, "more than its base"),
        ("bad head", bad_head, "a part head is malformed"),
        ("cut", cut, "the delta request to"),
        ("damaged", damaged, "the delta request to"),
        ("trailing", trailing, "bytes follow the end of the answer"),
        (
            "coded",
            coded,
            "Content-Encoding \"zstd\", which was not asked for",
        ),
        ("honest", |real| real, ""),
    ];
    for (case, answer, why) in cases {
        let store = tmp.path().join(case);
        let gateway = hostile(&srv.url, answer);
        ok_in(case, &fetch(&gateway, &store, &v1, &nar, &[]));
        let (out, rss) = fetch_measured(&gateway, &store, &v2, &nar);
        let err = ok_in(case, &out);
        // Bounded: a bomb costs at most one block past the limit and a capped window.
        assert!(rss < 200 << 10, "{case}: peak RSS {rss} KiB");
        assert!(
            std::fs::read(&nar).unwrap() == expected,
            "{case}: wrong NAR"
        );
        assert!(err.contains("delta against 1 base"), "{case}: {err}");
        let lines = err.trim_end().lines().count();
        if case == "honest" {
            assert_eq!(lines, 1, "{case}: {err}");
        } else {
            assert_eq!(lines, 2, "{case}: {err}");
            assert!(
                err.contains("the delta transfer stopped, the rest came block by block"),
                "{case}: {err}"
            );
            assert!(err.contains(why), "{case}: {err}");
        }
        // The store is whole: verify finds nothing wrong.
        let v = narfs()
            .args(["store", "verify", "--store"])
            .arg(&store)
            .output()
            .unwrap();
        assert!(v.status.success(), "{case}: {v:?}");
    }
}
