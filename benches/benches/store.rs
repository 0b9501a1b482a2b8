//! Encoding into the blockstore vs into a `NullSink`, same NAR (the target:
//! the store at ≥ 80% of the null sink's throughput). Cases: a fresh store each time
//! (every block written and committed durably), with zstd (the default) and raw; a
//! store already holding the NAR (every block deduplicated: the common case of a
//! binary cache); and, as the disk's reference measured in the same run, writing the
//! encoding's block bytes once to one file and `fsync`ing it (the least any durable
//! store of those bytes raw must do). Compare the groups' throughputs for the ratios.
//! Inputs: a synthetic 32 MiB NAR (compressible) and a real one (`$NARFS_BENCH_NAR`,
//! else the corpus's largest). A fresh store's creation and the removal of the
//! previous one are flushed before the timer starts.

use std::io::Write;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::{corpus_nar, synthetic_nar};
use narfs_core::block::{MemoryStore, NullSink};
use narfs_encoder::{encode, Layout};
use narfs_store::{Codec, Options, Store};

fn run(store: &Store, nar: &[u8]) {
    let mut sink = store.sink().unwrap();
    let e = encode(nar, &Layout::default(), &mut sink, None).unwrap();
    sink.finish(None).unwrap();
    std::hint::black_box(e);
}

/// `sync(1)`: writes out every dirty page of the machine (outside the timed region).
fn settle() {
    let _ = std::process::Command::new("sync").status();
}

fn group(c: &mut Criterion, label: &str, nar: &[u8]) {
    let mut g = c.benchmark_group(format!("store/{label}"));
    g.throughput(Throughput::Bytes(nar.len() as u64));
    g.sample_size(10);
    g.bench_function("encode into NullSink", |b| {
        b.iter(|| {
            let mut sink = NullSink::default();
            encode(nar, &Layout::default(), &mut sink, None).unwrap()
        })
    });
    for (case, zstd, codec) in [
        ("fresh store, LZ4 packs (the default)", Some(1), Codec::Lz4),
        ("fresh store, zstd -1 packs", Some(1), Codec::Zstd),
        ("fresh store, raw", None, Codec::Zstd),
    ] {
        g.bench_function(format!("encode into a {case}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let options = Options {
                        zstd_level: zstd,
                        pack_codec: codec,
                        ..Options::default()
                    };
                    let store = Store::open_with(dir.path(), options).unwrap();
                    settle();
                    let t = Instant::now();
                    run(&store, nar);
                    total += t.elapsed();
                    drop(store);
                    drop(dir);
                }
                settle();
                total
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let warm = Store::open(dir.path()).unwrap();
    run(&warm, nar);
    g.bench_function("encode into a store holding it", |b| {
        b.iter(|| run(&warm, nar))
    });
    // The disk's reference: the encoding's distinct blocks, raw, written and fsynced.
    let mut blocks = MemoryStore::new();
    encode(nar, &Layout::default(), &mut blocks, None).unwrap();
    g.bench_function("reference: write + fsync the block bytes", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let dir = tempfile::tempdir().unwrap();
                settle();
                let t = Instant::now();
                let mut f = std::fs::File::create(dir.path().join("blocks")).unwrap();
                for (_, data) in blocks.iter() {
                    f.write_all(data).unwrap();
                }
                f.sync_all().unwrap();
                total += t.elapsed();
            }
            settle();
            total
        })
    });
    g.finish();
}

fn store_vs_null(c: &mut Criterion) {
    group(c, "synthetic", &synthetic_nar(32 << 20));
    let (name, nar) = corpus_nar();
    group(c, &name, &nar);
}

criterion_group!(benches, store_vs_null);
criterion_main!(benches);
