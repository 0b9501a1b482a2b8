//! Throwaway Kubo nodes for the tests: a repo in a temporary directory (`ipfs init
//! --profile test`, no bootstrap peers, no routing, no mDNS, no AutoConf/AutoTLS, no
//! telemetry, every address on 127.0.0.1 with a port the OS picks), used offline for
//! `ipfs add --only-hash`, or with a daemon started `--offline` (its API on loopback)
//! that is killed by PID when the node is dropped, on a panic too.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Whether `ipfs` (Kubo) is on PATH; fails the test under CI (which builds it, see
/// .ci/kubo.sh), loud elsewhere.
pub fn have_ipfs() -> bool {
    crate::common::have("ipfs")
}

/// A Kubo repo, and its daemon once [`start`](Kubo::start)ed.
pub struct Kubo {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
    /// `http://127.0.0.1:PORT` of the RPC API while the daemon runs.
    pub api: Option<String>,
    /// `http://127.0.0.1:PORT` of the gateway while the daemon runs (it serves only
    /// the blocks the node holds: `Gateway.NoFetch`, and the daemon is offline).
    pub gateway: Option<String>,
}

impl Kubo {
    /// A fresh repo; `profile` is applied after init (e.g. `unixfs-v1-2025`).
    pub fn init(profile: Option<&str>) -> Kubo {
        let dir = tempfile::tempdir().expect("a temporary directory for the Kubo repo");
        let kubo = Kubo {
            dir,
            daemon: None,
            api: None,
            gateway: None,
        };
        ok(kubo
            .ipfs()
            .args(["init", "--profile", "test", "--empty-repo"]));
        kubo.isolate();
        if let Some(p) = profile {
            ok(kubo.ipfs().args(["config", "profile", "apply", p]));
        }
        kubo
    }

    pub fn repo(&self) -> &Path {
        self.dir.path()
    }

    /// `ipfs` on this repo (through the daemon's API while it runs).
    pub fn ipfs(&self) -> Command {
        let mut cmd = Command::new("ipfs");
        cmd.env("IPFS_PATH", self.repo())
            .env("IPFS_TELEMETRY", "off")
            .stdin(Stdio::null());
        cmd
    }

    /// Everything that could reach past loopback, off, in the config file itself.
    fn isolate(&self) {
        let path = self.repo().join("config");
        let mut c: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let local = "/ip4/127.0.0.1/tcp/0";
        c["Bootstrap"] = serde_json::json!([]);
        c["Addresses"]["API"] = local.into();
        c["Addresses"]["Gateway"] = local.into();
        c["Addresses"]["Swarm"] = serde_json::json!([local]);
        c["Addresses"]["Announce"] = serde_json::json!([]);
        c["Routing"]["Type"] = "none".into();
        c["Discovery"]["MDNS"]["Enabled"] = false.into();
        c["AutoConf"]["Enabled"] = false.into();
        c["AutoTLS"]["Enabled"] = false.into();
        c["Swarm"]["DisableNatPortMap"] = true.into();
        c["Gateway"]["NoFetch"] = true.into();
        c["Plugins"] = serde_json::json!({"Plugins": {"telemetry": {"Config": {"Mode": "off"}}}});
        std::fs::write(&path, serde_json::to_vec_pretty(&c).unwrap()).unwrap();
    }

    /// Starts `ipfs daemon --offline` and waits (up to 60 s) for its API and gateway
    /// (whose addresses the daemon writes into the repo's `api` and `gateway` files).
    pub fn start(&mut self) -> &str {
        self.start_daemon(true)
    }

    /// Starts the daemon online: its swarm listens on 127.0.0.1 only and, with no
    /// bootstrap peers, no routing and no mDNS, it talks only to the peers a test
    /// connects it to ([`connect_to`](Kubo::connect_to)).
    pub fn start_online(&mut self) -> &str {
        self.start_daemon(false)
    }

    fn start_daemon(&mut self, offline: bool) -> &str {
        assert!(self.daemon.is_none(), "the daemon runs already");
        let log = std::fs::File::create(self.repo().join("daemon.log")).unwrap();
        let child = self
            .ipfs()
            .arg("daemon")
            .args(offline.then_some("--offline"))
            .arg("--migrate=false")
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawn ipfs daemon");
        self.daemon = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        let api_file = self.repo().join("api");
        loop {
            if let Some(status) = self.daemon.as_mut().unwrap().try_wait().unwrap() {
                panic!("ipfs daemon exited ({status}): {}", self.log());
            }
            if let Some(addr) = std::fs::read_to_string(&api_file)
                .ok()
                .and_then(|a| api_addr(a.trim()))
            {
                let gateway = std::fs::read_to_string(self.repo().join("gateway"))
                    .ok()
                    .map(|g| g.trim().to_string())
                    .filter(|g| g.starts_with("http://127.0.0.1:"));
                if let (true, Some(gateway)) = (TcpStream::connect(&addr).is_ok(), gateway) {
                    self.api = Some(format!("http://{addr}"));
                    self.gateway = Some(gateway);
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "no Kubo API after 60 s: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        self.api.as_deref().unwrap()
    }

    /// `ipfs config --json KEY VALUE` (before the daemon starts).
    pub fn config_json(&self, key: &str, value: &str) {
        ok(self.ipfs().args(["config", "--json", key, value]));
    }

    /// The daemon's loopback swarm address with its peer ID, `/ip4/127.0.0.1/tcp/PORT/p2p/ID`.
    pub fn swarm_address(&self) -> String {
        let id = ok(self.ipfs().args(["id", "-f", "<id>"]));
        let id = String::from_utf8(id.stdout).unwrap().trim().to_string();
        let addrs = ok(self.ipfs().args(["swarm", "addrs", "local"]));
        let addrs = String::from_utf8(addrs.stdout).unwrap();
        let tcp = addrs
            .lines()
            .map(str::trim)
            .find(|a| a.starts_with("/ip4/127.0.0.1/tcp/"))
            .unwrap_or_else(|| panic!("no loopback TCP swarm address in {addrs:?}"));
        format!("{tcp}/p2p/{id}")
    }

    /// `ipfs swarm connect` to `other`'s swarm address.
    pub fn connect_to(&self, other: &Kubo) {
        ok(self
            .ipfs()
            .args(["swarm", "connect", &other.swarm_address()]));
    }

    /// `ipfs stats bitswap`'s (BlocksReceived, DataReceived).
    pub fn bitswap_received(&self) -> (u64, u64) {
        let out = ok(self.ipfs().args(["stats", "bitswap", "--enc=json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let n = |k: &str| v[k].as_u64().unwrap_or_else(|| panic!("no {k} in {v}"));
        (n("BlocksReceived"), n("DataReceived"))
    }

    /// Kills the daemon (SIGKILL, this PID only) and waits for it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.repo().join("daemon.log")).unwrap_or_default()
    }

    /// `ipfs add -r` (hidden files too) of `path` with `args`: the CID of every entry,
    /// by path relative to `path` (`""` for `path` itself).
    pub fn add(&self, path: &Path, args: &[&str]) -> BTreeMap<String, String> {
        let out = ok(self
            .ipfs()
            .args(["add", "-r", "-H", "--progress=false"])
            .args(args)
            .arg(path));
        let base = path.file_name().unwrap().to_str().unwrap();
        let mut entries = BTreeMap::new();
        for line in String::from_utf8(out.stdout).unwrap().lines() {
            let rest = line
                .strip_prefix("added ")
                .expect("an `added CID PATH` line");
            let (cid, name) = rest.split_once(' ').expect("added CID PATH");
            let rel = match name.strip_prefix(base) {
                Some("") => "",
                Some(r) => r.strip_prefix('/').expect("PATH under the added dir"),
                None => panic!("ipfs add printed {name:?}, not under {base}"),
            };
            entries.insert(rel.to_string(), cid.to_string());
        }
        entries
    }

    /// The root CID `ipfs add -r --cid-version=1 --only-hash` gives `path`.
    pub fn only_hash_root(&self, path: &Path, args: &[&str]) -> String {
        let out = ok(self
            .ipfs()
            .args(["add", "-r", "-H", "-Q", "--only-hash", "--cid-version=1"])
            .args(args)
            .arg(path));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    }

    /// `ipfs repo stat`'s RepoSize (bytes the repo takes on disk).
    pub fn repo_size(&self) -> u64 {
        let out = ok(self.ipfs().args(["repo", "stat", "--enc=json"]));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["RepoSize"].as_u64().expect("RepoSize")
    }

    /// `ipfs refs local`: every block the node holds.
    pub fn local_blocks(&self) -> std::collections::BTreeSet<String> {
        let out = ok(self.ipfs().args(["refs", "local"]));
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for Kubo {
    fn drop(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            // Child::kill sends SIGKILL to this PID only.
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `/ip4/127.0.0.1/tcp/PORT` → `127.0.0.1:PORT`.
fn api_addr(multiaddr: &str) -> Option<String> {
    let parts: Vec<&str> = multiaddr.split('/').collect();
    match parts.as_slice() {
        ["", "ip4", ip, "tcp", port] => Some(format!("{ip}:{port}")),
        _ => None,
    }
}

/// Runs `cmd`, panicking with its stderr when it fails.
fn ok(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// What a restored tree holds: per path, a directory, a symlink target, or a file's
/// executable bit and bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry {
    Dir,
    Link(PathBuf),
    File(bool, Vec<u8>),
}

/// Every entry under `root`, by path relative to it.
pub fn listing(root: &Path) -> BTreeMap<PathBuf, Entry> {
    fn go(root: &Path, p: &Path, out: &mut BTreeMap<PathBuf, Entry>) {
        let m = std::fs::symlink_metadata(p).unwrap();
        let rel = p.strip_prefix(root).unwrap().to_path_buf();
        if m.is_symlink() {
            out.insert(rel, Entry::Link(std::fs::read_link(p).unwrap()));
        } else if m.is_dir() {
            out.insert(rel, Entry::Dir);
            for e in std::fs::read_dir(p).unwrap() {
                go(root, &e.unwrap().path(), out);
            }
        } else {
            let exec = m.permissions().mode() & 0o100 != 0;
            out.insert(rel, Entry::File(exec, std::fs::read(p).unwrap()));
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// `nix-store --restore DIR` of `nar`.
pub fn nix_restore(nar: &[u8], dir: &Path) {
    let mut child = Command::new("nix-store")
        .arg("--restore")
        .arg(dir)
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(nar).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nix-store --restore failed"
    );
}
