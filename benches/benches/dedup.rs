//! Dedup and compression on the bundled corpus (`$NARFS_BENCH_CORPUS`, else
//! `corpus/`): the same measurement as `narfs experiment`, one strategy at a time.
//!
//! Criterion times one whole experiment run per strategy (encode of every NAR into a
//! shared block set, decode back and check, the compression options at rest, the
//! update costs), its throughput in NAR bytes; before timing, the figures a cache
//! operator reads — disk under each compression option and the update cost, both as a
//! fraction of the seed's `zstd -19` of each NAR — are printed once (the experiment's
//! table, its recommendation included) from a run of the four strategies, so a bench
//! run says what each strategy gains as well as what it costs. The reference measured in the same run is
//! the `nar-zstd` baseline (zstd -3 of each NAR), timed the same way.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::corpus_dir;
use narfs_experiment::{default_cache_dir, run, Config, Strategy};

/// The strategies timed: Kubo's chunking, the experiment's recommended FastCDC sizes,
/// casync-style whole-NAR chunking, and the baseline.
const STRATEGIES: [&str; 4] = [
    "file-fixed:262144",
    "file-fastcdc:4096:16384:65536",
    "nar-fastcdc:16384:65536:262144",
    "nar-zstd",
];

fn config(strategies: Vec<Strategy>) -> Config {
    let mut config = Config::new(corpus_dir());
    config.strategies = strategies;
    config.cache = default_cache_dir();
    config
}

fn dedup(c: &mut Criterion) {
    let strategies: Vec<Strategy> = STRATEGIES
        .iter()
        .map(|s| s.parse().expect("a strategy of the experiment"))
        .collect();
    // The figures, once: the full report of the four strategies (repack included).
    let report = run(&config(strategies.clone())).expect("the experiment runs on the corpus");
    eprintln!("{}", report.table());
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Bytes(report.raw_bytes));
    g.sample_size(10);
    for strategy in strategies {
        let mut one = config(vec![strategy]);
        // The repack at zstd -19 is what a background job does, not the write path.
        one.repack_level = None;
        g.bench_function(strategy.to_string(), |b| {
            b.iter(|| black_box(run(&one).expect("the experiment runs")))
        });
    }
    g.finish();
}

criterion_group!(benches, dedup);
criterion_main!(benches);
