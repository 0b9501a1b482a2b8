//! Encode throughput of a real corpus NAR (`$NARFS_BENCH_NAR`, else the corpus's
//! largest) to a null sink, per chunker and hash, next to copying the NAR and to
//! hashing it once with the `sha2` crate (the floor of any sha2-256 encoding).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use narfs_benches::{corpus_nar, group_with_references};
use narfs_core::block::{HashAlg, NullSink};
use narfs_encoder::{encode, Layout, Profile};

fn encoding(c: &mut Criterion) {
    let (name, nar) = corpus_nar();
    let mut g = group_with_references(c, format!("encode {name}"), &nar);
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
