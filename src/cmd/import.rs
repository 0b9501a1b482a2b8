//! `narfs import CACHE`: a Nix file binary cache or a `guix publish --cache` directory
//! into the store
//! (`narfs_import::import_cache`), with a progress bar on a terminal and a summary
//! line or one JSON object at the end; with `--ipfs-api`, then every root of the
//! cache's store paths published into a Kubo node (`publish::after_import`).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_import::{import_cache, ImportOptions, Observer, Outcome};
use narfs_nix::{FileCache, StoreDir};
use serde_json::json;

use crate::io::Output;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The binary cache directory: a Nix one (nix-cache-info, *.narinfo) or the
    /// --cache directory of `guix publish` (hashes/, lzip/, zstd/, ...).
    pub cache: PathBuf,
    /// Which kind of cache it is (auto: nix-cache-info means Nix, hashes/ Guix).
    #[arg(long, value_enum, default_value_t = Dialect::Auto)]
    pub dialect: Dialect,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    #[command(flatten)]
    pub layout: crate::cli::LayoutArgs,
    /// NARs imported at once (default: the number of CPUs).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON object (counts, failures) instead of a summary line.
    #[arg(long)]
    pub json: bool,
    /// Then publish every root of the cache's store paths (imported now or already
    /// present) into this IPFS node's RPC API, as `narfs publish` does. The import is
    /// recorded first: if publishing fails, the roots stay in the store.
    #[arg(long, value_name = "URL")]
    pub ipfs_api: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Dialect {
    Auto,
    Nix,
    Guix,
}

pub fn run(args: ImportArgs) -> Result<()> {
    let cache = match args.dialect {
        Dialect::Auto => FileCache::detect(&args.cache)?,
        Dialect::Nix => FileCache::open(&args.cache, StoreDir::Nix)?,
        Dialect::Guix => FileCache::open_guix_publish(&args.cache)?,
    };
    let store = super::store::open(args.store.as_deref())?;
    let opts = ImportOptions {
        layout: args.layout.layout(),
        profile: args.layout.profile.name().to_string(),
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    };
    let bar = Bar(progress());
    let report = import_cache(&cache, &store, &opts, &bar)?;
    bar.0.finish_and_clear();
    let failed: Vec<(String, String)> = report
        .failed
        .iter()
        .map(|f| (f.narinfo.display().to_string(), crate::one_line(&f.error)))
        .collect();
    let mut out = Output::create(None)?;
    if args.json {
        let f: Vec<_> = failed
            .iter()
            .map(|(p, why)| json!({"narinfo": p, "error": why}))
            .collect();
        let v = json!({"imported": report.imported, "already_present": report.already_present,
                       "failed": f, "nar_bytes": report.nar_bytes, "new_bytes": report.new_bytes});
        writeln!(out, "{v}")?;
    } else {
        writeln!(
            out,
            "imported {} store paths ({} NAR bytes, {} new block bytes), {} already present, {} failed",
            report.imported, report.nar_bytes, report.new_bytes, report.already_present, failed.len()
        )?;
    }
    out.commit()?;
    if let Some(api) = &args.ipfs_api {
        super::publish::after_import(api, &store, &report.roots)?;
    }
    if !failed.is_empty() {
        bail!(
            "{} store path(s) could not be imported (see above)",
            failed.len()
        );
    }
    Ok(())
}

/// The progress bar, told of each store path; failures are printed above it.
struct Bar(ProgressBar);

impl Observer for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }

    fn done(&self, narinfo: &Path, outcome: &Outcome) {
        if let Outcome::Failed(why) = outcome {
            let why = crate::one_line(why);
            self.0
                .suspend(|| eprintln!("narfs: skipping {}: {why}", narinfo.display()));
        }
        self.0.inc(1);
    }
}

fn progress() -> ProgressBar {
    if !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} importing [{bar:40}] {pos}/{len} store paths, {elapsed} elapsed, ETA {eta}",
    ) {
        pb.set_style(style.progress_chars("=> "));
    }
    pb
}
