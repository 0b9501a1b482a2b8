//! A damaged LMDB lock file (`blocks/lock.mdb`): every command on the store either
//! works (decode giving the NAR's bytes) or fails with one line, never dies by a signal
//! and never hangs. At rest LMDB rebuilds the file (it holds no data); while another
//! process has it open (a `narfs serve` here) LMDB takes it as it is, and the store
//! checks its header first (`store::lock_file`). The commands run as subprocesses, so
//! a fault is a failed assertion, not the end of the test run.

mod common;
mod serve_support;

use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Longer than any command here takes on a loaded machine; then it is a hang.
const BOUND: Duration = Duration::from_secs(20);

fn source(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

/// What a command did: success, or its error's text.
struct Outcome {
    ok: bool,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs `narfs args` on `store` within [`BOUND`] (killed and failed after it), output
/// into files so that a full pipe cannot stop it; fails on a signal death.
fn run(store: &Path, args: &[&str], what: &str) -> Outcome {
    let out = tempfile::tempdir().unwrap();
    let (o, e) = (out.path().join("out"), out.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_narfs"))
        .env("NARFS_STORE", store)
        .args(args)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&o).unwrap())
        .stderr(std::fs::File::create(&e).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > BOUND {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: narfs {args:?} still running after {BOUND:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stderr = String::from_utf8_lossy(&std::fs::read(&e).unwrap()).into_owned();
    assert_eq!(
        status.signal(),
        None,
        "{what}: narfs {args:?} died by a signal; stderr: {stderr}"
    );
    Outcome {
        ok: status.success(),
        stdout: std::fs::read(&o).unwrap(),
        stderr,
    }
}

/// The five commands on `store`, each working or failing with one clear line.
fn every_command(store: &Path, nar: &Path, what: &str) -> usize {
    let nar_bytes = std::fs::read(nar).unwrap();
    let nar = nar.to_str().unwrap();
    let mut failed = 0;
    let commands: [&[&str]; 5] = [
        &["store", "verify"],
        &["store", "stats"],
        &["decode", "a"],
        &["encode", "--name", "b", nar],
        &["store", "gc"],
    ];
    for args in commands {
        let out = run(store, args, what);
        if out.ok {
            if args[0] == "decode" {
                assert!(out.stdout == nar_bytes, "{what}: decode gave other bytes");
            }
        } else {
            failed += 1;
            let lines: Vec<&str> = out.stderr.trim().lines().collect();
            assert!(
                lines.len() == 1 && lines[0].starts_with("narfs: ") && lines[0].len() > 20,
                "{what}: narfs {args:?}: not one clear line: {}",
                out.stderr
            );
        }
    }
    failed
}

/// A store holding the attrs NAR under the name `a`, and that NAR.
fn store(dir: &Path) -> (PathBuf, PathBuf) {
    let nar = source("corpus/attrs-24.1.0.nar");
    let store = dir.join("store");
    common::run(
        Command::new(env!("CARGO_BIN_EXE_narfs"))
            .env("NARFS_STORE", &store)
            .args(["encode", "--name", "a"])
            .arg(&nar),
    );
    (store, nar)
}

/// Offsets to damage: every word of the header (magic, format, last transaction,
/// reader count, the two mutexes) and a few of the reader slots.
fn offsets() -> impl Iterator<Item = usize> {
    (0..192).step_by(4).chain([200, 256, 1000, 4096, 65600])
}

fn xor_at(path: &Path, at: usize) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut b = [0u8; 4];
    f.read_exact_at(&mut b, at as u64).unwrap();
    f.write_all_at(&b.map(|x| x ^ 0xff), at as u64).unwrap();
}

#[test]
fn a_damaged_lock_file_at_rest_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let (store, nar) = store(dir.path());
    let lock = store.join("blocks/lock.mdb");
    let good = std::fs::read(&lock).unwrap();
    assert!(good.len() > 65600, "lock file of {} bytes", good.len());
    for at in offsets() {
        xor_at(&lock, at);
        let what = format!("at rest, bytes {at}..{} flipped", at + 4);
        // Nobody has the file open: LMDB rebuilds it, so everything works.
        assert_eq!(every_command(&store, &nar, &what), 0, "{what}");
    }
    let mut garbage = common::bytes(7, good.len());
    for (what, len) in [
        ("cut to 0", 0),
        ("cut to 5", 5),
        ("cut to 191", 191),
        ("cut to 1000", 1000),
    ] {
        std::fs::write(&lock, &good[..len]).unwrap();
        assert_eq!(every_command(&store, &nar, what), 0, "{what}");
    }
    garbage.truncate(9000);
    std::fs::write(&lock, &garbage).unwrap();
    assert_eq!(every_command(&store, &nar, "garbage"), 0, "garbage");
    // A symbolic link (the store follows none) and a directory: refused, one line.
    std::fs::remove_file(&lock).unwrap();
    std::os::unix::fs::symlink(dir.path().join("elsewhere"), &lock).unwrap();
    assert_eq!(every_command(&store, &nar, "a symbolic link"), 5);
    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    assert_eq!(every_command(&store, &nar, "a directory"), 5);
    std::fs::remove_dir(&lock).unwrap();
    assert_eq!(every_command(&store, &nar, "removed"), 0);
}

#[test]
fn a_damaged_lock_file_in_use_is_refused_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let (store, nar) = store(dir.path());
    let lock = store.join("blocks/lock.mdb");
    let mut server = serve_support::Server::start(&store);
    let good = std::fs::read(&lock).unwrap();
    let mut refused = Vec::new();
    for at in offsets() {
        xor_at(&lock, at);
        let what = format!("in use, bytes {at}..{} flipped", at + 4);
        if every_command(&store, &nar, &what) > 0 {
            refused.push(at);
        }
        // The original bytes back, and a server that has the file open.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&lock)
            .and_then(|f| {
                std::os::unix::fs::FileExt::write_all_at(&f, &good[at..at + 4], at as u64)
            })
            .unwrap();
        if std::net::TcpStream::connect(server.addr).is_err() {
            eprintln!("{what}: narfs serve stopped; started again");
            server = serve_support::Server::start(&store);
        }
    }
    eprintln!("in use: refused for the words at {refused:?}");
    // The magic and the reader count are refused (the count used to fault every
    // process opening the store: SIGSEGV in LMDB's reader-slot scan).
    for at in [0, 16] {
        assert!(
            refused.contains(&at),
            "bytes at {at} not refused: {refused:?}"
        );
    }
    let cut = &good[..100];
    std::fs::OpenOptions::new()
        .write(true)
        .open(&lock)
        .and_then(|f| f.set_len(cut.len() as u64))
        .unwrap();
    assert_eq!(every_command(&store, &nar, "in use, cut to 100 bytes"), 5);
    drop(server);
    // With no process left, LMDB rebuilds it.
    assert_eq!(every_command(&store, &nar, "cut, at rest"), 0);
}
