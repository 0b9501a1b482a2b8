//! The real Guix of `.ci/guix.sh` for the tests: finding it (a failure under CI when
//! it is missing, a loud skip elsewhere), running commands and `guix repl` scripts in
//! its chroot, a `guix publish --cache` on a loopback port that bakes lzip and zstd
//! NARs, and the daemon's side of substituting: keys authorized for the test only,
//! items deleted, `ensure-path` from one substitute URL, validity. [`tamper`] relays
//! HTTP and alters what passes.
#![allow(dead_code)]

pub mod tamper;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The Guix of `.ci/guix.sh`, or `None` (loudly; a failure under CI) without it.
pub fn guix_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("NARFS_GUIX_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/var/tmp/narfs-guix"));
    let ready = dir.join("ready").is_file()
        && dir.join("guix-run").is_file()
        && dir.join("root/var/guix/daemon-socket/socket").exists();
    if !ready {
        if std::env::var_os("CI").is_some() {
            panic!(
                "no Guix at {} (or its daemon is not running): run .ci/guix.sh first",
                dir.display()
            );
        }
        eprintln!(
            "\n!!! SKIPPING: no Guix at {}; run .ci/guix.sh (as root) to run this test (CI does) !!!\n",
            dir.display()
        );
        return None;
    }
    Some(dir)
}

/// Runs `args` inside the chroot; its stdout.
pub fn guix(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(dir.join("guix-run"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A temporary directory inside the chroot's /tmp, and its path as Guix sees it.
pub fn work_dir(dir: &Path, prefix: &str) -> (tempfile::TempDir, String) {
    let work = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(dir.join("root/tmp"))
        .unwrap();
    let inside = format!(
        "/tmp/{}",
        work.path().file_name().unwrap().to_str().unwrap()
    );
    (work, inside)
}

/// A `guix publish` on a loopback port, stopped (by its pid) when dropped.
pub struct Publish {
    child: Child,
    pub port: u16,
}

impl Publish {
    /// `guix publish --cache=CACHE` (a path inside the chroot) baking lzip:3 and
    /// zstd:3, once it answers.
    pub fn start(dir: &Path, cache: &str) -> Publish {
        let cache = format!("--cache={cache}");
        Publish::with_args(
            dir,
            &[&cache, "--compression=lzip:3", "--compression=zstd:3"],
        )
    }

    /// `guix publish ARGS…` on a free loopback port, once it answers. The port is
    /// picked free, then bound by `guix publish`: another process may take it in
    /// between, so a `guix publish` that exits (it could not bind) is started again on
    /// another port, and only its own answer counts (`StoreDir: /gnu/store`).
    pub fn with_args(dir: &Path, args: &[&str]) -> Publish {
        let t = Instant::now();
        'port: for _ in 0..5 {
            let port = free_port();
            let child = Command::new(dir.join("guix-run"))
                .args(["guix", "publish", "--listen=127.0.0.1"])
                .arg(format!("--port={port}"))
                .args(args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            let mut publish = Publish { child, port };
            loop {
                let answer = get(port, "/nix-cache-info");
                if let Some((200, body)) = &answer {
                    if String::from_utf8_lossy(body).contains("StoreDir: /gnu/store") {
                        return publish;
                    }
                }
                if publish.child.try_wait().unwrap().is_some() {
                    continue 'port; // dropped: reaped
                }
                assert!(
                    t.elapsed() < Duration::from_secs(60),
                    "guix publish did not start (port {port}: {answer:?})"
                );
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        panic!("guix publish exited at start five times");
    }
}

impl Drop for Publish {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET path` on 127.0.0.1:port: the status code and the body (read to the close).
pub fn get(port: u16, path: &str) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut resp = Vec::new();
    s.read_to_end(&mut resp).ok()?;
    let end = resp.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&resp[9..12]).ok()?.parse().ok()?;
    Some((status, resp[end + 4..].to_vec()))
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn base(path: &str) -> &str {
    path.strip_prefix("/gnu/store/").unwrap()
}

/// Asks `guix publish` for each item's narinfo until both its NARs are baked.
pub fn bake(publish: &Publish, cache: &Path, paths: &[String]) {
    let deadline = Instant::now() + Duration::from_secs(300);
    for p in paths {
        let b = base(p);
        let hash = &b[..32];
        loop {
            let baked = ["lzip", "zstd"]
                .iter()
                .all(|c| cache.join(format!("{c}/{b}.narinfo")).is_file());
            if baked {
                break;
            }
            // Under 10 MiB a temporary narinfo (no FileSize) comes first, over it a 404.
            let _ = get(publish.port, &format!("/{hash}.narinfo"));
            assert!(Instant::now() < deadline, "guix publish never baked {p}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Runs a `guix repl` script (written under the chroot's /tmp as `work/name`):
/// (success, stderr).
pub fn repl(dir: &Path, work: &Path, inside: &str, name: &str, script: &str) -> (bool, String) {
    std::fs::write(work.join(name), script).unwrap();
    let out = Command::new(dir.join("guix-run"))
        .args(["guix", "repl", &format!("{inside}/{name}")])
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Adds items to the Guix store through its daemon: `bindings` are the clauses of a
/// `let*` inside `(with-store s …)` (each binding one store path), and the paths bound
/// to `names` are returned in that order.
pub fn add_to_store(
    dir: &Path,
    work: &Path,
    inside: &str,
    bindings: &str,
    names: &[&str],
) -> Vec<String> {
    let script = format!(
        r#"(use-modules (guix store))
(with-store s
  (let* ({bindings})
    (call-with-output-file "{inside}/paths"
      (lambda (port) (for-each (lambda (p) (display p port) (newline port)) (list {}))))))
"#,
        names.join(" ")
    );
    let (ok, err) = repl(dir, work, inside, "mk.scm", &script);
    assert!(ok, "{err}");
    let paths: Vec<String> = std::fs::read_to_string(work.join("paths"))
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(paths.len(), names.len(), "{paths:?}");
    paths
}

/// Writes the NAR of store path `path` as Guix's own writer (`write-file`) makes it,
/// to `work/name`; its path outside the chroot.
pub fn dump_nar(dir: &Path, work: &Path, inside: &str, path: &str, name: &str) -> PathBuf {
    let (ok, err) = repl(dir, work, inside, "dump.scm", &format!(
        "(use-modules (guix serialization))\n(call-with-output-file \"{inside}/{name}\" (lambda (p) (write-file \"{path}\" p)))\n"
    ));
    assert!(ok, "{err}");
    work.join(name)
}

/// Deletes `paths` from the Guix store and forgets cached narinfo lookups.
pub fn delete(dir: &Path, paths: &[&str]) {
    let mut args = vec!["guix", "gc", "-D"];
    args.extend(paths);
    guix(dir, &args);
    guix(dir, &["rm", "-rf", "/var/guix/substitute/cache"]);
    for p in paths {
        assert!(!valid(dir, p), "{p} still valid after guix gc -D");
    }
}

/// Whether the daemon holds `path` as valid (`guix gc --references` fails otherwise).
pub fn valid(dir: &Path, path: &str) -> bool {
    Command::new(dir.join("guix-run"))
        .args(["guix", "gc", "--references", path])
        .output()
        .unwrap()
        .status
        .success()
}

/// `ensure-path` of `path` with `url` as the only substitute server: (success,
/// stderr). `guix build` is no test of this: it exits 0 when nothing was substituted.
pub fn substitute(dir: &Path, work: &Path, inside: &str, url: &str, path: &str) -> (bool, String) {
    let script = format!(
        "(use-modules (guix store))\n(with-store s\n  (set-build-options s #:use-substitutes? #t #:substitute-urls '(\"{url}\"))\n  (ensure-path s \"{path}\"))\n"
    );
    repl(dir, work, inside, "substitute.scm", &script)
}

/// A Guix signing key pair made by the real Guix's libgcrypt as `guix archive
/// --generate-key` makes one, written to `work/NAME.sec` and `work/NAME.pub`.
pub fn generate_key(dir: &Path, work: &Path, inside: &str, name: &str) {
    let (ok, err) = repl(
        dir,
        work,
        inside,
        "key.scm",
        &format!(
            r#"(use-modules (gcrypt pk-crypto))
(let ((pair (generate-key (string->canonical-sexp "(genkey (ecc (curve Ed25519) (flags rfc6979)))"))))
  (call-with-output-file "{inside}/{name}.sec"
    (lambda (p) (display (canonical-sexp->string (find-sexp-token pair 'private-key)) p)))
  (call-with-output-file "{inside}/{name}.pub"
    (lambda (p) (display (canonical-sexp->string (find-sexp-token pair 'public-key)) p))))
"#
        ),
    );
    assert!(ok, "{err}");
}

/// The daemon's ACL as it was before the test authorized keys, put back when dropped.
pub struct Acl(Vec<u8>, PathBuf);

impl Acl {
    /// Authorizes `keys` (public key files, paths inside the chroot).
    pub fn authorize(dir: &Path, keys: &[&str]) -> Acl {
        let acl = dir.join("root/etc/guix/acl");
        let guard = Acl(std::fs::read(&acl).unwrap_or_default(), acl);
        for key in keys {
            guix(
                dir,
                &["sh", "-c", &format!("guix archive --authorize < {key}")],
            );
        }
        guard
    }
}

impl Drop for Acl {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.1, &self.0);
    }
}
