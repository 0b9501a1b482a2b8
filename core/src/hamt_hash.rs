//! The hash function of UnixFS HAMT directories (`hashType` 0x22, "murmur3-x64-64").
//!
//! UnixFS names it murmur3-x64-64, but what every implementation computes is MurmurHash3
//! x64 128 with seed 0, of which it keeps only the first 64-bit half `h1`, read as a
//! **big-endian** bit string from its most significant bit:
//!
//! - Go (boxo `ipld/unixfs/hamt/util.go`): `murmur3.New64()` + `Sum(nil)` from
//!   `spaolacci/murmur3`, whose `Sum` appends `h1` most significant byte first; `hashBits`
//!   then reads from byte 0, high bits first.
//! - JS (`ipfs-unixfs-importer` `dir-sharded.js` + `hamt-sharding`):
//!   `murmur3128.encode(name)` (from `murmurhash3js-revisited`: `h1` then `h2`, each
//!   big-endian) `.slice(0, 8).reverse()`, and `ConsumableBuffer` reads that reversed
//!   buffer from its *last* byte backwards, high bits first — the same bit string again.
//!
//! (The canonical C++ byte output is `h1` little-endian; it is *not* what is consumed.)
//! With fanout 256 the slot at depth `d` is simply byte `d` of [`hamt_hash`]. [`HashBits`]
//! reads slots of any width.

/// MurmurHash3 x64 128 (Austin Appleby's `MurmurHash3_x64_128`), returned as `(h1, h2)`.
pub fn murmur3_x64_128(data: &[u8], seed: u32) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let mut h1 = u64::from(seed);
    let mut h2 = u64::from(seed);

    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        let (a, b) = block.split_at(8);
        let mut k1 = u64::from_le_bytes(a.try_into().unwrap_or([0; 8]));
        let mut k2 = u64::from_le_bytes(b.try_into().unwrap_or([0; 8]));

        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1.rotate_left(27).wrapping_add(h2);
        h1 = h1.wrapping_mul(5).wrapping_add(0x52dc_e729);

        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2.rotate_left(31).wrapping_add(h1);
        h2 = h2.wrapping_mul(5).wrapping_add(0x3849_5ab5);
    }

    let tail = blocks.remainder();
    let mut k1: u64 = 0;
    let mut k2: u64 = 0;
    for (i, &byte) in tail.iter().enumerate() {
        if i < 8 {
            k1 |= u64::from(byte) << (8 * i);
        } else {
            k2 |= u64::from(byte) << (8 * (i - 8));
        }
    }
    if tail.len() > 8 {
        k2 = k2.wrapping_mul(C2).rotate_left(33).wrapping_mul(C1);
        h2 ^= k2;
    }
    if !tail.is_empty() {
        k1 = k1.wrapping_mul(C1).rotate_left(31).wrapping_mul(C2);
        h1 ^= k1;
    }

    let len = data.len() as u64;
    h1 ^= len;
    h2 ^= len;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// The UnixFS HAMT hash of a directory entry name: `h1` of murmur3 x64 128 (seed 0),
/// big-endian, exactly the 8 bytes Go and JS consume.
pub fn hamt_hash(name: &[u8]) -> [u8; 8] {
    murmur3_x64_128(name, 0).0.to_be_bytes()
}

/// Reads successive `width`-bit slot indices from a HAMT hash, most significant bit first.
#[derive(Debug, Clone)]
pub struct HashBits {
    hash: u64,
    consumed: u32,
}

impl HashBits {
    /// Starts reading the hash of `name`.
    pub fn new(name: &[u8]) -> Self {
        Self::from_hash(hamt_hash(name))
    }

    /// Starts reading an already computed hash.
    pub fn from_hash(hash: [u8; 8]) -> Self {
        Self {
            hash: u64::from_be_bytes(hash),
            consumed: 0,
        }
    }

    /// The next `width` bits (1..=32) as an index, or `None` once the 64 bits are used up
    /// (Go then fails with "sharded directory too deep"; so do we).
    pub fn next(&mut self, width: u32) -> Option<u32> {
        if width == 0 || width > 32 || self.consumed + width > 64 {
            return None;
        }
        let shifted = self.hash << self.consumed;
        self.consumed += width;
        // `width <= 32`, so the result fits in a u32.
        Some((shifted >> (64 - width)) as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// `(input, JS hamtHashFn buffer, JS murmur3128 digest)` from `ipfs-unixfs-importer`
    /// 17.1.1 / `@multiformats/murmur3`: `murmur3128.encode(utf8(s))` and
    /// `.slice(0, 8).reverse()`, printed as hex by a small Node script. JS consumes the
    /// reversed buffer from its end, so our big-endian hash is that buffer reversed. `h1`
    /// also agrees with Python `mmh3.hash64(s, 0, signed=False)[0]` (e.g. "a":
    /// 0x85555565f6597889).
    const VECTORS: &[(&str, &str, &str)] = &[
        ("", "0000000000000000", "00000000000000000000000000000000"),
        ("a", "897859f665555585", "85555565f6597889e6b53a48510e895a"),
        (
            "abc",
            "6778ad3f3f3f96b4",
            "b4963f3f3fad78673ba2744126ca2d52",
        ),
        (
            "hello world",
            "0e617feb46603f53",
            "533f6046eb7f610eab97467d60eb63b1",
        ),
        (
            "f00000",
            "0b68e769b4589ab4",
            "b49a58b469e7680b1887eb5ad059ef27",
        ),
        (
            "The quick brown fox jumps over the lazy dog",
            "6c1b07bc7bbc4be3",
            "e34bbc7bbc071b6c7a433ca9c49a9347",
        ),
        (
            "0123456789abcdef0123",
            "0a44d94281054780",
            "8047058142d9440a8e8d677aff9a9087",
        ),
    ];

    #[test]
    fn matches_js_hamt_hash() {
        for (input, js_buffer, js_digest) in VECTORS {
            let mut ours = hamt_hash(input.as_bytes());
            assert_eq!(hex(&ours), js_digest[..16], "h1 of {input:?}");
            ours.reverse();
            assert_eq!(hex(&ours), *js_buffer, "JS buffer of {input:?}");
            let (h1, h2) = murmur3_x64_128(input.as_bytes(), 0);
            let mut both = h1.to_be_bytes().to_vec();
            both.extend_from_slice(&h2.to_be_bytes());
            assert_eq!(hex(&both), *js_digest, "murmur3 128 of {input:?}");
        }
        assert_eq!(murmur3_x64_128(b"a", 0).0, 0x8555_5565_f659_7889);
    }

    #[test]
    fn seed_changes_output() {
        assert_ne!(murmur3_x64_128(b"abc", 0), murmur3_x64_128(b"abc", 1));
    }

    #[test]
    fn hash_bits_reads_msb_first() {
        let mut bits = HashBits::from_hash([0xAB, 0xCD, 0, 0, 0, 0, 0, 0x01]);
        assert_eq!(bits.next(8), Some(0xAB));
        assert_eq!(bits.next(4), Some(0xC));
        assert_eq!(bits.next(4), Some(0xD));
        assert_eq!(bits.next(32), Some(0));
        assert_eq!(bits.next(8), Some(0));
        assert_eq!(bits.next(9), None, "only 8 bits left");
        assert_eq!(bits.next(8), Some(0x01));
        assert_eq!(bits.next(1), None);
        assert_eq!(HashBits::from_hash([0; 8]).next(0), None);
        assert_eq!(HashBits::from_hash([0; 8]).next(33), None);
    }

    #[test]
    fn fanout_256_slots_are_hash_bytes() {
        let hash = hamt_hash(b"file-00042");
        let mut bits = HashBits::from_hash(hash);
        for byte in hash {
            assert_eq!(bits.next(8), Some(u32::from(byte)));
        }
        assert_eq!(bits.next(8), None);
    }
}
