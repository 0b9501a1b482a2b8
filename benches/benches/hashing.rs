//! Leaf hashing throughput: CIDs of 256 KiB and 64 KiB leaves under sha2-256 and
//! blake3, next to the `sha2` crate hashing the same bytes directly and to copying them;
//! and the batches a decoder verifies (FastCDC 4/16/64 KiB leaves of unequal lengths,
//! 8 and 64 at a time; 256 KiB leaves 4, 7 and 16 at a time, and 16 with a short last
//! one) through `LeafHasher`'s multi-buffer kernels against `sha2` one leaf after
//! another.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::{corpus_bytes, memcpy};
use narfs_core::block::{cid_for, HashAlg, RAW};
use narfs_core::leaf_hash::{Backend, LeafHasher};
use sha2::{Digest, Sha256};

fn hashing(c: &mut Criterion) {
    let data = corpus_bytes(16 << 20);
    let mut g = c.benchmark_group("leaf_hashing");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    let mut dst = Vec::with_capacity(data.len());
    g.bench_function("reference: memcpy", |b| {
        b.iter(|| memcpy(black_box(&data), &mut dst))
    });
    for leaf in [262_144usize, 65_536] {
        g.bench_function(format!("reference: sha2 crate, {leaf} B leaves"), |b| {
            b.iter(|| {
                data.chunks(leaf)
                    .map(|ch| Sha256::digest(black_box(ch))[0])
                    .fold(0u8, |a, x| a ^ x)
            })
        });
        for alg in [HashAlg::Sha2_256, HashAlg::Blake3] {
            g.bench_function(format!("cid {alg}, {leaf} B leaves"), |b| {
                b.iter(|| {
                    data.chunks(leaf)
                        .map(|ch| cid_for(RAW, alg, black_box(ch)).hash().digest()[0])
                        .fold(0u8, |a, x| a ^ x)
                })
            });
        }
    }
    // Unequal lengths: the cut points FastCDC finds in the corpus.
    let chunks: Vec<&[u8]> = fastcdc::v2020::FastCDC::new(&data, 4096, 16384, 65536)
        .map(|c| &data[c.offset..c.offset + c.length])
        .collect();
    g.bench_function("reference: sha2 crate, FastCDC 4/16/64 leaves", |b| {
        b.iter(|| {
            chunks
                .iter()
                .map(|ch| Sha256::digest(black_box(ch))[0])
                .fold(0u8, |a, x| a ^ x)
        })
    });
    for batch in [8usize, 64] {
        let mut h = LeafHasher::with_backend(HashAlg::Sha2_256, Backend::MultiBuffer);
        let mut out = Vec::new();
        g.bench_function(
            format!("multi-buffer, FastCDC 4/16/64 leaves, {batch} a batch"),
            |b| {
                b.iter(|| {
                    for run in chunks.chunks(batch) {
                        h.hash_all(black_box(run), &mut out);
                    }
                })
            },
        );
    }
    // Equal 256 KiB leaves: a decoder's first run goes in parts of 4 (the 4 SHA-NI
    // streams), its later parts of 16 (the AVX-512 kernel's 16 lanes); 15 and a
    // file's short last leaf must stay in the wide kernel too.
    let leaves: Vec<&[u8]> = data.chunks(262_144).collect();
    for batch in [4usize, 7, 16] {
        let mut h = LeafHasher::with_backend(HashAlg::Sha2_256, Backend::MultiBuffer);
        let mut out = Vec::new();
        g.bench_function(
            format!("multi-buffer, 256 KiB leaves, {batch} a batch"),
            |b| {
                b.iter(|| {
                    for run in leaves.chunks(batch) {
                        h.hash_all(black_box(run), &mut out);
                    }
                })
            },
        );
    }
    let short: Vec<Vec<&[u8]>> = leaves
        .chunks(16)
        .map(|run| {
            let mut run = run.to_vec();
            let last = run.len() - 1;
            run[last] = &run[last][..1000];
            run
        })
        .collect();
    let mut h = LeafHasher::with_backend(HashAlg::Sha2_256, Backend::MultiBuffer);
    let mut out = Vec::new();
    g.bench_function(
        "multi-buffer, 256 KiB leaves, 15 and a short one a batch",
        |b| {
            b.iter(|| {
                for run in &short {
                    h.hash_all(black_box(run), &mut out);
                }
            })
        },
    );
    g.finish();
}

criterion_group!(benches, hashing);
criterion_main!(benches);
