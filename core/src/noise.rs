//! Deterministic pseudo-random bytes: xorshift64, for tests, benches and fuzz targets
//! that need incompressible input (hash-like blocks, content-defined cuts anywhere)
//! that is the same in every run.
//!
//! Why here, public, and not a test-only crate: the unit tests of several crates, the
//! integration tests, the benches and the fuzz targets all want the same generator,
//! and `core` is the one crate every one of them already depends on. It is not a
//! source of secrets or of statistical quality; only of bytes zstd cannot shrink.
//!
//! ```
//! let a = narfs_core::noise::bytes(7, 1000);
//! assert_eq!(a, narfs_core::noise::bytes(7, 1000));
//! assert_ne!(a, narfs_core::noise::bytes(8, 1000));
//! ```

/// A xorshift64 stream, seeded so that every seed (0 too) gives a nonzero state.
#[derive(Clone, Debug)]
pub struct Noise(u64);

impl Noise {
    /// The stream for `seed`.
    pub fn new(seed: u64) -> Noise {
        Noise(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// The next byte (the low byte of the next 64 bits).
    pub fn byte(&mut self) -> u8 {
        self.next() as u8
    }
}

/// `len` pseudo-random bytes of the stream for `seed`.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut n = Noise::new(seed);
    (0..len).map(|_| n.byte()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_does_not_compress_and_repeats_per_seed() {
        let a = bytes(0, 1 << 16);
        assert_eq!(a, bytes(0, 1 << 16));
        assert_ne!(a[..64], bytes(1, 64)[..]);
        let mut counts = [0u32; 256];
        a.iter().for_each(|&b| counts[b as usize] += 1);
        // 65,536 bytes over 256 values: every value present, none far above its share.
        assert!(counts.iter().all(|&c| c > 128 && c < 384), "{counts:?}");
    }
}
