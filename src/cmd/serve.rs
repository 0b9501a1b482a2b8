//! `narfs serve`: the store, read-only, over HTTP (see the `narfs-serve` crate): the Nix
//! binary cache protocol for imported store paths and the IPFS trustless gateway for
//! every block. Prints `http://ADDR:PORT` on stdout once bound (so `--listen
//! 127.0.0.1:0` can be used and the port read back), then serves until killed.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};

#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Address and port to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:5000")]
    pub listen: SocketAddr,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
}

pub fn run(args: ServeArgs) -> Result<()> {
    let store = super::store::open(args.store.as_deref())?;
    let dir = store.dir().display().to_string();
    narfs_serve::run(args.listen, store, |addr| {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "http://{addr}");
        let _ = out.flush();
        eprintln!(
            "narfs: serving the store {dir} on http://{addr} (Nix binary cache and /ipfs/ gateway)"
        );
    })
    .with_context(|| format!("cannot serve on {}", args.listen))
}
