//! `narfs serve`: the store, read-only, over HTTP (see the `narfs-serve` crate): the Nix
//! binary cache protocol for imported store paths and the IPFS trustless gateway for
//! every block. Prints `http://ADDR:PORT` on stdout once bound (so `--listen
//! 127.0.0.1:0` can be used and the port read back), then serves until killed.
//! With `--upstream` and `--gateway` it is the substituter proxy instead
//! (`narfs_serve::proxy`): narinfos from the upstream, NARs from IPFS.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Streaming responses (NARs, CARs, blocks) served at once; each holds a decoder
    /// thread and about READAHEAD + 0.9 MiB (+ 2 MiB when compressed).
    #[arg(long, default_value_t = 64, value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub max_streams: u32,
    /// Seconds a request over --max-streams waits for a slot before a 503.
    #[arg(long, default_value_t = 10)]
    pub queue_wait: u64,
    /// Seconds a response may wait for the client to read before it is cut.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub send_timeout: u64,
    /// Bytes of file leaves each NAR stream fetches ahead of the client.
    #[arg(long, default_value_t = 512 << 10)]
    pub readahead: u64,
    /// One line per request on stderr: `narfs: access: METHOD PATH STATUS`.
    #[arg(long)]
    pub access_log: bool,
    /// How narinfos offer NARs: none (`nar/<cid>.nar`), zstd (`.nar.zst`, compressed
    /// on the fly at zstd level 2, fast enough for a 1 Gbit/s link on one core), xz
    /// (`.nar.xz`, preset 0, far slower; Nix only, Guix items stay uncompressed).
    /// Whatever this says, a client sending `Accept-Encoding: zstd` gets plain NARs
    /// and CARs with `Content-Encoding: zstd`.
    #[arg(long, value_name = "none|zstd|xz", default_value = "none")]
    pub nar_compression: narfs_serve::encoding::NarCompression,
    /// Be a substituter proxy for Nix and Guix clients: narinfos come from this binary
    /// cache (whose narinfos carry IPFS-CID and IPFS-Encoding, e.g. a publisher's
    /// `narfs serve`), NARs through --gateway.
    #[arg(long, value_name = "URL", requires = "gateway")]
    pub upstream: Option<String>,
    /// The IPFS trustless gateway the proxy fetches missing blocks through (e.g. the
    /// local Kubo's http://127.0.0.1:8080); fetched blocks stay in --store.
    #[arg(long, value_name = "URL", requires = "upstream")]
    pub gateway: Option<String>,
    /// Proxy: gateway requests in flight per NAR.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub fetch_jobs: u32,
    /// Proxy: seconds an upstream narinfo request may take, and the gateway's wait
    /// for an answer or its next bytes.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub fetch_timeout: u64,
    /// Proxy: tries per gateway request (5xx, timeouts, connection errors).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub fetch_attempts: u32,
    /// Sign narinfos with this secret key: a Nix key (`nix-store
    /// --generate-binary-cache-key`) adds a `Sig:` to every /nix/store narinfo; a Guix
    /// key (`guix archive --generate-key`'s signing-key.sec) signs the /gnu/store
    /// narinfos that carry no `Signature:` of their own. Once per dialect.
    #[arg(long, value_name = "FILE")]
    pub sign_key: Vec<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let store = super::store::open(args.store.as_deref())?;
    let dir = store.dir().display().to_string();
    let options = narfs_serve::Options {
        max_streams: args.max_streams as usize,
        queue_wait: Duration::from_secs(args.queue_wait),
        send_timeout: Duration::from_secs(args.send_timeout),
        readahead: args.readahead,
        access_log: args.access_log,
        nar_compression: args.nar_compression,
    };
    let proxy = match (&args.upstream, &args.gateway) {
        (Some(upstream), Some(gateway)) => Some(
            narfs_serve::proxy::Proxy::new(&narfs_serve::proxy::ProxyOptions {
                upstream: upstream.clone(),
                gateway: gateway.clone(),
                timeout: Duration::from_secs(args.fetch_timeout),
                jobs: args.fetch_jobs as usize,
                attempts: args.fetch_attempts,
            })
            .context("cannot serve as a proxy")?,
        ),
        _ => None,
    };
    let what = match (&args.upstream, &args.gateway) {
        (Some(u), Some(g)) => format!("substituter proxy: narinfos from {u}, blocks via {g}"),
        _ => "Nix binary cache and /ipfs/ gateway".into(),
    };
    let keys = signing_keys(&args.sign_key)?;
    narfs_serve::run(args.listen, store, options, keys, proxy, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{addr}");
        let _ = out.flush();
        eprintln!("narfs: serving the store {dir} on http://{addr} ({what})");
    })
    .with_context(|| format!("cannot serve on {}", args.listen))
}

/// The `--sign-key` files, at most one key per dialect.
fn signing_keys(paths: &[PathBuf]) -> Result<narfs_serve::narinfo::Keys> {
    let mut keys = narfs_serve::narinfo::Keys::default();
    for path in paths {
        let text =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let key = narfs_nix::signing::SecretKey::parse(&text)
            .with_context(|| format!("cannot use {} as a signing key", path.display()))?;
        match &key {
            narfs_nix::signing::SecretKey::Nix(k) => {
                eprintln!("narfs: signing /nix/store narinfos as {}", k.public())
            }
            narfs_nix::signing::SecretKey::Guix(k) => eprintln!(
                "narfs: signing unsigned /gnu/store narinfos as {}",
                k.public()
                    .to_sexp()
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            ),
        }
        anyhow::ensure!(
            keys.add(key),
            "{}: a second key of the same dialect (one Nix and one Guix key at most)",
            path.display()
        );
    }
    Ok(keys)
}
