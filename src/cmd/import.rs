//! `narfs import CACHE`: a Nix file binary cache, a `guix publish --cache` directory,
//! or a binary cache over HTTP (`http://HOST[:PORT]/[PREFIX]`, given `--paths`) into
//! the store (`narfs_import::import_cache`), with a progress bar on a terminal and a summary
//! line or one JSON object at the end; with `--ipfs-api`, then every root of the
//! cache's store paths published into a Kubo node (`publish::after_import`).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_import::{import_cache, ImportOptions, Observer, Outcome};
use narfs_nix::{BinaryCache, FileCache, HttpCache, HttpOptions, StoreDir};
use serde_json::json;

use crate::io::Output;

#[derive(clap::Args, Debug)]
pub struct ImportArgs {
    /// The binary cache: a directory (or file://DIR), a Nix one (nix-cache-info,
    /// *.narinfo) or the --cache directory of `guix publish` (hashes/, lzip/, ...);
    /// or http://HOST[:PORT][/PREFIX], a cache over HTTP (narfs serve, guix publish,
    /// any Nix binary cache), which needs --paths.
    pub cache: String,
    /// Which kind of cache it is (auto: nix-cache-info means Nix, hashes/ Guix; over
    /// HTTP, nix-cache-info's StoreDir, else each narinfo's StorePath).
    #[arg(long, value_enum, default_value_t = Dialect::Auto)]
    pub dialect: Dialect,
    /// Import only these store paths (one a line: /nix/store/HASH-NAME, HASH-NAME or
    /// HASH; `-` reads standard input), and by default what they reference.
    #[arg(long, value_name = "FILE")]
    pub paths: Option<PathBuf>,
    /// With --paths: only the paths given, not their closure through References.
    #[arg(long)]
    pub no_closure: bool,
    /// Over HTTP: seconds to wait for an answer to start, or for its next bytes.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub timeout: f64,
    /// Over HTTP: tries per request (retried on no connection, a timeout, a 5xx).
    #[arg(long, value_name = "N", default_value_t = 4)]
    pub attempts: u32,
    /// The blockstore (default: $NARFS_STORE, else the platform data dir).
    #[arg(long)]
    pub store: Option<PathBuf>,
    /// How new blocks are stored: pack (default: LZ4 over 1 MiB packs of an item's new
    /// blocks; `narfs store repack` rewrites them at zstd -19), pack:lz4[:BYTES[:ACCELERATION]],
    /// pack:LEVEL[:BYTES] (zstd packs), block[:LEVEL] (zstd per block), none.
    #[arg(long, value_name = "MODE")]
    pub compression: Option<narfs_store::Compression>,
    #[command(flatten)]
    pub layout: crate::cli::LayoutArgs,
    /// NARs imported at once (default: the number of CPUs; over HTTP 4, so one NAR is
    /// fetched and decompressed while another is encoded).
    #[arg(long)]
    pub jobs: Option<usize>,
    /// Print one JSON object (counts, failures) instead of a summary line.
    #[arg(long)]
    pub json: bool,
    /// Print a line on standard error for each store path once its outcome is final:
    /// `imported ROOT NARINFO` once its record is durable (a crash after that loses
    /// nothing), `present ROOT NARINFO`, or the `skipping` line of a failure.
    #[arg(long)]
    pub each: bool,
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
    let http = args.cache.starts_with("http://");
    if !(args.timeout > 0.0 && args.timeout < 1e6) {
        bail!("--timeout must be a positive number of seconds");
    }
    let options = HttpOptions {
        attempts: args.attempts.max(1),
        timeout: Duration::from_secs_f64(args.timeout),
        ..HttpOptions::default()
    };
    let cache = open_cache(&args.cache, args.dialect, options, args.paths.is_some())?;
    let paths = match &args.paths {
        Some(file) => Some(read_paths(file)?),
        None => None,
    };
    let store = super::store::open_writing(args.store.as_deref(), args.compression)?;
    let cpus = || std::thread::available_parallelism().map_or(1, |n| n.get());
    let opts = ImportOptions {
        layout: args.layout.layout(),
        profile: args.layout.profile.name().to_string(),
        jobs: args.jobs.unwrap_or_else(|| if http { 4 } else { cpus() }),
        paths,
        closure: !args.no_closure,
    };
    let bar = Bar(progress(), args.each);
    let report = import_cache(cache.as_ref(), &store, &opts, &bar)?;
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

/// The progress bar, told of each store path; failures are printed above it, and
/// with `--each` (the `bool`) every outcome.
struct Bar(ProgressBar, bool);

impl Observer for Bar {
    fn start(&self, total: u64) {
        self.0.set_length(total);
    }

    fn found(&self, more: u64) {
        self.0.inc_length(more);
    }

    fn done(&self, narinfo: &Path, outcome: &Outcome) {
        match outcome {
            Outcome::Failed(why) => {
                let why = crate::one_line(why);
                self.0
                    .suspend(|| eprintln!("narfs: skipping {}: {why}", narinfo.display()));
            }
            Outcome::Imported { root, .. } if self.1 => {
                self.0
                    .suspend(|| eprintln!("imported {root} {}", narinfo.display()));
            }
            Outcome::Present { root } if self.1 => {
                self.0
                    .suspend(|| eprintln!("present {root} {}", narinfo.display()));
            }
            _ => {}
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

/// The hash parts of the store paths listed in `file` (one a line; blank lines and
/// `#` comments skipped), `-` for standard input.
/// Opens `cache`: `http://…` (which needs store paths given: `has_paths`), else a
/// directory (`file://DIR` or `DIR`), of the kind `dialect` says or detected.
pub(crate) fn open_cache(
    cache: &str,
    dialect: Dialect,
    options: HttpOptions,
    has_paths: bool,
) -> Result<Box<dyn BinaryCache>> {
    if cache.starts_with("https://") {
        bail!("{cache}: narfs reads caches over plain http:// only");
    }
    Ok(if cache.starts_with("http://") {
        let store_dir = match dialect {
            Dialect::Auto => None,
            Dialect::Nix => Some(StoreDir::Nix),
            Dialect::Guix => Some(StoreDir::Guix),
        };
        if !has_paths {
            bail!("{cache}: a cache over HTTP cannot be listed: give --paths FILE");
        }
        Box::new(HttpCache::open(cache, store_dir, options)?)
    } else {
        let dir = Path::new(cache.strip_prefix("file://").unwrap_or(cache));
        Box::new(match dialect {
            Dialect::Auto => FileCache::detect(dir)?,
            Dialect::Nix => FileCache::open(dir, StoreDir::Nix)?,
            Dialect::Guix => FileCache::open_guix_publish(dir)?,
        })
    })
}

/// The hash parts of the store paths in `file` (`-`: stdin), one a line.
pub(crate) fn read_paths(file: &Path) -> Result<Vec<String>> {
    let text = if file == Path::new("-") {
        io::read_to_string(io::stdin()).context("cannot read the store paths from stdin")?
    } else {
        std::fs::read_to_string(file)
            .with_context(|| format!("cannot read the store paths in {}", file.display()))?
    };
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match narfs_import::hash_of(line) {
            Some(h) => out.push(h.to_string()),
            None => bail!(
                "{}:{}: {line:?} is not a store path, HASH-NAME or HASH",
                file.display(),
                n + 1
            ),
        }
    }
    Ok(out)
}
