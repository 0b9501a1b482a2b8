//! Helpers shared by the CLI and cross-implementation tests.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod http_server;
pub mod trees;
pub mod vectors;

/// The binary, with its default store in a temporary directory of this test process
/// (never the user's own store); tests that care pass `--store` themselves.
pub fn narfs() -> Command {
    static STORE: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let store = STORE.get_or_init(|| tempfile::tempdir().expect("a temporary store"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_narfs"));
    cmd.env("NARFS_STORE", store.path());
    cmd
}

/// The binary with `$NARFS_STORE` set to `store` (for tests that own their store).
pub fn narfs_in(store: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_narfs"));
    cmd.env("NARFS_STORE", store);
    cmd
}

/// Runs `cmd`, asserting that it succeeded; its stdout.
pub fn ok(cmd: &mut Command) -> Vec<u8> {
    run(cmd).stdout
}

/// Runs `cmd`, asserting that it succeeded; its stdout as text, trimmed.
#[allow(dead_code)]
pub fn ok_text(cmd: &mut Command) -> String {
    String::from_utf8_lossy(&ok(cmd)).trim().to_string()
}

/// Makes a FIFO at `path` and reads it whole on a thread of its own.
#[allow(dead_code)]
pub fn read_fifo(path: &Path) -> std::thread::JoinHandle<Vec<u8>> {
    assert!(Command::new("mkfifo").arg(path).status().unwrap().success());
    let path = path.to_path_buf();
    std::thread::spawn(move || std::fs::read(path).unwrap())
}

/// Reads an HTTP request's head (through the blank line) one byte at a time, so that
/// nothing of its body is consumed; `None` if the peer closes first.
#[allow(dead_code)]
pub fn read_head(client: &mut std::net::TcpStream) -> Option<String> {
    use std::io::Read;
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if client.read(&mut byte).unwrap_or(0) == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    Some(String::from_utf8(head).unwrap())
}

/// The one line of stderr of a failed run: asserts that `out` is a failure that said
/// why in one line, without a panic.
#[allow(dead_code)]
pub fn failure(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "exit 0: {out:?}");
    assert!(!err.contains("panicked"), "panicked: {err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    err.trim_end().to_string()
}

/// A xorshift generator, for tests that draw sizes, moments or bytes reproducibly.
#[allow(unused_imports)]
pub use narfs_core::noise::Noise as Rng;

pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The bundled corpus of real NARs (`corpus/*.nar`, see `corpus/MANIFEST.tsv`).
#[allow(dead_code)]
pub fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus")
}

/// A file of the bundled corpus, e.g. `corpus("click-8.1.5.nar")`.
pub fn corpus(file: &str) -> PathBuf {
    corpus_dir().join(file)
}

/// `narfs encode --json --name NAME --store STORE corpus/NAME.nar`: the root CID.
pub fn encode_named(store: &Path, name: &str) -> String {
    let out = run(narfs()
        .args(["encode", "--json", "--name", name, "--store"])
        .arg(store)
        .arg(corpus(&format!("{name}.nar"))));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["root"].as_str().unwrap().to_string()
}

/// Whether an external tool is on PATH. A missing tool fails the test under CI
/// (which installs every tool) and is reported loudly elsewhere.
pub fn have(tool: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !found {
        if std::env::var_os("CI").is_some() {
            panic!("{tool} is required for this test and is missing; .ci/run should install it");
        }
        eprintln!(
            "\n!!! SKIPPING: {tool} is not installed; install it to run this test (CI does) !!!\n"
        );
    }
    found
}

/// A Nix command isolated in `tmp`: no system or user configuration, no substituters,
/// caches under `tmp`; stores are given with `--store` (chroot stores in `tmp`).
pub fn nix(tmp: &Path, program: &str) -> Command {
    let mut c = Command::new(program);
    for d in ["etc", "home", "cache", "config", "data", "state"] {
        std::fs::create_dir_all(tmp.join("nixenv").join(d)).unwrap();
    }
    let env = tmp.join("nixenv");
    c.env("NIX_CONF_DIR", env.join("etc"))
        .env("HOME", env.join("home"))
        .env("XDG_CACHE_HOME", env.join("cache"))
        .env("XDG_CONFIG_HOME", env.join("config"))
        .env("XDG_DATA_HOME", env.join("data"))
        .env("XDG_STATE_HOME", env.join("state"))
        .env(
            "NIX_CONFIG",
            "experimental-features = nix-command\nsubstituters =\nsandbox = false\nbuild-users-group =\n",
        )
        .env_remove("NIX_REMOTE")
        .env_remove("NIX_PATH");
    c
}

pub fn write(path: &Path, data: &[u8], executable: bool) {
    std::fs::write(path, data).unwrap();
    let mode = if executable { 0o755 } else { 0o644 };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

pub fn symlink(target: &[u8], path: &Path) {
    std::os::unix::fs::symlink(OsStr::from_bytes(target), path).unwrap();
}

/// Deterministic pseudo-random bytes.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    narfs_core::noise::bytes(seed, len)
}

/// A tree with every kind of node the NAR model has, and the awkward cases:
/// executables, empty files and directories, dangling, relative and absolute
/// symlinks, UTF-8 and (optionally) non-UTF-8 names.
pub fn awkward_tree(root: &Path, non_utf8: bool) -> PathBuf {
    let t = root.join("tree");
    std::fs::create_dir_all(t.join("sub/deeper")).unwrap();
    std::fs::create_dir(t.join("empty-dir")).unwrap();
    write(&t.join("empty"), b"", false);
    write(&t.join("empty-exe"), b"", true);
    write(&t.join("hello.sh"), b"#!/bin/sh\necho hi\n", true);
    write(&t.join("sub/data.bin"), &bytes(1, 70_000), false);
    write(&t.join("sub/deeper/one-chunk"), &bytes(2, 262_144), false);
    write(&t.join("sub/deeper/two-chunks"), &bytes(3, 262_145), false);
    write(&t.join("naïve café ☕"), "unicode".as_bytes(), false);
    symlink(b"sub/data.bin", &t.join("rel-link"));
    symlink(b"/nix/store/does-not-exist", &t.join("abs-dangling"));
    symlink(b"../nowhere", &t.join("sub/dangling"));
    if non_utf8 {
        write(&t.join(OsStr::from_bytes(b"latin1-\xe9t\xe9")), b"x", false);
    }
    t
}

/// A tree as the NAR model sees it, for property tests.
#[derive(Clone, Debug)]
pub enum Node {
    File(bool, Vec<u8>),
    Symlink(Vec<u8>),
    Dir(Vec<(String, Node)>),
}

/// Random trees with UTF-8 names (what a UnixFS tree can carry), files from empty to
/// a few chunks of the small test chunkers, executables and symlinks.
pub fn arb_tree() -> impl proptest::strategy::Strategy<Value = Node> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        (any::<bool>(), prop::collection::vec(any::<u8>(), 0..3000))
            .prop_map(|(x, d)| Node::File(x, d)),
        (any::<bool>(), 0usize..20_000, any::<u8>())
            .prop_map(|(x, n, b)| Node::File(x, vec![b; n])),
        "[a-z/.]{1,30}".prop_map(|t| Node::Symlink(t.into_bytes())),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop::collection::btree_map("[a-zA-Z0-9._ é☕-]{1,12}", inner, 0..8).prop_map(|m| {
            Node::Dir(
                m.into_iter()
                    .filter(|(k, _)| k != "." && k != "..")
                    .collect(),
            )
        })
    })
}

pub fn tree_nar(node: &Node) -> Vec<u8> {
    use narfs_core::nar::NarWriter;
    fn go(w: &mut NarWriter<&mut Vec<u8>>, name: &[u8], node: &Node) {
        match node {
            Node::File(x, d) => w.file(name, *x, d.len() as u64, &mut &d[..]).unwrap(),
            Node::Symlink(t) => w.symlink(name, t).unwrap(),
            Node::Dir(entries) => {
                w.directory(name).unwrap();
                let mut sorted: Vec<_> = entries.iter().collect();
                sorted.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
                for (n, c) in sorted {
                    go(w, n.as_bytes(), c);
                }
                w.end_directory().unwrap();
            }
        }
    }
    let mut out = Vec::new();
    let mut w = NarWriter::new(&mut out);
    go(&mut w, b"", node);
    w.finish().unwrap();
    out
}

/// narfs's CID of every entry of `dir` under `profile` (path → CID, the root `""`),
/// from `narfs encode --entries`; the CAR goes to `car`, `extra` are more arguments.
pub fn encode_entries(
    dir: &Path,
    profile: &str,
    car: &Path,
    extra: &[&str],
) -> std::collections::BTreeMap<String, String> {
    let list = car.with_extension("jsonl");
    let out = run(narfs()
        .args(["encode", "--json", "--profile", profile, "--car"])
        .arg(car)
        .arg("--entries")
        .arg(&list)
        .args(extra)
        .arg(dir));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let entries: std::collections::BTreeMap<String, String> = std::fs::read_to_string(&list)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            (
                v["path"].as_str().unwrap().into(),
                v["cid"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        entries.get(""),
        v["root"].as_str().map(String::from).as_ref()
    );
    entries
}
