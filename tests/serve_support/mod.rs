//! Helpers for the import/serve tests: a `narfs serve` child killed on drop, a minimal
//! HTTP/1.1 client over `TcpStream` (with timeouts, chunked bodies), and hand-made
//! binary caches (NAR + narinfo, any compression) that need no Nix.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use narfs_core::block::NullSink;

// Every test crate using these helpers declares `mod common;` too.
pub use crate::common::bytes;

pub fn narfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_narfs"))
}

/// A running `narfs serve`, killed (and reaped) when dropped, whatever the test did.
pub struct Server {
    child: Child,
    pub url: String,
    pub addr: SocketAddr,
}

impl Server {
    pub fn start(store: &Path) -> Server {
        Server::spawn(store, &[], Stdio::null())
    }

    /// With more `narfs serve` arguments (e.g. `--sign-key FILE`); its complaints go
    /// to the test's stderr.
    pub fn start_with(store: &Path, args: &[&std::ffi::OsStr]) -> Server {
        Server::spawn(store, args, Stdio::inherit())
    }

    /// The substituter proxy: `narfs serve --upstream UPSTREAM --gateway GATEWAY
    /// ARGS…` over `store`, its stderr appended to `log`.
    pub fn start_proxy(
        store: &Path,
        upstream: &str,
        gateway: &str,
        args: &[&str],
        log: &Path,
    ) -> Server {
        let mut all = vec!["--upstream", upstream, "--gateway", gateway];
        all.extend_from_slice(args);
        Server::start_logged(store, &all, log)
    }

    /// `narfs serve --store STORE ARGS…`, its stderr (e.g. `--access-log` lines)
    /// appended to the file `log`.
    pub fn start_logged(store: &Path, args: &[&str], log: &Path) -> Server {
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("the server's log file");
        let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        Server::spawn(store, &args, Stdio::from(f))
    }

    fn spawn(store: &Path, args: &[&std::ffi::OsStr], stderr: Stdio) -> Server {
        let mut child = narfs()
            .args(["serve", "--listen", "127.0.0.1:0", "--store"])
            .arg(store)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn narfs serve");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("piped");
        BufReader::new(stdout).read_line(&mut line).unwrap();
        let url = line.trim().to_string();
        let addr = match url.strip_prefix("http://").and_then(|a| a.parse().ok()) {
            Some(a) => a,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("narfs serve printed {line:?}, not http://ADDR");
            }
        };
        Server { child, url, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body ended as announced (Content-Length reached or final chunk seen).
    pub complete: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `METHOD target` with extra headers, over a fresh connection, 60 s timeouts.
pub fn request(addr: SocketAddr, method: &str, target: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut r = BufReader::with_capacity(1 << 16, s);
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let status: u16 = line
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let mut headers = Vec::new();
    loop {
        line.clear();
        r.read_line(&mut line).unwrap();
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':').expect("header line");
        headers.push((k.trim().to_string(), v.trim().to_string()));
    }
    let mut resp = Response {
        status,
        headers,
        body: Vec::new(),
        complete: false,
    };
    if method == "HEAD" {
        resp.complete = true;
        return resp;
    }
    if let Some(len) = resp
        .header("content-length")
        .and_then(|v| v.parse::<u64>().ok())
    {
        let _ = r.by_ref().take(len).read_to_end(&mut resp.body);
        resp.complete = resp.body.len() as u64 == len;
    } else if resp.header("transfer-encoding") == Some("chunked") {
        resp.complete = read_chunked(&mut r, &mut resp.body);
    } else {
        resp.complete = r.read_to_end(&mut resp.body).is_ok();
    }
    resp
}

pub fn get(addr: SocketAddr, target: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", target, headers)
}

fn read_chunked(r: &mut impl BufRead, out: &mut Vec<u8>) -> bool {
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).unwrap_or(0) == 0 {
            return false;
        }
        let Ok(n) = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16) else {
            return false;
        };
        if n == 0 {
            return true;
        }
        let start = out.len();
        out.resize(start + n, 0);
        if r.read_exact(&mut out[start..]).is_err() {
            return false;
        }
        let mut crlf = [0u8; 2];
        if r.read_exact(&mut crlf).is_err() {
            return false;
        }
    }
}

/// NAR of a directory or file, as `nix-store --dump` would give it.
pub fn nar_of(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    narfs_core::nar::dump_path(path, &mut out).unwrap();
    out
}

/// `sha256:<nix base32>` of a NAR.
pub fn nar_hash(nar: &[u8]) -> String {
    let layout = narfs_encoder::Profile::KuboV1.layout();
    let e = narfs_encoder::encode(nar, &layout, &mut NullSink::default(), None).unwrap();
    narfs_nix::narinfo::nar_hash_string(&e.nar_sha256)
}

/// A 32-character store path hash from a seed (any Nix base32 string will do).
pub fn fake_hash(seed: u8) -> String {
    const A: &[u8] = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut s = (seed as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    (0..32)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            A[(s >> 59) as usize] as char
        })
        .collect()
}

/// One entry of a hand-made binary cache.
pub struct Entry {
    pub hash: String,
    pub name: String,
    pub nar: Vec<u8>,
    pub compression: &'static str,
    pub references: Vec<String>,
    pub extra: String,
}

impl Entry {
    pub fn new(seed: u8, name: &str, nar: Vec<u8>, compression: &'static str) -> Entry {
        Entry {
            hash: fake_hash(seed),
            name: name.to_string(),
            nar,
            compression,
            references: Vec::new(),
            extra: String::new(),
        }
    }
    pub fn store_path(&self) -> String {
        format!("/nix/store/{}-{}", self.hash, self.name)
    }
    pub fn base(&self) -> String {
        format!("{}-{}", self.hash, self.name)
    }
}

pub fn compress(data: &[u8], how: &str) -> (Vec<u8>, &'static str) {
    match how {
        "none" => (data.to_vec(), ""),
        "xz" => {
            let mut e = liblzma::write::XzEncoder::new(Vec::new(), 1);
            e.write_all(data).unwrap();
            (e.finish().unwrap(), ".xz")
        }
        "zstd" => (zstd::encode_all(data, 3).unwrap(), ".zst"),
        "bzip2" => {
            let mut e = bzip2::write::BzEncoder::new(Vec::new(), bzip2::Compression::fast());
            e.write_all(data).unwrap();
            (e.finish().unwrap(), ".bz2")
        }
        other => panic!("{other}"),
    }
}

/// Writes a file binary cache holding `entries` at `dir`, as `nix copy --to file://`
/// lays it out; returns the narinfo paths.
pub fn write_cache(dir: &Path, entries: &[Entry]) -> Vec<PathBuf> {
    std::fs::create_dir_all(dir.join("nar")).unwrap();
    std::fs::write(
        dir.join("nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 50\n",
    )
    .unwrap();
    let mut out = Vec::new();
    for e in entries {
        let (data, ext) = compress(&e.nar, e.compression);
        let file = format!("nar/{}.nar{ext}", e.hash);
        std::fs::write(dir.join(&file), data).unwrap();
        let info = format!(
            "StorePath: {}\nURL: {file}\nCompression: {}\nNarHash: {}\nNarSize: {}\nReferences: {}\n{}",
            e.store_path(),
            e.compression,
            nar_hash(&e.nar),
            e.nar.len(),
            e.references.join(" "),
            e.extra
        );
        let p = dir.join(format!("{}.narinfo", e.hash));
        std::fs::write(&p, info).unwrap();
        out.push(p);
    }
    out
}

/// A small tree: nested directories, an executable, a symlink, an empty file and a
/// file of `big` pseudo-random bytes.
pub fn sample_tree(root: &Path, seed: u64, big: usize) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let t = root.join(format!("tree-{seed}"));
    std::fs::create_dir_all(t.join("lib/deeper")).unwrap();
    std::fs::create_dir_all(t.join("bin")).unwrap();
    std::fs::write(t.join("bin/run"), b"#!/bin/sh\necho run\n").unwrap();
    std::fs::set_permissions(t.join("bin/run"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(t.join("lib/empty"), b"").unwrap();
    std::fs::write(t.join("lib/deeper/big.bin"), bytes(seed, big)).unwrap();
    std::fs::write(t.join("README"), format!("tree {seed}\n")).unwrap();
    std::os::unix::fs::symlink("lib/deeper/big.bin", t.join("link")).unwrap();
    t
}

const BOMB_CHUNK: usize = 256 << 10;
const BOMB_CHUNKS: u64 = 256;

/// A decompression bomb's NAR (64 MiB), streamed: one regular file of `BOMB_CHUNKS` chunks, each zeros but for its
/// number (so no two chunks dedup).
pub fn bomb(w: &mut dyn std::io::Write) {
    let token = |w: &mut dyn std::io::Write, s: &[u8]| {
        w.write_all(&(s.len() as u64).to_le_bytes()).unwrap();
        w.write_all(s).unwrap();
        w.write_all(&[0; 8][..(8 - s.len() % 8) % 8]).unwrap();
    };
    for t in ["nix-archive-1", "(", "type", "regular", "contents"] {
        token(w, t.as_bytes());
    }
    w.write_all(&(BOMB_CHUNKS * BOMB_CHUNK as u64).to_le_bytes())
        .unwrap();
    let mut chunk = vec![0u8; BOMB_CHUNK];
    for i in 0..BOMB_CHUNKS {
        chunk[..8].copy_from_slice(&i.to_le_bytes());
        w.write_all(&chunk).unwrap();
    }
    token(w, b")");
}
