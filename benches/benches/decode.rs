//! Decode throughput of a real corpus NAR (`$NARFS_BENCH_NAR`, else the corpus's
//! largest) from an in-memory block store, every block verified, next to copying the
//! NAR and to hashing it once with the `sha2` crate (what verification must at least
//! cost).

use criterion::{criterion_group, criterion_main, Criterion};
use narfs_benches::{corpus_nar, group_with_references};
use narfs_core::block::{HashAlg, MemoryStore};
use narfs_decoder::{decode_nar, Limits};
use narfs_encoder::{encode, Layout, Profile};

fn decoding(c: &mut Criterion) {
    let (name, nar) = corpus_nar();
    let mut g = group_with_references(c, format!("decode {name}"), &nar);
    for (spec, hash) in [
        ("fixed:262144", HashAlg::Sha2_256),
        ("fastcdc:16384:65536:262144", HashAlg::Sha2_256),
        ("fastcdc:16384:65536:262144", HashAlg::Blake3),
    ] {
        let layout = Layout {
            chunker: spec.parse().unwrap(),
            hash,
            ..Profile::KuboV1.layout()
        };
        let mut store = MemoryStore::new();
        let root = encode(&nar[..], &layout, &mut store, None).unwrap().root;
        let mut out = Vec::with_capacity(nar.len());
        decode_nar(&store, &root, &mut out, &Limits::default()).unwrap();
        assert!(out == nar, "{spec} {hash}: the decoded NAR differs");
        g.bench_function(format!("{spec} {hash}"), |b| {
            b.iter(|| {
                out.clear();
                decode_nar(&store, &root, &mut out, &Limits::default())
                    .unwrap()
                    .len()
            })
        });
    }
    g.finish();
}

criterion_group!(benches, decoding);
criterion_main!(benches);
