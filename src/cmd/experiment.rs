//! `narfs experiment`: runs the chunking strategies over a corpus of NARs and prints
//! the table; optionally writes every figure as JSON and the chart as SVG. The
//! engine is `narfs_experiment`; this shows its progress and writes its outputs.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use narfs_experiment::{Config, Progress};

use crate::cli::ExperimentArgs;
use crate::io::Output;

pub fn run(args: ExperimentArgs) -> Result<()> {
    let mut config = Config::new(args.corpus.unwrap_or_else(default_corpus));
    if !args.strategies.is_empty() {
        config.strategies = args.strategies;
    }
    let bar = progress_bar();
    let report = narfs_experiment::run_with_progress(&config, &mut |p| match p {
        Progress::Start { total_bytes } => bar.set_length(total_bytes),
        Progress::Strategy(s) => bar.set_message(s.to_string()),
        Progress::Baseline => bar.set_message("nar-zstd baseline"),
        Progress::Bytes(n) => bar.inc(n),
        _ => {}
    });
    bar.finish_and_clear();
    let report = report.with_context(|| format!("experiment on {}", config.corpus.display()))?;
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

/// A progress bar on a terminal's stderr; hidden otherwise.
fn progress_bar() -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}
