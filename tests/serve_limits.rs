//! `narfs serve` against clients that ask for a large NAR and never read (issue 13,
//! class 5): the server's memory stays bounded with 100 of them (VmRSS from
//! /proc/PID/status) while a normal client is served, a client that stops reading is
//! cut after `--send-timeout` (freeing its stream for the next request), and a request
//! over `--max-streams` gets a 503 after `--queue-wait`.

mod common;
mod serve_support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serve_support::{get, nar_of};

/// A store holding one NAR with a 24 MiB incompressible file: far more than the
/// kernel's socket buffers take, so a client that does not read stalls its stream.
fn big_store(tmp: &Path) -> (PathBuf, String, Vec<u8>) {
    let t = tmp.join("tree");
    std::fs::create_dir(&t).unwrap();
    common::write(&t.join("big"), &common::bytes(7, 24 << 20), false);
    let nar = nar_of(&t);
    let store = tmp.join("store");
    let out = common::run(
        common::narfs()
            .arg("encode")
            .arg(&t)
            .args(["--name", "big", "--store"])
            .arg(&store),
    );
    let root = String::from_utf8(out.stdout).unwrap().trim().to_string();
    (store, root, nar)
}

/// `narfs serve` with extra flags, killed on drop.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start(store: &Path, flags: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_narfs"))
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(flags)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        std::io::BufRead::read_line(&mut out, &mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("http://")
            .unwrap()
            .parse()
            .unwrap();
        Server { child, addr }
    }

    /// Resident set of the server, in KiB.
    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A connection with a 4 KiB receive buffer (set before connecting, so the window
/// stays small) that sends `GET target` and then reads nothing.
fn stalled_client(addr: SocketAddr, target: &str) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("the test server listens on 127.0.0.1")
    };
    let s = unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
        let size: libc::c_int = 4096;
        let r = libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const _ as *const libc::c_void,
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "setsockopt: {}", std::io::Error::last_os_error());
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let r = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
        );
        assert_eq!(r, 0, "connect: {}", std::io::Error::last_os_error());
        TcpStream::from_raw_fd(fd)
    };
    let mut s = s;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    s
}

/// Reads what is left of a stalled client's response; (bytes read, whether the read
/// ended by EOF or reset rather than by the read timeout).
fn drain(mut s: TcpStream, within: Duration) -> (usize, bool) {
    s.set_read_timeout(Some(within)).unwrap();
    let mut n = 0;
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return (n, true),
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (n, true),
            Err(_) => return (n, false),
        }
    }
}

#[test]
fn a_hundred_stalled_clients_cost_bounded_memory() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, root, nar) = big_store(tmp.path());
    let target = format!("/nar/{root}.nar");
    // Room for all of them and the normal client: the per-stream bound is what counts.
    let srv = Server::start(&store, &["--max-streams", "128", "--send-timeout", "600"]);
    let idle = srv.rss_kib();
    let stalled: Vec<TcpStream> = (0..100)
        .map(|_| stalled_client(srv.addr, &target))
        .collect();
    // Let every stream fill its buffers and block.
    let mut peak = 0;
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        peak = peak.max(srv.rss_kib());
    }
    let r = get(srv.addr, &target, &[]);
    assert_eq!(r.status, 200);
    assert!(r.complete, "the normal client's NAR was cut");
    assert!(r.body == nar, "the normal client got other bytes");
    peak = peak.max(srv.rss_kib());
    eprintln!(
        "narfs serve: {idle} KiB idle, {peak} KiB peak with 100 stalled clients \
         ({} KiB per stalled client)",
        (peak.saturating_sub(idle)) / 100
    );
    // The old server took ~5.8 MB per stalled client; the bound here is 2 MiB each.
    assert!(
        peak < idle + 100 * 2048,
        "RSS {peak} KiB with 100 stalled clients (idle {idle} KiB)"
    );
    drop(stalled);
}

#[test]
fn a_client_that_stops_reading_is_cut_and_frees_its_stream() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, root, nar) = big_store(tmp.path());
    let target = format!("/nar/{root}.nar");
    let srv = Server::start(
        &store,
        &[
            "--max-streams",
            "1",
            "--send-timeout",
            "2",
            "--queue-wait",
            "60",
        ],
    );
    let start = Instant::now();
    let stalled = stalled_client(srv.addr, &target);
    std::thread::sleep(Duration::from_millis(500));
    // The one stream is taken: this request waits until the stalled one is cut.
    let r = get(srv.addr, &target, &[]);
    let waited = start.elapsed();
    assert_eq!(r.status, 200);
    assert!(
        r.complete && r.body == nar,
        "the waiting client got a bad NAR"
    );
    assert!(
        waited >= Duration::from_secs(2),
        "served after {waited:?}: the stalled client cannot have been cut yet"
    );
    // The stalled client's connection is closed, far short of the NAR.
    let (got, closed) = drain(stalled, Duration::from_secs(10));
    assert!(closed, "the stalled connection is still open");
    assert!(
        got < nar.len(),
        "the stalled client got {got} bytes of {}",
        nar.len()
    );
}

#[test]
fn a_request_over_max_streams_gets_503_after_queue_wait() {
    let tmp = tempfile::tempdir().unwrap();
    let (store, root, _) = big_store(tmp.path());
    let target = format!("/nar/{root}.nar");
    let srv = Server::start(
        &store,
        &[
            "--max-streams",
            "1",
            "--send-timeout",
            "60",
            "--queue-wait",
            "1",
        ],
    );
    let _stalled = stalled_client(srv.addr, &target);
    std::thread::sleep(Duration::from_millis(300));
    let start = Instant::now();
    let r = get(srv.addr, &target, &[]);
    assert_eq!(r.status, 503, "{}", r.text());
    assert!(r.header("retry-after").is_some());
    assert!(start.elapsed() >= Duration::from_millis(900));
    // Requests that stream nothing are not held up.
    assert_eq!(get(srv.addr, "/nix-cache-info", &[]).status, 200);
}
