//! NAR parse throughput, next to plainly reading the same bytes (the reference).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use narfs_benches::synthetic_nar;
use narfs_core::nar::{Event, NarReader};
use std::io::Read;

fn parse(c: &mut Criterion) {
    let nar = synthetic_nar(64 << 20);
    let mut g = c.benchmark_group("nar_parse");
    g.throughput(Throughput::Bytes(nar.len() as u64));
    g.bench_function("reference: read the bytes", |b| {
        let mut buf = vec![0u8; 256 * 1024];
        b.iter(|| {
            let mut r = std::io::BufReader::with_capacity(256 * 1024, &nar[..]);
            let mut total = 0usize;
            loop {
                let n = r.read(&mut buf).unwrap();
                if n == 0 {
                    break;
                }
                total += n;
            }
            total
        })
    });
    g.bench_function("parse, reading all contents", |b| {
        let mut buf = vec![0u8; 256 * 1024];
        b.iter(|| {
            let mut r = NarReader::new(&nar[..]);
            let mut total = 0usize;
            while let Some(ev) = r.next().unwrap() {
                if let Event::File { mut contents, .. } = ev {
                    loop {
                        let n = contents.read(&mut buf).unwrap();
                        if n == 0 {
                            break;
                        }
                        total += n;
                    }
                }
            }
            total
        })
    });
    g.finish();
}

criterion_group!(benches, parse);
criterion_main!(benches);
