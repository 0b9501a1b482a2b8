//! `narfs serve`: the store, read-only, over HTTP (see the `narfs-serve` crate): the Nix
//! binary cache protocol for imported store paths and the IPFS trustless gateway for
//! every block. Prints `http://ADDR:PORT` on stdout once bound (so `--listen
//! 127.0.0.1:0` can be used and the port read back), then serves until killed.

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
    /// thread and about READAHEAD + 0.7 MiB.
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
    };
    let mut keys = narfs_serve::narinfo::Keys::default();
    for path in &args.sign_key {
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
    narfs_serve::run(args.listen, store, options, keys, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{addr}");
        let _ = out.flush();
        eprintln!(
            "narfs: serving the store {dir} on http://{addr} (Nix binary cache and /ipfs/ gateway)"
        );
    })
    .with_context(|| format!("cannot serve on {}", args.listen))
}
