//! Chunking throughput (fixed and FastCDC 2020, as the encoder runs them: through
//! `Chunker::chunk` over a reader), next to copying the same bytes (the reference).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::{corpus_bytes, memcpy};
use narfs_encoder::chunker::{ChunkBuffer, Chunker};

fn chunking(c: &mut Criterion) {
    let data = corpus_bytes(16 << 20);
    let mut g = c.benchmark_group("chunking");
    g.throughput(Throughput::Bytes(data.len() as u64));
    g.sample_size(20);
    let mut dst = Vec::with_capacity(data.len());
    g.bench_function("reference: memcpy", |b| {
        b.iter(|| memcpy(black_box(&data), &mut dst))
    });
    for spec in [
        "fixed:262144",
        "fixed:65536",
        "fastcdc:4096:16384:65536",
        "fastcdc:16384:65536:262144",
        "fastcdc:65536:262144:1048576",
    ] {
        let chunker: Chunker = spec.parse().unwrap();
        let mut buf = ChunkBuffer::default();
        g.bench_function(spec, |b| {
            b.iter(|| {
                let mut n = 0usize;
                chunker
                    .chunk::<_, ()>(black_box(&data[..]), &mut buf, |ch| {
                        n += 1;
                        black_box(ch);
                        Ok(())
                    })
                    .unwrap_or_else(|_| panic!("chunking memory cannot fail"));
                n
            })
        });
    }
    g.finish();
}

criterion_group!(benches, chunking);
criterion_main!(benches);
