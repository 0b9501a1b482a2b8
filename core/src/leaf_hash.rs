//! Leaf digests, many at a time. A leaf's sha2-256 is the one hash every byte of a
//! NAR goes through besides the NarHash stream, so it is computed for a whole batch
//! of chunks at once by `tape-sha256`'s multi-buffer kernels (several independent
//! messages interleaved in SIMD lanes or SHA-NI streams: ~2× one stream per core).
//!
//! Lanes run in lockstep, a lane idling once its message ends, so chunks are hashed
//! in order of length: each group of `lane_width()` then holds chunks of nearly equal
//! length (FastCDC's chunks vary; fixed chunks are equal anyway). Where the crate has
//! no hardware kernel its portable one is slower than `sha2`'s single stream, so then
//! the leaves go through `sha2` one by one ([`Backend::Serial`]).

use crate::block::HashAlg;

/// Which code hashes sha2-256 leaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `tape-sha256`'s multi-buffer kernel (SHA-NI streams, AVX2 or AVX-512 lanes).
    MultiBuffer,
    /// `sha2`, one leaf after another (SHA-NI when the CPU has it).
    Serial,
}

impl Backend {
    /// The best backend on this CPU.
    pub fn detect() -> Backend {
        // tape-sha256's runtime choice; "serial" and "portable*" are its software ones.
        let name = tape_sha256::backend();
        if name.starts_with("serial") || name.starts_with("portable") || name == "scalar" {
            Backend::Serial
        } else {
            Backend::MultiBuffer
        }
    }
}

/// Hashes leaves for the encoder, keeping its scratch between batches.
pub struct LeafHasher {
    alg: HashAlg,
    backend: Backend,
    order: Vec<u32>,
    digests: Vec<[u8; 32]>,
}

impl LeafHasher {
    pub fn new(alg: HashAlg) -> Self {
        Self::with_backend(alg, Backend::detect())
    }

    pub fn with_backend(alg: HashAlg, backend: Backend) -> Self {
        LeafHasher {
            alg,
            backend,
            order: Vec::new(),
            digests: Vec::new(),
        }
    }

    /// The digest of every chunk of `chunks`, in their order, into `out` (cleared
    /// first).
    pub fn hash_all(&mut self, chunks: &[&[u8]], out: &mut Vec<[u8; 32]>) {
        out.clear();
        match (self.alg, self.backend) {
            (HashAlg::Sha2_256, Backend::MultiBuffer) if chunks.len() > 1 => {
                self.multi(chunks, out)
            }
            (alg, _) => out.extend(chunks.iter().map(|c| alg.digest(c))),
        }
    }

    fn multi(&mut self, chunks: &[&[u8]], out: &mut Vec<[u8; 32]>) {
        self.order.clear();
        self.order.extend(0..chunks.len() as u32);
        self.order
            .sort_unstable_by_key(|&i| chunks[i as usize].len());
        // One small allocation per batch (a batch is megabytes of chunks).
        let sorted: Vec<&[u8]> = self.order.iter().map(|&i| chunks[i as usize]).collect();
        self.digests.clear();
        self.digests.resize(chunks.len(), [0; 32]);
        tape_sha256::hash_many(&sorted, &mut self.digests);
        out.resize(chunks.len(), [0; 32]);
        for (&i, d) in self.order.iter().zip(&self.digests) {
            out[i as usize] = *d;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use sha2::{Digest, Sha256};

    /// The reference: `sha2` itself, one message at a time.
    fn sha256(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn check(chunks: &[Vec<u8>]) {
        let slices: Vec<&[u8]> = chunks.iter().map(Vec::as_slice).collect();
        let want: Vec<[u8; 32]> = slices.iter().map(|c| sha256(c)).collect();
        for backend in [Backend::MultiBuffer, Backend::Serial] {
            let mut h = LeafHasher::with_backend(HashAlg::Sha2_256, backend);
            let mut got = Vec::new();
            h.hash_all(&slices, &mut got);
            assert_eq!(got, want, "{backend:?}");
            // The scratch is reused: a second batch gives the same answers.
            h.hash_all(&slices, &mut got);
            assert_eq!(got, want, "{backend:?}, again");
        }
    }

    #[test]
    fn every_length_around_block_boundaries() {
        // Lengths 0..=300 cover every padding case (55, 56, 63, 64, 119, 120, ...).
        let chunks: Vec<Vec<u8>> = (0..=300u32)
            .map(|n| (0..n).map(|i| (i * 7 + n) as u8).collect())
            .collect();
        check(&chunks);
    }

    #[test]
    fn blake3_leaves_are_blake3() {
        let chunks = [&b"a"[..], b"bc", b""];
        let mut h = LeafHasher::new(HashAlg::Blake3);
        let mut got = Vec::new();
        h.hash_all(&chunks, &mut got);
        let want: Vec<_> = chunks.iter().map(|c| HashAlg::Blake3.digest(c)).collect();
        assert_eq!(got, want);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_batch_equals_sha2(chunks in proptest::collection::vec(
            proptest::collection::vec(any::<u8>(), 0..5000), 0..70)) {
            check(&chunks);
        }
    }
}
