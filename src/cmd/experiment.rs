//! `narfs experiment`: runs the chunking strategies and compression options over a
//! corpus of NARs and prints the tables; optionally writes every figure as JSON and
//! the chart as SVG. The corpus is a directory, or the NARs of a binary cache or of
//! local store paths, written into a temporary directory first
//! (`narfs_experiment::source`). The engine is `narfs_experiment`; this shows its
//! progress and writes its outputs. The seed's `zstd -19` sizes are cached under
//! `$XDG_CACHE_HOME/narfs` (else `~/.cache/narfs`).

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_experiment::{Config, Progress};

use crate::cli::ExperimentArgs;
use crate::io::Output;

pub fn run(args: ExperimentArgs) -> Result<()> {
    if args.pack_size == 0 || args.pack_size > 1 << 30 {
        bail!("--pack-size must be between 1 byte and 1 GiB");
    }
    // Holds a cache's or the store paths' NARs while the experiment reads them.
    let mut spool = None;
    let (corpus, label) = if let Some(cache) = &args.cache {
        let dir = spool_dir()?;
        let paths = match &args.paths {
            Some(file) => Some(super::import::read_paths(file)?),
            None => None,
        };
        let opened = super::import::open_cache(
            cache,
            super::import::Dialect::Auto,
            narfs_nix::HttpOptions::default(),
            paths.is_some(),
        )?;
        let bar = progress_bar(false);
        let n = narfs_experiment::source::from_cache(
            opened.as_ref(),
            paths.as_deref(),
            !args.no_closure,
            dir.path(),
            &mut |done, total, name| tick(&bar, done, total, name),
        );
        bar.finish_and_clear();
        n.with_context(|| format!("experiment on {cache}"))?;
        let path = dir.path().to_path_buf();
        spool = Some(dir);
        (path, cache.clone())
    } else if !args.nix_store.is_empty() {
        let dir = spool_dir()?;
        let bar = progress_bar(false);
        let n = narfs_experiment::source::from_paths(
            &args.nix_store,
            dir.path(),
            &mut |done, total, name| tick(&bar, done, total, name),
        );
        bar.finish_and_clear();
        n.context("experiment on store paths")?;
        let path = dir.path().to_path_buf();
        spool = Some(dir);
        (path, format!("{} store paths", args.nix_store.len()))
    } else {
        let dir = args.corpus.unwrap_or_else(default_corpus);
        let label = dir.display().to_string();
        (dir, label)
    };
    let mut config = Config::new(corpus);
    if !args.strategies.is_empty() {
        config.strategies = args.strategies;
    }
    config.pack_size = args.pack_size;
    config.repack_level = (args.repack_level > 0).then_some(args.repack_level);
    config.cache = narfs_experiment::default_cache_dir();
    let bar = progress_bar(true);
    let report = narfs_experiment::run_with_progress(&config, &mut |p| match p {
        Progress::Start { total_bytes } => bar.set_length(total_bytes),
        Progress::Strategy(s) => bar.set_message(s.to_string()),
        Progress::Baseline => bar.set_message("nar-zstd baseline"),
        Progress::Seed => bar.set_message(format!(
            "the seed: zstd -{} of each NAR (cached)",
            narfs_experiment::SEED_LEVEL
        )),
        Progress::Delta => bar.set_message("updates: changed files against the version before"),
        Progress::Repack(s) => bar.set_message(format!("repacking {s}")),
        Progress::Bytes(n) => bar.inc(n),
        _ => {}
    });
    bar.finish_and_clear();
    let mut report = report.with_context(|| format!("experiment on {label}"))?;
    if spool.is_some() {
        report.corpus = PathBuf::from(&label);
    }
    if let Some(path) = &args.json {
        let mut out = Output::create(Some(path))?;
        serde_json::to_writer_pretty(&mut out, &report.json())?;
        writeln!(out)?;
        out.commit()?;
    }
    if let Some(path) = &args.svg {
        let mut out = Output::create(Some(path))?;
        out.write_all(report.svg().as_bytes())?;
        out.commit()?;
    }
    let mut stdout = Output::create(None)?;
    stdout.write_all(report.table().as_bytes())?;
    stdout.commit()
}

/// A temporary directory for the NARs read from a cache or dumped from store paths.
fn spool_dir() -> Result<tempfile::TempDir> {
    tempfile::Builder::new()
        .prefix("narfs-experiment.")
        .tempdir()
        .context("cannot create a temporary directory for the NARs")
}

/// Where the seed's sizes are cached: `$XDG_CACHE_HOME/narfs`, else `~/.cache/narfs`.
fn tick(bar: &ProgressBar, done: usize, total: usize, name: &str) {
    bar.set_length(total as u64);
    bar.set_position(done as u64);
    bar.set_message(name.to_string());
}

/// The corpus used when none is named: `corpus/` in the working directory, else the
/// one in the source tree this binary was built from.
fn default_corpus() -> PathBuf {
    let here = PathBuf::from("corpus");
    if here.is_dir() {
        return here;
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    if built.is_dir() {
        built
    } else {
        here
    }
}

/// A progress bar on a terminal's stderr (in bytes, or in NARs); hidden otherwise.
fn progress_bar(bytes: bool) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let template = if bytes {
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} NARs {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style);
    }
    bar
}
