//! Shared inputs for the criterion benches: deterministic synthetic NARs shaped like
//! store items (many small files, a few large ones), real NARs and bytes from the
//! corpus, and the references (memory copy, one sha2-256 pass) measured beside them.

use std::hint::black_box;

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput};
use narfs_core::nar::NarWriter;
use sha2::{Digest, Sha256};

/// A NAR of about `total` bytes: a directory of files whose sizes follow a rough
/// store-item mix (mostly small, some large), filled with pseudo-random bytes.
pub fn synthetic_nar(total: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(total + total / 8);
    let mut w = NarWriter::new(&mut out);
    w.directory(b"").unwrap();
    let mut noise = narfs_core::noise::Noise::new(0);
    let mut written = 0usize;
    let mut i = 0u32;
    while written < total {
        let state = noise.next();
        let size = match state % 10 {
            0 => (state >> 8) as usize % (4 << 20),
            1..=3 => (state >> 8) as usize % (64 << 10),
            _ => (state >> 8) as usize % 4096,
        }
        .min(total - written);
        let data: Vec<u8> = (0..size)
            .map(|j| (state >> (j % 56)) as u8 ^ j as u8)
            .collect();
        let name = format!("f{i:08}");
        w.file(
            name.as_bytes(),
            i.is_multiple_of(7),
            size as u64,
            &mut &data[..],
        )
        .unwrap();
        written += size;
        i += 1;
    }
    w.end_directory().unwrap();
    w.finish().unwrap();
    out
}

/// The corpus the benches read: `$NARFS_BENCH_CORPUS`, else the bundled `corpus/`.
pub fn corpus_dir() -> std::path::PathBuf {
    match std::env::var_os("NARFS_BENCH_CORPUS") {
        Some(d) => d.into(),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../corpus"),
    }
}

/// The corpus NARs (as the experiment lists them), largest first.
fn corpus_nars() -> Vec<(u64, std::path::PathBuf)> {
    let dir = corpus_dir();
    let mut nars: Vec<(u64, std::path::PathBuf)> = narfs_experiment::corpus::list(&dir)
        .unwrap_or_else(|e| {
            let cause = std::error::Error::source(&e).map_or(String::new(), |c| format!(": {c}"));
            panic!("{e}{cause}")
        })
        .into_iter()
        .map(|item| (item.size, item.path))
        .collect();
    nars.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    nars
}

/// One real NAR: `$NARFS_BENCH_NAR` if set, else the corpus's largest. Returns the
/// file name (for bench ids) and the bytes.
pub fn corpus_nar() -> (String, Vec<u8>) {
    let path = match std::env::var_os("NARFS_BENCH_NAR") {
        Some(p) => std::path::PathBuf::from(p),
        None => corpus_nars().swap_remove(0).1,
    };
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    (name, bytes)
}

/// Up to `limit` bytes of real data: the corpus NARs, largest first, concatenated.
pub fn corpus_bytes(limit: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(limit);
    for (_, path) in corpus_nars() {
        if out.len() >= limit {
            break;
        }
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let take = bytes.len().min(limit - out.len());
        out.extend_from_slice(&bytes[..take]);
    }
    out
}

/// The reference every throughput is set against: copying the bytes once.
pub fn memcpy(src: &[u8], dst: &mut Vec<u8>) -> usize {
    dst.clear();
    dst.extend_from_slice(src);
    dst.len()
}

/// A group measuring throughput over `bytes`, 10 samples, that opens with the
/// references a NAR bench compares itself to in the same run: copying the bytes
/// (`memcpy`) and one sha2-256 pass over them (the floor of any sha2-256 encoding).
pub fn group_with_references<'c>(
    c: &'c mut Criterion,
    title: String,
    bytes: &[u8],
) -> BenchmarkGroup<'c, WallTime> {
    let mut g = c.benchmark_group(title);
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.sample_size(10);
    let mut dst = Vec::with_capacity(bytes.len());
    g.bench_function("reference: memcpy", |b| {
        b.iter(|| memcpy(black_box(bytes), &mut dst))
    });
    g.bench_function("reference: sha2 crate over the NAR", |b| {
        b.iter(|| Sha256::digest(black_box(bytes))[0])
    });
    g
}
