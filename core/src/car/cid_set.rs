//! [`CidSet`]: the set of CIDs a CAR writer has written, hashed cheaply.

use cid::Cid;
use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// CIDs, hashed by [`CidHasher`].
pub(crate) type CidSet = HashSet<Cid, BuildHasherDefault<CidHasher>>;

/// Hashes a CID for the set of those written: its fields folded a word at a time
/// (FxHash's step) instead of SipHash, whose rounds over every CID's 36 bytes were 3%
/// of an encode of many small files to a CAR file. Nothing here needs SipHash's
/// resistance to chosen keys: a CID's digest is a cryptographic hash of its block,
/// which a NAR's author cannot steer into one bucket.
#[derive(Default)]
pub(crate) struct CidHasher(u64);

impl CidHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
}

impl Hasher for CidHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::hash::{BuildHasher, Hash};

    fn cid(codec: u64, fill: u8) -> Cid {
        let mh = cid::multihash::Multihash::wrap(0x12, &[fill; 32]).unwrap();
        Cid::new_v1(codec, mh)
    }

    #[test]
    fn equal_cids_hash_alike_and_others_apart() {
        let b = BuildHasherDefault::<CidHasher>::default();
        assert_eq!(b.hash_one(cid(0x55, 7)), b.hash_one(cid(0x55, 7)));
        assert_ne!(b.hash_one(cid(0x55, 7)), b.hash_one(cid(0x55, 8)));
        assert_ne!(b.hash_one(cid(0x55, 7)), b.hash_one(cid(0x70, 7)));
        let mut h = CidHasher::default();
        b"nine bytes".hash(&mut h);
        assert_ne!(h.finish(), 0, "a tail shorter than a word is folded in");
    }

    #[test]
    fn the_set_holds_each_cid_once() {
        let mut set = CidSet::default();
        for i in 0..=255u8 {
            assert!(set.insert(cid(0x55, i)));
        }
        assert!(!set.insert(cid(0x55, 3)), "already there");
        assert_eq!(set.len(), 256);
        assert!(set.contains(&cid(0x55, 255)) && !set.contains(&cid(0x70, 255)));
    }
}
