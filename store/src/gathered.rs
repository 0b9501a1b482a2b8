//! An item's new blocks gathered for one pack: their bytes one after another in one
//! buffer, as the pack compresses them, and each one's CID and length. A write
//! session's handle copies each block from the encoder straight into the buffer (its
//! one copy), so a packer compresses the buffer as it is: with a buffer per block, the
//! packer concatenated them first (2% of an encode of the large NAR into a fresh
//! store) and the small-file NAR's ~57,000 blocks each cost a malloc and a free.

use narfs_core::Cid;

/// Blocks in write order, their bytes contiguous (see the module doc).
#[derive(Debug, Default)]
pub(crate) struct Gathered {
    bytes: Vec<u8>,
    blocks: Vec<(Cid, u32)>,
}

impl Gathered {
    /// Room for `bytes` of blocks: a handle that flushes before a block would pass
    /// them never grows the buffer (which would copy it).
    pub(crate) fn with_capacity(bytes: usize) -> Gathered {
        Gathered {
            bytes: Vec::with_capacity(bytes),
            blocks: Vec::new(),
        }
    }

    /// Appends a block (shorter than 4 GiB: packs hold far less, see
    /// [`crate::pack::MAX_PACK`]).
    pub(crate) fn push(&mut self, cid: Cid, data: &[u8]) {
        self.bytes.extend_from_slice(data);
        self.blocks.push((cid, data.len() as u32));
    }

    /// How many blocks.
    pub(crate) fn len(&self) -> usize {
        self.blocks.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.blocks.is_empty()
    }

    /// Their bytes in all.
    pub(crate) fn size(&self) -> usize {
        self.bytes.len()
    }

    /// The blocks' bytes, one after another.
    pub(crate) fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Each block's CID and length, in order.
    pub(crate) fn blocks(&self) -> &[(Cid, u32)] {
        &self.blocks
    }

    /// Each block's CID and bytes, in order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Cid, &[u8])> + '_ {
        let mut at = 0;
        self.blocks.iter().map(move |(cid, len)| {
            let b = &self.bytes[at..at + *len as usize];
            at += *len as usize;
            (cid, b)
        })
    }

    /// Keeps the blocks whose index `keep` accepts, their bytes moved together in
    /// place (no new buffer).
    pub(crate) fn retain(&mut self, mut keep: impl FnMut(usize) -> bool) {
        let (mut from, mut to, mut kept) = (0, 0, 0);
        for i in 0..self.blocks.len() {
            let (cid, len) = self.blocks[i];
            let len_us = len as usize;
            if keep(i) {
                if from != to {
                    self.bytes.copy_within(from..from + len_us, to);
                }
                self.blocks[kept] = (cid, len);
                to += len_us;
                kept += 1;
            }
            from += len_us;
        }
        self.bytes.truncate(to);
        self.blocks.truncate(kept);
    }

    /// Each block in a buffer of its own.
    pub(crate) fn split(&self) -> Vec<(Cid, Vec<u8>)> {
        self.iter().map(|(c, b)| (*c, b.to_vec())).collect()
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, HashAlg, RAW};
    use proptest::prelude::*;

    use super::Gathered;

    fn gather(blocks: &[Vec<u8>]) -> Gathered {
        let mut g = Gathered::with_capacity(0);
        for b in blocks {
            g.push(cid_for(RAW, HashAlg::Sha2_256, b), b);
        }
        g
    }

    proptest! {
        /// Whatever is kept, each kept block's bytes come back whole, in order.
        #[test]
        fn retain_keeps_the_chosen_blocks_whole(
            blocks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..300), 0..12),
            keep in prop::collection::vec(any::<bool>(), 12),
        ) {
            let mut g = gather(&blocks);
            prop_assert_eq!(g.size(), blocks.iter().map(Vec::len).sum::<usize>());
            g.retain(|i| keep[i]);
            let want: Vec<&Vec<u8>> =
                blocks.iter().zip(&keep).filter(|(_, k)| **k).map(|(b, _)| b).collect();
            prop_assert_eq!(g.len(), want.len());
            prop_assert_eq!(g.size(), want.iter().map(|b| b.len()).sum::<usize>());
            for ((cid, got), b) in g.iter().zip(&want) {
                prop_assert_eq!(got, b.as_slice());
                prop_assert_eq!(*cid, cid_for(RAW, HashAlg::Sha2_256, b));
            }
            let split = g.split();
            prop_assert_eq!(split.len(), want.len());
            prop_assert!(split.iter().zip(&want).all(|((_, s), b)| s == *b));
        }
    }
}
