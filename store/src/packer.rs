//! A packing thread's compression of new blocks: each block alone (a zstd frame kept
//! when it saves 1/8, else the bytes as they are) or an item's blocks together into a
//! pack (see [`crate::pack`]), large incompressible blocks kept out of packs by a
//! sample of their middle.

use narfs_core::Cid;

use crate::pack::{self, NewPack};

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
    buf: Vec<u8>,
}

impl Packer {
    /// `level: None` stores every block raw.
    pub(crate) fn new(level: Option<i32>) -> Packer {
        Packer {
            zstd: level.and_then(|l| zstd::bulk::Compressor::new(l).ok()),
            level: level.unwrap_or(0),
            buf: Vec::new(),
        }
    }

    /// What to store for `blocks`, the new blocks of one item in write order: a pack
    /// of those that compress, and on their own those that do not (a block above
    /// [`SAMPLE_ABOVE`] whose middle does not compress; all of them when the pack
    /// would not save 1/8) or that are alone.
    pub(crate) fn pack_many(
        &mut self,
        blocks: Vec<(Cid, Vec<u8>)>,
    ) -> (Option<NewPack>, Vec<(Cid, Packed)>) {
        let mut singles = Vec::new();
        let mut grouped = Vec::with_capacity(blocks.len());
        for (cid, data) in blocks {
            match self.zstd.as_mut() {
                Some(z) if data.len() > SAMPLE_ABOVE => {
                    let mid = data.len() / 2 - SAMPLE / 2;
                    if fits(z, &data[mid..mid + SAMPLE], &mut self.buf) {
                        grouped.push((cid, data));
                    } else {
                        singles.push((cid, raw(data)));
                    }
                }
                Some(_) => grouped.push((cid, data)),
                None => singles.push((cid, raw(data))),
            }
        }
        if grouped.len() == 1 {
            let (cid, data) = grouped.pop().expect("one");
            singles.push((cid, self.pack(data)));
        }
        let pack = match self.zstd.as_mut() {
            Some(z) if grouped.len() > 1 => {
                let refs: Vec<(Cid, &[u8])> =
                    grouped.iter().map(|(c, d)| (*c, d.as_slice())).collect();
                pack::encode(z, self.level, &refs)
            }
            _ => None,
        };
        if pack.is_none() {
            singles.extend(grouped.into_iter().map(|(c, d)| (c, raw(d))));
        }
        (pack, singles)
    }

    /// What to store for `data`: its zstd frame if that is at least 1/8 smaller, else
    /// `data` itself (moved, not copied).
    pub(crate) fn pack(&mut self, data: Vec<u8>) -> Packed {
        let len = data.len() as u64;
        if let Some(z) = self.zstd.as_mut() {
            let worth = data.len() <= SAMPLE_ABOVE || {
                let mid = data.len() / 2 - SAMPLE / 2;
                fits(z, &data[mid..mid + SAMPLE], &mut self.buf)
            };
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

/// Compresses `data` into `buf`; whether it saved at least 1/8.
fn fits(z: &mut zstd::bulk::Compressor<'static>, data: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
    match z.compress_to_buffer(data, buf) {
        Ok(n) => n <= data.len() - data.len() / 8,
        Err(_) => false,
    }
}
