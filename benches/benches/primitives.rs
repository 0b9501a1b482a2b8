//! The ceilings narfs is measured against, in one run on the machine at hand: one
//! SHA-256 stream (`sha2`, SHA-NI where present: Nix's NarHash is one such stream),
//! multi-buffer SHA-256 of 256 KiB and 64 KiB leaves (what the encoder's leaf hashing
//! uses), FastCDC 16/64/256 KiB cut finding, and memcpy. Each is the best of a few
//! passes over the same bytes in memory, on one thread.
//!
//! Usage: `cargo bench -p narfs-benches --bench primitives [-- FILE]`; FILE's first
//! 256 MiB (default: pseudo-random bytes) are the input. Prints one line per primitive
//! (`name GB/s`), which benches/speed.sh reads.

use std::hint::black_box;
use std::time::Instant;

use fastcdc::v2020::FastCDC;
use narfs_core::block::HashAlg;
use narfs_core::leaf_hash::{Backend, LeafHasher};
use sha2::{Digest, Sha256};

const INPUT: usize = 256 << 20;
const PASSES: usize = 3;

/// Best throughput (GB/s) of `f` over `len` bytes.
fn best(len: usize, mut f: impl FnMut()) -> f64 {
    (0..PASSES)
        .map(|_| {
            let t = Instant::now();
            f();
            len as f64 / t.elapsed().as_secs_f64() / 1e9
        })
        .fold(0.0, f64::max)
}

fn input() -> Vec<u8> {
    let file = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    if let Some(path) = file {
        let mut bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        bytes.truncate(INPUT);
        return bytes;
    }
    narfs_core::noise::bytes(0, INPUT)
}

fn main() {
    let data = input();
    let len = data.len();
    let one = best(len, || {
        black_box(Sha256::digest(&data));
    });
    println!("sha256-stream {one:.3}");
    for leaf in [262_144usize, 65_536] {
        let chunks: Vec<&[u8]> = data.chunks(leaf).collect();
        let mut h = LeafHasher::with_backend(HashAlg::Sha2_256, Backend::MultiBuffer);
        let mut out = Vec::new();
        let mb = best(len, || h.hash_all(black_box(&chunks), &mut out));
        println!("sha256-multibuffer-{}k {mb:.3}", leaf >> 10);
    }
    let cdc = best(len, || {
        let n = FastCDC::new(&data, 16384, 65536, 262_144).count();
        black_box(n);
    });
    println!("fastcdc-16-64-256 {cdc:.3}");
    let mut dst = vec![0u8; len];
    let copy = best(len, || {
        dst.copy_from_slice(black_box(&data));
        black_box(&dst);
    });
    println!("memcpy {copy:.3}");
    println!("backend {}", tape_sha256_backend());
}

fn tape_sha256_backend() -> String {
    format!("{:?}", Backend::detect())
}
