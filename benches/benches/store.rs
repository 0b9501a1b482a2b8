//! Encoding into the blockstore vs into a `NullSink`, same NAR (the target:
//! the store at ≥ 80% of the null sink's throughput). Three cases: a fresh store each
//! time (every block written, synced, renamed), a store already holding the NAR (every
//! block deduplicated: the common case of a binary cache), and a fresh store without
//! zstd. Compare the groups' throughputs for the ratio. A fresh store's creation (its
//! shard directories) and the removal of the previous one are flushed before the
//! timer starts: the timed part is the encode and making its own blocks durable.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::synthetic_nar;
use narfs_core::block::NullSink;
use narfs_encoder::{encode, Layout};
use narfs_store::{Options, Store};

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

fn store_vs_null(c: &mut Criterion) {
    let nar = synthetic_nar(32 << 20);
    let mut g = c.benchmark_group("store");
    g.throughput(Throughput::Bytes(nar.len() as u64));
    g.sample_size(10);
    g.bench_function("encode into NullSink", |b| {
        b.iter(|| {
            let mut sink = NullSink::default();
            encode(&nar[..], &Layout::default(), &mut sink, None).unwrap()
        })
    });
    for (label, zstd) in [("fresh store, zstd", Some(1)), ("fresh store, raw", None)] {
        g.bench_function(format!("encode into a {label}"), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let dir = tempfile::tempdir().unwrap();
                    let options = Options {
                        zstd_level: zstd,
                        ..Options::default()
                    };
                    let store = Store::open_with(dir.path(), options).unwrap();
                    // Untimed: flush the store's creation and the previous iteration's
                    // removal, so the timed `syncfs` only writes this encode's blocks.
                    settle();
                    let t = Instant::now();
                    run(&store, &nar);
                    total += t.elapsed();
                    drop(dir);
                }
                settle();
                total
            })
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let warm = Store::open(dir.path()).unwrap();
    run(&warm, &nar);
    g.bench_function("encode into a store holding it", |b| {
        b.iter(|| run(&warm, &nar))
    });
    g.finish();
}

criterion_group!(benches, store_vs_null);
criterion_main!(benches);
