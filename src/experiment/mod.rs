//! The chunking experiment: every strategy over every NAR of a corpus, in corpus
//! order, with stored bytes, dedup ratios and throughput per strategy.
//!
//! [`corpus`] lists the NARs, [`strategy`] names the strategies, [`runner`] measures
//! one strategy, [`report`] holds the figures (table, JSON) and [`svg`] draws them.

pub mod corpus;
pub mod report;
pub mod runner;
pub mod strategy;
pub mod svg;

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};

pub use report::Report;
pub use strategy::Strategy;

/// Runs `strategies` over the corpus in `dir`.
pub fn run(dir: &Path, strategies: &[Strategy]) -> Result<Report> {
    let items = corpus::list(dir)?;
    let raw_bytes: u64 = items.iter().map(|i| i.size).sum();
    let bar = progress_bar(raw_bytes * (strategies.len() as u64 + 1));
    let mut results = Vec::with_capacity(strategies.len());
    for &strategy in strategies {
        bar.set_message(strategy.to_string());
        let mut tick = |n: u64| bar.inc(n);
        results.push(runner::run(strategy, &items, &mut tick)?);
    }
    // The baseline: from the nar-zstd run if there was one, else measured now.
    let baseline_bytes = match results.iter().find(|r| r.strategy == Strategy::NarZstd) {
        Some(r) => r.stored_bytes,
        None => {
            bar.set_message("nar-zstd baseline");
            let mut total = 0;
            let mut nar = Vec::new();
            for item in &items {
                runner::load(item, &mut nar)?;
                total += runner::zstd_size(&nar)?;
                bar.inc(item.size);
            }
            total
        }
    };
    bar.finish_and_clear();
    Ok(Report {
        corpus: dir.to_path_buf(),
        items,
        raw_bytes,
        baseline_bytes,
        results,
    })
}

/// The corpus used when none is named: `corpus/` in the working directory, else the
/// one in the source tree this binary was built from.
pub fn default_corpus() -> PathBuf {
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

fn progress_bar(total: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{spinner} [{elapsed_precise}] {bar:30} {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    ) {
        bar.set_style(style);
    }
    bar
}
