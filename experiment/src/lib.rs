//! The chunking experiment engine: which way of cutting NARs into blocks stores a
//! corpus smallest, and how fast.
//!
//! It owns the whole experiment: loading a corpus of NARs in order ([`corpus`]), the
//! strategies compared ([`Strategy`]: per-file chunking as narfs publishes, whole-NAR
//! chunking as casync does, and zstd per NAR as the baseline), running each over the
//! corpus into one shared block set with every NAR decoded back and checked, the
//! block set's disk footprint under each compression option a store could use
//! ([`Compression`]), what each version of a package costs a client holding the
//! earlier ones ([`Update`]), both against the seed's `zstd -19` of each NAR, and the
//! [`Report`] of the figures as text tables, a JSON document or an SVG chart. It is a
//! library so that the `narfs experiment` command, the benches and other tools run the
//! same measurement; it prints nothing ([`run_with_progress`] tells a caller how far
//! it got).
//!
//! The entry point is [`run`].

mod compress;
pub mod corpus;
mod delta;
mod error;
mod report;
mod runner;
mod seed;
pub mod source;
mod strategy;
mod svg;
mod svg_cost;
mod table;
mod update;

use std::path::PathBuf;

pub use compress::{Compression, Footprint, DICT_SIZE};
pub use corpus::Item;
pub use delta::MAX_REF;
pub use error::Difference;
pub use error::{Error, ParseStrategyError};
pub use report::{ItemResult, Recommendation, Report, StrategyResult, MIN_DECODE_MB_S};
pub use runner::ZSTD_LEVEL;
pub use seed::SEED_LEVEL;
pub use strategy::{default_sweep, Family, Strategy, DEFAULT_SWEEP};
pub use update::Update;

/// The pack size measured when none is given: 1 MiB, the most a block read
/// decompresses (about a millisecond).
pub const DEFAULT_PACK_SIZE: usize = 1 << 20;

/// What to run: a corpus directory and the strategies to measure on it.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Config {
    /// Directory of NARs, in the order of its `MANIFEST.tsv`, else by name.
    pub corpus: PathBuf,
    /// The strategies, in the report's order.
    pub strategies: Vec<Strategy>,
    /// The packs' size, in bytes.
    pub pack_size: usize,
    /// The `repack` option's zstd level (None: not measured).
    pub repack_level: Option<i32>,
    /// Where the `zstd -19` sizes are cached (None: computed every time).
    pub cache: Option<PathBuf>,
}

impl Config {
    /// The default sweep ([`DEFAULT_SWEEP`]) over the corpus in `corpus`, packs of
    /// [`DEFAULT_PACK_SIZE`], repacked at [`SEED_LEVEL`], no cache.
    pub fn new(corpus: impl Into<PathBuf>) -> Self {
        Config {
            corpus: corpus.into(),
            strategies: default_sweep(),
            pack_size: DEFAULT_PACK_SIZE,
            repack_level: Some(SEED_LEVEL),
            cache: None,
        }
    }
}

/// Where the seed's `zstd -19` sizes are cached by default: `$XDG_CACHE_HOME/narfs`,
/// else `~/.cache/narfs` (None when neither is set). The sizes take minutes to compute
/// on a large corpus and never change for a NAR, so every run may share them.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("narfs"))
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
    /// The seed's `zstd -19` of each NAR is measured (or read from the cache).
    Seed,
    /// Each update's changed files are compressed against the version before.
    Delta,
    /// The packs of this strategy are compressed again at the `repack` level.
    Repack(Strategy),
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
        total_bytes: raw_bytes * (config.strategies.len() as u64 + 3),
    });
    progress(Progress::Seed);
    let seed_bytes = seed::sizes(&items, config.cache.as_deref(), &mut |n| {
        progress(Progress::Bytes(n))
    })?;
    progress(Progress::Delta);
    let deltas = delta::file_deltas(&items, &mut |n| progress(Progress::Bytes(n)))?;
    let pack_size = config.pack_size.max(1);
    let mut results = Vec::with_capacity(config.strategies.len());
    // The block set that packs smallest so far, for the repack pass.
    let mut best: Option<(usize, u64, runner::Blocks)> = None;
    for &strategy in &config.strategies {
        progress(Progress::Strategy(strategy));
        let mut tick = |n: u64| progress(Progress::Bytes(n));
        let (result, blocks) = runner::run(strategy, &items, &deltas, pack_size, &mut tick)?;
        if let (Some(blocks), Some(c)) = (blocks, &result.compression) {
            if best.as_ref().is_none_or(|b| c.pack.bytes < b.1) {
                best = Some((results.len(), c.pack.bytes, blocks));
            }
        }
        results.push(result);
    }
    if let (Some(level), Some((i, _, blocks))) = (config.repack_level, best) {
        let r = &mut results[i];
        progress(Progress::Repack(r.strategy));
        let strategy = r.strategy;
        let decode =
            |source: &compress::Frames| runner::decode_all(strategy, source, &items, &blocks.roots);
        let repack = compress::packs(
            &blocks.store,
            &blocks.items,
            pack_size,
            compress::PackCodec::Zstd(level),
            &decode,
        )?;
        if let Some(c) = &mut r.compression {
            c.repack = Some(repack);
        }
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
        seed_bytes,
        results,
    })
}
