//! Leaf digests, many at a time. A leaf's sha2-256 is the one hash every byte of a
//! NAR goes through besides the NarHash stream, so it is computed for a whole batch
//! of chunks at once by `tape-sha256`'s multi-buffer kernels (several independent
//! messages interleaved in SIMD lanes or SHA-NI streams: ~2× one stream per core).
//!
//! Lanes run in lockstep, a lane idling once its message ends, so chunks are hashed
//! in order of length: each group of `lane_width()` then holds chunks of nearly equal
//! length (FastCDC's chunks vary; fixed chunks are equal anyway). Where the crate has
//! no hardware kernel its portable one is slower than `sha2`'s single stream, so then
//! the leaves go through `sha2` one by one ([`Backend::Serial`]). Chunks of unequal
//! lengths (small files) go to 4 SHA-NI streams rather than 16 AVX-512 lanes
//! ([`lanes`]): in a batch of 64 small files the wide kernel's groups cost their
//! longest file in every lane.

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
        let is_wide = lanes(&sorted, tape_sha256::lane_width());
        let pick = |want: bool| -> Vec<&[u8]> {
            sorted
                .iter()
                .zip(&is_wide)
                .filter(|(_, &w)| w == want)
                .map(|(c, _)| *c)
                .collect()
        };
        let (wide, narrow) = (pick(true), pick(false));
        let mut wide_digests = vec![[0; 32]; wide.len()];
        tape_sha256::hash_many(&wide, &mut wide_digests);
        let mut narrow_digests = vec![[0; 32]; narrow.len()];
        narrow_kernel(&narrow, &mut narrow_digests);
        // Both lists keep the sorted order; merge the digests back into it.
        let (mut w, mut n) = (wide_digests.into_iter(), narrow_digests.into_iter());
        self.digests.clear();
        self.digests.extend(is_wide.iter().map(|&wide| {
            let d = if wide { w.next() } else { n.next() };
            d.expect("one digest per chunk")
        }));
        out.resize(chunks.len(), [0; 32]);
        for (&i, d) in self.order.iter().zip(&self.digests) {
            out[i as usize] = *d;
        }
    }
}

/// Which chunks (sorted by length) are hashed `width` at a time in lockstep
/// (windows of `width` whose lengths add up to at least 3/4 of `width` times their
/// longest: the lanes stay busy) and the rest. A wide kernel (16 AVX-512 lanes)
/// costs a whole group of its longest message; small files of every length would
/// leave most lanes idle, so they go to [`narrow_kernel`]'s 4 streams, whose sorted
/// groups of 4 waste little. The lanes' total, not their shortest, decides: a
/// decoder's part of 16 leaves holding a file's short last leaf idles one lane of
/// 16 (15/16 of 2.75 GB/s a core is still far above the 4 streams' 1.73).
fn lanes(sorted: &[&[u8]], width: usize) -> Vec<bool> {
    if width <= NARROW {
        // No wider kernel than the narrow one's streams: all go there.
        return vec![false; sorted.len()];
    }
    let mut wide = vec![false; sorted.len()];
    let busy = |window: &[&[u8]]| {
        let total: usize = window.iter().map(|c| c.len()).sum();
        let longest = window.last().map_or(0, |c| c.len());
        4 * total >= 3 * width * longest
    };
    // From the longest down: the long messages are most of the work, and a file's
    // short last chunks then stay out of the windows of full ones.
    let mut end = sorted.len();
    while end >= width {
        let start = end - width;
        if busy(&sorted[start..end]) {
            wide[start..end].fill(true);
            end = start;
        } else {
            end -= 1;
        }
    }
    wide
}

/// Lanes of the narrow kernel: SHA-NI's 4 interleaved streams.
const NARROW: usize = 4;

/// Hashes chunks of unequal lengths: 4 SHA-NI streams refilled as each message ends
/// ([`crate::sha_streams`]) where the CPU has SHA-NI, else `tape-sha256`'s choice.
fn narrow_kernel(chunks: &[&[u8]], out: &mut [[u8; 32]]) {
    #[cfg(target_arch = "x86_64")]
    if crate::sha_streams::hash_all(chunks, out) {
        return;
    }
    tape_sha256::hash_many(chunks, out);
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
    fn equal_runs_go_wide_and_the_rest_narrow() {
        // 8 lanes: a window of nearly equal lengths is wide, a spread one narrow.
        let lens = [
            1usize, 5, 9, 100, 100, 100, 100, 100, 100, 100, 100, 200, 300, 400,
        ];
        let bufs: Vec<Vec<u8>> = lens.iter().map(|&n| vec![7; n]).collect();
        let sorted: Vec<&[u8]> = bufs.iter().map(Vec::as_slice).collect();
        let wide = lanes(&sorted, 8);
        let len = |w: bool| {
            let of = sorted.iter().zip(&wide).filter(|(_, &x)| x == w);
            of.map(|(c, _)| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(len(true), [100, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!(len(false), [1, 5, 9, 200, 300, 400]);
        assert!(lanes(&sorted, 4).iter().all(|&w| !w));
        // 15 equal leaves and a file's short last one: one idle lane of 16, wide;
        // half the lanes short, narrow.
        let mut part: Vec<Vec<u8>> = vec![vec![1; 1000]; 15];
        part.insert(0, vec![2; 10]);
        let sorted: Vec<&[u8]> = part.iter().map(Vec::as_slice).collect();
        assert!(lanes(&sorted, 16).iter().all(|&w| w));
        let half: Vec<&[u8]> = [&[0u8; 10][..]; 8]
            .into_iter()
            .chain([&[0u8; 1000][..]; 8])
            .collect();
        assert!(lanes(&half, 16).iter().all(|&w| !w));
        // And the digests of such a mix (empty chunks too), in any order, are sha2's.
        let mut chunks: Vec<Vec<u8>> = (0..70u32)
            .map(|n| {
                let len = match n % 3 {
                    0 => 4096 + n as usize,
                    1 => 37 * n as usize,
                    _ => 0,
                };
                (0..len).map(|i| (i as u32 ^ n) as u8).collect()
            })
            .collect();
        chunks.reverse();
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
