//! A packing thread's compression of new blocks: each block alone (a zstd frame kept
//! when it saves 1/8, else the bytes as they are) or an item's blocks together into a
//! pack (zstd or LZ4, see [`crate::pack`]), large incompressible blocks kept out of
//! packs by a sample of their middle (judged by zstd whatever the pack's codec: what
//! zstd -1 cannot shrink by 1/8, LZ4 cannot either).

use narfs_core::Cid;

use crate::gathered::Gathered;
use crate::pack::{self, Encoder, NewPack};
use crate::Codec;

/// Blocks longer than this are compressed only if a [`SAMPLE`]-byte piece of their
/// middle compresses (most of an incompressible block's zstd time is then saved).
const SAMPLE_ABOVE: usize = 64 << 10;
const SAMPLE: usize = 16 << 10;

/// A block ready to be stored: its bytes as they are or as a zstd frame.
pub(crate) struct Packed {
    /// The block's own length.
    pub(crate) len: u64,
    pub(crate) compressed: bool,
    pub(crate) bytes: Vec<u8>,
}

/// A packing thread's zstd state: one compression context reused for every block.
pub(crate) struct Packer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    level: i32,
    codec: Codec,
    /// liblz4's acceleration of LZ4 packs.
    lz4_acceleration: i32,
    buf: Vec<u8>,
}

impl Packer {
    /// `level: None` stores every block raw; else packs are compressed by `codec` (LZ4
    /// at `lz4_acceleration`).
    pub(crate) fn new(level: Option<i32>, codec: Codec, lz4_acceleration: i32) -> Packer {
        Packer {
            zstd: level.and_then(|l| zstd::bulk::Compressor::new(l).ok()),
            level: level.unwrap_or(0),
            codec,
            lz4_acceleration,
            buf: Vec::new(),
        }
    }

    /// What to store for `blocks`, the new blocks of one item in write order: a pack
    /// of those that compress, and on their own those that do not (a block above
    /// [`SAMPLE_ABOVE`] whose middle does not compress; all of them when the pack
    /// would not save 1/8) or that are alone. The pack is compressed from `blocks`'
    /// buffer as it is (the blocks stored on their own are copied out of it).
    pub(crate) fn pack_many(
        &mut self,
        mut blocks: Gathered,
    ) -> (Option<NewPack>, Vec<(Cid, Packed)>) {
        let Some(z) = self.zstd.as_mut() else {
            let singles = blocks.split().into_iter().map(|(c, d)| (c, raw(d)));
            return (None, singles.collect());
        };
        let mut singles = Vec::new();
        let mut apart = Vec::new();
        for (i, (cid, data)) in blocks.iter().enumerate() {
            if data.len() > SAMPLE_ABOVE && !sample_fits(z, data, &mut self.buf) {
                singles.push((*cid, raw(data.to_vec())));
                apart.push(i);
            }
        }
        if !apart.is_empty() {
            // `apart` is in index order.
            blocks.retain(|i| apart.binary_search(&i).is_err());
        }
        match blocks.len() {
            0 => return (None, singles),
            1 => {
                let (cid, data) = blocks.split().pop().expect("one");
                singles.push((cid, self.pack(data)));
                return (None, singles);
            }
            _ => {}
        }
        let (level, acceleration) = (self.level, self.lz4_acceleration);
        let pack = match (self.zstd.as_mut(), self.codec) {
            (Some(_), Codec::Lz4) => pack::encode_gathered(Encoder::Lz4 { acceleration }, blocks),
            (Some(z), _) => pack::encode_gathered(Encoder::Zstd { z, level }, blocks),
            (None, _) => Err(blocks),
        };
        match pack {
            Ok(p) => (Some(p), singles),
            Err(blocks) => {
                singles.extend(blocks.split().into_iter().map(|(c, d)| (c, raw(d))));
                (None, singles)
            }
        }
    }

    /// What to store for `data`: its zstd frame if that is at least 1/8 smaller, else
    /// `data` itself (moved, not copied).
    pub(crate) fn pack(&mut self, data: Vec<u8>) -> Packed {
        let len = data.len() as u64;
        if let Some(z) = self.zstd.as_mut() {
            let worth = data.len() <= SAMPLE_ABOVE || sample_fits(z, &data, &mut self.buf);
            if worth && fits(z, &data, &mut self.buf) {
                let bytes = std::mem::take(&mut self.buf);
                return Packed {
                    len,
                    compressed: true,
                    bytes,
                };
            }
        }
        Packed {
            len,
            compressed: false,
            bytes: data,
        }
    }
}

/// `data` stored as it is.
fn raw(data: Vec<u8>) -> Packed {
    Packed {
        len: data.len() as u64,
        compressed: false,
        bytes: data,
    }
}

/// Whether the [`SAMPLE`] bytes in the middle of `data` (longer than [`SAMPLE_ABOVE`])
/// save 1/8 compressed: surely when their bytes' entropy is at most [`SURE_ENTROPY`]
/// bits (counting them takes a tenth of compressing them, a sixteenth of a 256 KiB
/// block's zstd time saved on every compressible block), else as [`fits`] finds.
fn sample_fits(z: &mut zstd::bulk::Compressor<'static>, data: &[u8], buf: &mut Vec<u8>) -> bool {
    let mid = data.len() / 2 - SAMPLE / 2;
    let sample = &data[mid..mid + SAMPLE];
    entropy(sample) <= SURE_ENTROPY || fits(z, sample, buf)
}

/// Order-0 entropy (bits per byte) at or below which bytes surely compress by 1/8:
/// zstd's Huffman coding of literals alone comes within a fraction of a bit of it
/// (text is ~4.5–5, machine code ~5.5–6.5, compressed or random bytes ~8).
const SURE_ENTROPY: f64 = 6.0;

/// The order-0 (byte frequency) entropy of `data` in bits per byte.
fn entropy(data: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in data {
        counts[b as usize] += 1;
    }
    let n = data.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// Compresses `data` into `buf`; whether it saved at least 1/8.
fn fits(z: &mut zstd::bulk::Compressor<'static>, data: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
    match z.compress_to_buffer(data, buf) {
        Ok(n) => n <= data.len() - data.len() / 8,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::{cid_for, HashAlg, RAW};

    #[test]
    fn entropy_of_known_distributions() {
        assert_eq!(entropy(&[7u8; 4096]), 0.0);
        let two: Vec<u8> = (0..4096).map(|i| (i % 2) as u8).collect();
        assert!((entropy(&two) - 1.0).abs() < 1e-9);
        let all: Vec<u8> = (0..65536).map(|i| i as u8).collect();
        assert!((entropy(&all) - 8.0).abs() < 1e-9);
    }

    /// A 256 KiB block of pseudo-random bytes: incompressible.
    fn random_block(seed: u64) -> Vec<u8> {
        narfs_core::noise::bytes(seed, 256 << 10)
    }

    #[test]
    fn the_entropy_shortcut_agrees_with_zstd_on_the_sample() {
        let mut z = zstd::bulk::Compressor::new(1).unwrap();
        let mut buf = Vec::new();
        let text: Vec<u8> = b"fn main() { println!(\"hello, world\"); }\n"
            .iter()
            .copied()
            .cycle()
            .take(256 << 10)
            .collect();
        assert!(entropy(&text[..SAMPLE]) <= SURE_ENTROPY);
        assert!(sample_fits(&mut z, &text, &mut buf));
        let random = random_block(42);
        assert!(entropy(&random[..SAMPLE]) > SURE_ENTROPY);
        assert!(!sample_fits(&mut z, &random, &mut buf));
    }

    #[test]
    fn incompressible_large_blocks_stay_out_of_packs() {
        for codec in [Codec::Zstd, Codec::Lz4] {
            incompressible_out_of(Packer::new(Some(1), codec, crate::LZ4_ACCELERATION));
        }
    }

    fn incompressible_out_of(mut p: Packer) {
        let text: Vec<u8> = (0..200u32 << 10)
            .map(|i| b"abcabd"[i as usize % 6])
            .collect();
        let cid = |i: u8| cid_for(RAW, HashAlg::Sha2_256, &[i]);
        let mut blocks = Gathered::with_capacity(0);
        blocks.push(cid(1), &text);
        blocks.push(cid(2), &random_block(7));
        blocks.push(cid(3), &text);
        let (pack, singles) = p.pack_many(blocks);
        let pack = pack.expect("the two compressible blocks are packed");
        let (_, both) = pack::unpack(&pack.value).expect("the pack reads back");
        assert_eq!(both, [text.clone(), text].concat());
        assert_eq!(pack.header.codec, p.codec);
        assert_eq!(pack.header.blocks.len(), 2);
        assert_eq!(singles.len(), 1);
        assert!(!singles[0].1.compressed);
        assert_eq!(singles[0].1.bytes, random_block(7));
    }
}
