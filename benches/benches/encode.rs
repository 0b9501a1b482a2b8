//! Encode throughput of a real corpus NAR (`$NARFS_BENCH_NAR`, else the corpus's
//! largest) to a null sink, per chunker and hash, next to copying the NAR and to
//! hashing it once with the `sha2` crate (the floor of any sha2-256 encoding).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::{corpus_nar, memcpy};
use narfs_core::block::{HashAlg, NullSink};
use narfs_encoder::{encode, Layout, Profile};
use sha2::{Digest, Sha256};

fn encoding(c: &mut Criterion) {
    let (name, nar) = corpus_nar();
    let mut g = c.benchmark_group(format!("encode {name}"));
    g.throughput(Throughput::Bytes(nar.len() as u64));
    g.sample_size(10);
    let mut dst = Vec::with_capacity(nar.len());
    g.bench_function("reference: memcpy", |b| {
        b.iter(|| memcpy(black_box(&nar), &mut dst))
    });
    g.bench_function("reference: sha2 crate over the NAR", |b| {
        b.iter(|| Sha256::digest(black_box(&nar[..]))[0])
    });
    for (spec, hash) in [
        ("fixed:262144", HashAlg::Sha2_256),
        ("fastcdc:16384:65536:262144", HashAlg::Sha2_256),
        ("fastcdc:4096:16384:65536", HashAlg::Sha2_256),
        ("fastcdc:16384:65536:262144", HashAlg::Blake3),
    ] {
        let layout = Layout {
            chunker: spec.parse().unwrap(),
            hash,
            ..Profile::KuboV1.layout()
        };
        g.bench_function(format!("{spec} {hash}"), |b| {
            b.iter(|| {
                let mut sink = NullSink::default();
                encode(black_box(&nar[..]), &layout, &mut sink, None)
                    .unwrap()
                    .root
            })
        });
    }
    g.finish();
}

criterion_group!(benches, encoding);
criterion_main!(benches);
