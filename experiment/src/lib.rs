//! The chunking experiment engine: which way of cutting NARs into blocks stores a
//! corpus smallest, and how fast.
//!
//! It owns the whole experiment: loading a corpus of NARs in order ([`corpus`]), the
//! strategies compared ([`Strategy`]: per-file chunking as narfs publishes, whole-NAR
//! chunking as casync does, and zstd per NAR as the baseline), running each over the
//! corpus into one shared block set with every NAR decoded back and checked, and the
//! [`Report`] of the figures as a text table, a JSON document or an SVG chart. It is a
//! library so that the `narfs experiment` command, the benches and other tools run the
//! same measurement; it prints nothing ([`run_with_progress`] tells a caller how far
//! it got).
//!
//! The entry point is [`run`].

pub mod corpus;
mod error;
mod report;
mod runner;
mod strategy;
mod svg;

use std::path::PathBuf;

pub use corpus::Item;
pub use error::Difference;
pub use error::{Error, ParseStrategyError};
pub use report::{ItemResult, Report, StrategyResult};
pub use runner::ZSTD_LEVEL;
pub use strategy::{default_sweep, Family, Strategy, DEFAULT_SWEEP};

/// What to run: a corpus directory and the strategies to measure on it.
#[derive(Clone, Debug)]
pub struct Config {
    /// Directory of NARs, in the order of its `MANIFEST.tsv`, else by name.
    pub corpus: PathBuf,
    /// The strategies, in the report's order.
    pub strategies: Vec<Strategy>,
}

impl Config {
    /// The default sweep ([`DEFAULT_SWEEP`]) over the corpus in `corpus`.
    pub fn new(corpus: impl Into<PathBuf>) -> Self {
        Config {
            corpus: corpus.into(),
            strategies: default_sweep(),
        }
    }
}

/// How far a run got, told to [`run_with_progress`]'s callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Progress {
    /// The run starts; about this many NAR bytes will go through it in all.
    Start { total_bytes: u64 },
    /// A strategy's pass over the corpus starts.
    Strategy(Strategy),
    /// The nar-zstd baseline is measured on its own (no nar-zstd strategy was run).
    Baseline,
    /// This many more NAR bytes are done.
    Bytes(u64),
}

/// Runs the strategies of `config` over its corpus.
///
/// ```
/// use narfs_core::nar::NarWriter;
/// use narfs_experiment::{run, Config};
///
/// let corpus = tempfile::tempdir()?;
/// for (name, text) in [("hello-1.nar", "hello"), ("hello-2.nar", "hello, world")] {
///     let mut w = NarWriter::new(Vec::new());
///     w.directory(b"")?;
///     w.file(b"greeting", false, text.len() as u64, &mut text.as_bytes())?;
///     w.end_directory()?;
///     std::fs::write(corpus.path().join(name), w.finish()?)?;
/// }
/// let mut config = Config::new(corpus.path());
/// config.strategies = vec!["file-fixed:262144".parse()?, "nar-zstd".parse()?];
/// let report = run(&config)?;
/// assert_eq!(report.items.len(), 2);
/// assert_eq!(report.results.len(), 2);
/// assert!(report.table().contains("file-fixed:262144"));
/// assert_eq!(report.json()["results"][1]["strategy"], "nar-zstd");
/// assert!(report.svg().starts_with("<svg"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn run(config: &Config) -> Result<Report, Error> {
    run_with_progress(config, &mut |_| {})
}

/// [`run`], telling `progress` how far it got.
pub fn run_with_progress(
    config: &Config,
    progress: &mut dyn FnMut(Progress),
) -> Result<Report, Error> {
    let items = corpus::list(&config.corpus)?;
    let raw_bytes: u64 = items.iter().map(|i| i.size).sum();
    progress(Progress::Start {
        total_bytes: raw_bytes * (config.strategies.len() as u64 + 1),
    });
    let mut results = Vec::with_capacity(config.strategies.len());
    for &strategy in &config.strategies {
        progress(Progress::Strategy(strategy));
        let mut tick = |n: u64| progress(Progress::Bytes(n));
        results.push(runner::run(strategy, &items, &mut tick)?);
    }
    // The baseline: from the nar-zstd run if there was one, else measured now.
    let baseline_bytes = match results.iter().find(|r| r.strategy == Strategy::NarZstd) {
        Some(r) => r.stored_bytes,
        None => {
            progress(Progress::Baseline);
            let mut total = 0;
            let mut nar = Vec::new();
            for item in &items {
                runner::load(item, &mut nar)?;
                total += runner::zstd_size(&nar)?;
                progress(Progress::Bytes(item.size));
            }
            total
        }
    };
    Ok(Report {
        corpus: config.corpus.clone(),
        items,
        raw_bytes,
        baseline_bytes,
        results,
    })
}
