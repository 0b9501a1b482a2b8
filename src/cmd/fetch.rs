//! `narfs fetch --gateway URL ROOT…`: the DAG of each root fetched through a trustless
//! gateway into the store, only the blocks the store lacks, then decoded (the work is
//! in `narfs_ipfs::fetch`): to a NAR file, a tree, or only recorded in the store.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_core::{Cid, Encoding};
use narfs_decoder::Limits;
use narfs_ipfs::{FetchOptions, Fetched, Gateway, GatewayOptions, Progress};
use narfs_store::Store;

use crate::io::Output;

#[derive(clap::Args, Debug)]
pub struct FetchArgs {
    /// The trustless gateway, e.g. http://127.0.0.1:8080 (Kubo's `Addresses.Gateway`,
    /// or `narfs serve`).
    #[arg(long, value_name = "URL")]
    pub gateway: String,
    /// The blockstore the blocks go into and are reused from (default: $NARFS_STORE,
    /// else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// Write the NAR to this file (one root only); it appears only once complete.
    #[arg(short, long, conflicts_with = "to")]
    pub output: Option<PathBuf>,
    /// Restore the tree into this directory, which must not exist (one root only).
    #[arg(long)]
    pub to: Option<PathBuf>,
    /// Requests in flight.
    #[arg(long, default_value_t = 8)]
    pub jobs: usize,
    /// Ask for every block on its own (`?format=raw`), never a node's leaves as one CAR.
    #[arg(long)]
    pub per_block: bool,
    /// Store the fetched blocks compressed (as `narfs encode` does, in LZ4 packs by
    /// default: less disk, more CPU) rather than as they came.
    #[arg(long)]
    pub compress: bool,
    /// Tries per request before giving up (5xx, timeouts, connection errors).
    #[arg(long, default_value_t = 4)]
    pub attempts: u32,
    /// Seconds to wait for an answer, or for its next bytes.
    #[arg(long, default_value_t = 30)]
    pub timeout: u64,
    /// Compress the new files against this held root's files at the same paths
    /// (NAME or CID; repeatable: the first holding a path wins), when the gateway
    /// speaks narfs's delta transfer (`narfs serve`). Default: the held root of the
    /// same package (its name's part before the version) nearest below the new one.
    #[arg(long, value_name = "NAME|CID")]
    pub base: Vec<String>,
    /// Never use the delta transfer: the trustless gateway only.
    #[arg(long, conflicts_with = "base")]
    pub no_delta: bool,
    /// Record the root under this name (one root only; default: the gateway's name
    /// for it, if it gives one the store does not use yet).
    #[arg(long)]
    pub name: Option<String>,
    /// The roots are fallback encodings (zstd-compressed NAR in one file); implied for
    /// a root the store recorded as such.
    #[arg(long)]
    pub fallback: bool,
    /// Roots: CIDs (a narinfo's `IPFS-CID:`), or names (e.g. /nix/store/HASH-NAME)
    /// recorded in the local store.
    #[arg(value_name = "CID|NAME", required = true)]
    pub roots: Vec<String>,
}

pub fn run(args: FetchArgs) -> Result<()> {
    if (args.output.is_some() || args.to.is_some()) && args.roots.len() > 1 {
        bail!("-o and --to take one root; without them every root is fetched into the store");
    }
    let store = super::store::open(args.store.as_deref())?;
    let options = GatewayOptions {
        attempts: args.attempts,
        timeout: Duration::from_secs(args.timeout),
        ..GatewayOptions::default()
    };
    let gateway = Gateway::new(&args.gateway, options).context("cannot fetch")?;
    if args.name.is_some() && args.roots.len() > 1 {
        bail!("--name takes one root");
    }
    let mut bases = Vec::new();
    for b in &args.base {
        let Some(rec) = super::store::resolve(&store, b)? else {
            bail!(
                "--base {b:?}: no such root in the store {} (a base must be held)",
                store.dir().display()
            );
        };
        bases.push(rec.cid()?);
    }
    let fetch_options = FetchOptions {
        jobs: args.jobs,
        car_runs: !args.per_block,
        compress: args.compress,
        delta: !args.no_delta,
        bases,
        name: args.name.clone(),
        ..FetchOptions::default()
    };
    let mut stdout = Output::create(None)?;
    for name in &args.roots {
        let (root, encoding) = resolve(&store, name, args.fallback)?;
        let url = gateway.url().to_string();
        let context = || format!("cannot fetch {name} from {url}");
        let bar = &progress_bar();
        let (gateway, store, fetch_options) = (&gateway, &store, &fetch_options);
        let fetch = move |out: &mut (dyn Write + Send)| -> Result<Fetched> {
            let (mut report, limits) = (|p: &Progress| show(bar, p), Limits::default());
            let (_, fetched) = narfs_ipfs::fetch(
                gateway,
                store,
                &root,
                encoding,
                out,
                fetch_options,
                &limits,
                &mut report,
            )?;
            Ok(fetched)
        };
        let fetched = match (&args.output, &args.to) {
            (_, Some(dir)) => super::decode::to_dir(dir, fetch),
            (Some(path), None) => Output::create(Some(path)).and_then(|mut out| {
                let fetched = fetch(&mut out)?;
                out.commit().map(|()| fetched)
            }),
            (None, None) => fetch(&mut io::sink()),
        }
        .with_context(context)?;
        bar.finish_and_clear();
        eprintln!("narfs: {}", fetched.summary());
        if let Some(why) = &fetched.prefetched.delta.failure {
            eprintln!("narfs: the delta transfer stopped, the rest came block by block: {why}");
        }
        let r = &fetched.record;
        if args.output.is_none() && args.to.is_none() {
            writeln!(stdout, "{root} {} {}", r.nar_hash, r.nar_size)?;
        }
    }
    stdout.commit()
}

/// A root recorded in the store (by name or CID, its encoding with it), else a CID.
fn resolve(store: &Store, name: &str, fallback: bool) -> Result<(Cid, Encoding)> {
    let given = if fallback {
        Encoding::ZstdNar
    } else {
        Encoding::UnixFs
    };
    if let Some(rec) = super::store::resolve(store, name)? {
        return Ok((rec.cid()?, rec.encoding));
    }
    let cid = name.parse().map_err(|_| {
        anyhow::anyhow!(
            "{name:?} is not a CID, nor a name recorded in the store {}: give the root's \
             CID (a narinfo's IPFS-CID)",
            store.dir().display()
        )
    })?;
    Ok((cid, given))
}

/// A bar on a terminal only: bytes fetched and reused of the DAG's claimed size.
fn progress_bar() -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} fetching [{bar:30}] {bytes}/{total_bytes} {msg}, {binary_bytes_per_sec}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

fn show(bar: &ProgressBar, p: &Progress) {
    let done = p.fetched_bytes + p.reused_bytes;
    bar.set_length(p.total_bytes.max(done));
    bar.set_position(done);
    bar.set_message(format!(
        "({} fetched, {} reused)",
        indicatif::HumanBytes(p.fetched_bytes),
        indicatif::HumanBytes(p.reused_bytes)
    ));
}
