//! Packs: the new blocks of one item, in the order they were written, compressed
//! together as one zstd frame or one LZ4 block of about [`crate::Options::pack_bytes`]
//! (1 MiB by default; the codec is [`crate::Options::pack_codec`]). Small blocks compress poorly alone (a Python or JSON file of a few KiB);
//! in a pack each block is compressed with the context of its neighbours, the files of
//! the same package. Measured by `narfs experiment` on the pandas series of the large
//! corpus: packing gains 12–22% over per-block zstd, a zstd -19 repack more.
//!
//! Layout, in the store's LMDB environment:
//!
//! ```text
//! block table   CID -> PACKED, pack id (u64 LE), offset (u32 LE), length (u32 LE)
//! packs         id (u64 BE)       -> pack value (below)
//!               id (u64 BE) ++ "l" -> live blocks (u32 LE), live bytes (u64 LE)
//!               "next"            -> the next pack id (u64 LE; ids are never reused,
//!                                    so a decompressed pack cached by id is never stale)
//! pack value    codec (1: zstd, 2: LZ4), zstd level (i8; 0 for LZ4), size (u32 LE),
//!               blocks n (u32 LE), n × (CID length (u8), CID, block length (u32 LE)),
//!               the payload: a zstd frame (its content size = size), or an LZ4
//!               block (raw LZ4 block format, no frame; it decodes to exactly size)
//! ```
//!
//! The first byte is the pack format's version: zstd packs are version 1, as narfs
//! always wrote them, so every existing store reads unchanged; LZ4 packs are version
//! 2, which a narfs older than LZ4 refuses as "a pack of an unknown version" (a damaged
//! block: `verify` reports it, `gc` and `repack` refuse to run) and never misreads.
//! LZ4 decompresses ~2.5× faster than zstd -1 here for ~25% more bytes: the
//! import default, while `repack` rewrites packs at a zstd level (an LZ4 pack counts
//! below every zstd level, see [`level_of`]).
//!
//! The block list lets `repack` and deletion find a pack's blocks without scanning the
//! block table; a block is live in a pack while its block table entry points there.
//! Deleting an entry decrements its pack's live count, and the pack goes with its last
//! block; `repack` rewrites partially dead packs (and packs below its level).
//!
//! Reading one block decompresses its whole pack (bounded: at most [`MAX_PACK`] bytes,
//! exactly the size the header declares), so readers share a cache of decompressed
//! packs ([`crate::pack_cache`]): the next blocks of an item are in the same pack.

use narfs_core::Cid;
use zstd::zstd_safe::DCtx;

use crate::gathered::Gathered;

pub(crate) use crate::compression::Codec;

/// Tag of a block table value pointing into a pack.
pub(crate) const PACKED: u8 = 2;
/// The named tree holding the packs.
pub(crate) const PACKS: &str = "packs";
/// Largest uncompressed pack narfs writes or reads back (a sanity bound on
/// decompression and on [`crate::Options::pack_bytes`]).
pub(crate) const MAX_PACK: u64 = 16 << 20;
/// Most blocks in one pack (a bound on the header, whatever the blocks' sizes).
pub(crate) const MAX_PACK_BLOCKS: usize = 1 << 16;
/// Largest pack value: a header of at most [`MAX_PACK_BLOCKS`] entries (41 bytes
/// each at most) and a frame no larger than zstd's bound.
pub(crate) const MAX_PACK_VALUE: u64 =
    10 + 41 * MAX_PACK_BLOCKS as u64 + MAX_PACK + (MAX_PACK >> 7) + 1024;
/// Length of a [`Slot`] value in the block table (tag included).
pub(crate) const SLOT_LEN: usize = 17;
/// The key of the pack id counter.
pub(crate) const NEXT: &[u8] = b"next";
/// The first byte of a zstd pack (the pack format's first version).
const VERSION_ZSTD: u8 = 1;
/// The first byte of an LZ4 pack.
const VERSION_LZ4: u8 = 2;

/// What compresses a new pack: zstd at `level` (a context reused pack after pack), or
/// LZ4 at `acceleration` (liblz4's: 1 is its default, each step up trades ratio for
/// speed; the block format, and so the reader, is the same whatever it is).
pub(crate) enum Encoder<'z> {
    Zstd {
        z: &'z mut zstd::bulk::Compressor<'static>,
        level: i32,
    },
    Lz4 {
        acceleration: i32,
    },
}

/// The zstd level a pack's header (its first two bytes, `head`) says, as `repack`
/// ranks packs: an LZ4 pack's is `i8::MIN`, below every zstd level, so `repack`
/// always rewrites it.
pub(crate) fn level_of(head: &[u8]) -> i8 {
    match head {
        [VERSION_LZ4, ..] => i8::MIN,
        [_, l, ..] => *l as i8,
        _ => 0,
    }
}

/// Where a packed block is: its pack and its bytes there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Slot {
    pub(crate) pack: u64,
    pub(crate) offset: u32,
    pub(crate) len: u32,
}

impl Slot {
    /// The block table value.
    pub(crate) fn encode(&self) -> [u8; SLOT_LEN] {
        let mut v = [0; SLOT_LEN];
        v[0] = PACKED;
        v[1..9].copy_from_slice(&self.pack.to_le_bytes());
        v[9..13].copy_from_slice(&self.offset.to_le_bytes());
        v[13..17].copy_from_slice(&self.len.to_le_bytes());
        v
    }

    /// A block table value with the [`PACKED`] tag.
    pub(crate) fn decode(v: &[u8]) -> Result<Slot, &'static str> {
        if v.len() != SLOT_LEN || v[0] != PACKED {
            return Err("a packed block's entry has the wrong length");
        }
        let u32_at = |i: usize| u32::from_le_bytes(v[i..i + 4].try_into().expect("4 bytes"));
        Ok(Slot {
            pack: u64::from_le_bytes(v[1..9].try_into().expect("8 bytes")),
            offset: u32_at(9),
            len: u32_at(13),
        })
    }
}

/// The key of pack `id` (big-endian: packs scan in id order, oldest first).
pub(crate) fn key(id: u64) -> [u8; 8] {
    id.to_be_bytes()
}

/// The key of pack `id`'s live count.
pub(crate) fn live_key(id: u64) -> [u8; 9] {
    let mut k = [b'l'; 9];
    k[..8].copy_from_slice(&id.to_be_bytes());
    k
}

/// A pack's live count: blocks whose entry points into it, and their bytes.
pub(crate) fn live_encode(blocks: u32, bytes: u64) -> [u8; 12] {
    let mut v = [0; 12];
    v[..4].copy_from_slice(&blocks.to_le_bytes());
    v[4..].copy_from_slice(&bytes.to_le_bytes());
    v
}

pub(crate) fn live_decode(v: &[u8]) -> Option<(u32, u64)> {
    let v: &[u8; 12] = v.try_into().ok()?;
    Some((
        u32::from_le_bytes(v[..4].try_into().ok()?),
        u64::from_le_bytes(v[4..].try_into().ok()?),
    ))
}

/// A pack's header: its codec and level, its size and its blocks in order.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) codec: Codec,
    /// The zstd level ([`level_of`]: `i8::MIN` for LZ4).
    pub(crate) level: i8,
    pub(crate) size: u32,
    /// Each block's CID and length; offsets are the running sum.
    pub(crate) blocks: Vec<(Cid, u32)>,
    /// Where the payload (zstd frame or LZ4 block) starts in the value.
    pub(crate) frame_at: usize,
}

impl Header {
    /// Each block's CID and slot in pack `id`.
    pub(crate) fn slots(&self, id: u64) -> impl Iterator<Item = (Cid, Slot)> + '_ {
        let mut offset = 0u32;
        self.blocks.iter().map(move |&(cid, len)| {
            let s = Slot {
                pack: id,
                offset,
                len,
            };
            offset += len;
            (cid, s)
        })
    }
}

/// Parses a pack value's header; every length is checked against the value's.
pub(crate) fn header(v: &[u8]) -> Result<Header, &'static str> {
    const BAD: &str = "a pack's header is cut short or inconsistent";
    let codec = match v.first() {
        Some(&VERSION_ZSTD) => Codec::Zstd,
        Some(&VERSION_LZ4) => Codec::Lz4,
        _ => return Err("a pack of an unknown version"),
    };
    if v.len() < 10 {
        return Err(BAD);
    }
    let size = u32::from_le_bytes(v[2..6].try_into().expect("4 bytes"));
    let n = u32::from_le_bytes(v[6..10].try_into().expect("4 bytes")) as usize;
    if u64::from(size) > MAX_PACK || n > MAX_PACK_BLOCKS {
        return Err("a pack declares more than 16 MiB or 65,536 blocks");
    }
    let mut at = 10;
    // Each entry takes at least 6 bytes: `n` is bounded by the value before allocating.
    let mut blocks = Vec::with_capacity(n.min(v.len() / 6));
    let mut total = 0u64;
    for _ in 0..n {
        let cl = *v.get(at).ok_or(BAD)? as usize;
        let cid = v.get(at + 1..at + 1 + cl).ok_or(BAD)?;
        let cid = Cid::try_from(cid).map_err(|_| "a pack names a block by no CID")?;
        let len = v.get(at + 1 + cl..at + 5 + cl).ok_or(BAD)?;
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes"));
        total += u64::from(len);
        blocks.push((cid, len));
        at += 5 + cl;
    }
    if total != u64::from(size) {
        return Err(BAD);
    }
    Ok(Header {
        codec,
        level: level_of(v),
        size,
        blocks,
        frame_at: at,
    })
}

/// A pack ready to be stored: its value and its header.
#[derive(Debug)]
pub(crate) struct NewPack {
    pub(crate) value: Vec<u8>,
    pub(crate) header: Header,
}

/// The pack of `blocks` (in order) compressed by `enc`, or `None` when the payload
/// does not save at least 1/8 of their bytes (they are then better stored raw).
pub(crate) fn encode(enc: Encoder<'_>, blocks: &[(Cid, &[u8])]) -> Option<NewPack> {
    let size: usize = blocks.iter().map(|(_, b)| b.len()).sum();
    if size as u64 > MAX_PACK || blocks.len() > MAX_PACK_BLOCKS {
        return None;
    }
    let mut raw = Vec::with_capacity(size);
    for (_, b) in blocks {
        raw.extend_from_slice(b);
    }
    let lens = blocks.iter().map(|(c, b)| (*c, b.len() as u32)).collect();
    compress(enc, lens, &raw)
}

/// [`encode`] of blocks gathered contiguous ([`Gathered`]): compressed as they lie,
/// with no copy, and freed once compressed. When no pack is made, the blocks are
/// given back.
pub(crate) fn encode_gathered(enc: Encoder<'_>, blocks: Gathered) -> Result<NewPack, Gathered> {
    if blocks.size() as u64 > MAX_PACK || blocks.len() > MAX_PACK_BLOCKS {
        return Err(blocks);
    }
    compress(enc, blocks.blocks().to_vec(), blocks.bytes()).ok_or(blocks)
}

/// The pack value of the blocks `blocks` (CID and length, in order) whose bytes, one
/// after another, are `raw`; `None` when the payload does not save 1/8.
fn compress(enc: Encoder<'_>, blocks: Vec<(Cid, u32)>, raw: &[u8]) -> Option<NewPack> {
    let size = raw.len();
    let (codec, version, level) = match &enc {
        Encoder::Zstd { level, .. } => (Codec::Zstd, VERSION_ZSTD, (*level).clamp(-127, 127)),
        Encoder::Lz4 { .. } => (Codec::Lz4, VERSION_LZ4, 0),
    };
    let mut value = vec![version, level as i8 as u8];
    value.extend_from_slice(&(size as u32).to_le_bytes());
    value.extend_from_slice(&(blocks.len() as u32).to_le_bytes());
    for (cid, len) in &blocks {
        let c = cid.to_bytes();
        value.push(c.len() as u8);
        value.extend_from_slice(&c);
        value.extend_from_slice(&len.to_le_bytes());
    }
    let frame_at = value.len();
    // The payload goes straight behind the header, into the value's own buffer.
    match enc {
        Encoder::Zstd { z, .. } => {
            value.reserve_exact(zstd::zstd_safe::compress_bound(size));
            let mut tail = std::io::Cursor::new(&mut value);
            tail.set_position(frame_at as u64);
            z.compress_to_buffer(raw, &mut tail).ok()?;
        }
        Encoder::Lz4 { acceleration } => {
            // Room for what saves 1/8 only: liblz4 fails (0) when the block needs more.
            let room = (size - size / 8).checked_sub(frame_at)?;
            value.resize(frame_at + room, 0);
            let mode = Some(match acceleration {
                ..=1 => lz4::block::CompressionMode::DEFAULT,
                a => lz4::block::CompressionMode::FAST(a),
            });
            let n = lz4::block::compress_to_buffer(raw, mode, false, &mut value[frame_at..]);
            value.truncate(frame_at + n.ok()?);
        }
    }
    if value.len() > size - size / 8 {
        return None;
    }
    Some(NewPack {
        value,
        header: Header {
            codec,
            level: level_of(&[version, level as i8 as u8]),
            size: size as u32,
            blocks,
            frame_at,
        },
    })
}

/// The blocks of a pack value, decompressed: exactly the size its header and its
/// frame declare (both at most [`MAX_PACK`]); anything else is an error, never a
/// larger allocation.
pub(crate) fn unpack(v: &[u8]) -> Result<(Header, Vec<u8>), &'static str> {
    unpack_into(v, &mut DCtx::create(), Vec::new())
}

/// [`unpack`] with `dctx` (for a zstd pack), into `out` (its contents replaced, its
/// capacity reused: no fresh pages to fault in when it already holds the pack's size).
pub(crate) fn unpack_into(
    v: &[u8],
    dctx: &mut DCtx<'static>,
    mut out: Vec<u8>,
) -> Result<(Header, Vec<u8>), &'static str> {
    let h = header(v)?;
    let frame = &v[h.frame_at..];
    if h.codec == Codec::Lz4 {
        if !lz4_into(frame, h.size as usize, &mut out) {
            return Err("a pack's LZ4 block does not decode to the pack's size");
        }
        return Ok((h, out));
    }
    match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n == u64::from(h.size) => {}
        _ => return Err("a pack's frame does not declare the pack's size"),
    }
    out.clear();
    out.reserve_exact(h.size as usize);
    match dctx.decompress(&mut out, frame) {
        Ok(n) if n == h.size as usize => Ok((h, out)),
        _ => Err("a pack's zstd frame does not decode"),
    }
}

/// Decompresses the LZ4 block `frame` into `out` (its contents replaced, its capacity
/// reused), which must come to exactly `size` bytes (≤ [`MAX_PACK`]); whether it did.
///
/// Into `out`'s spare capacity, not zeroed first: a new 1 MiB buffer zeroed before
/// liblz4 overwrote it was ~1.4% of a decode from the store (`perf`), its pages
/// faulted in by `memset` rather than by the decompression itself.
fn lz4_into(frame: &[u8], size: usize, out: &mut Vec<u8>) -> bool {
    let (Ok(src_len), Ok(dst_len)) = (i32::try_from(frame.len()), i32::try_from(size)) else {
        return false;
    };
    out.clear();
    out.reserve_exact(size);
    // SAFETY: `out` has room for `size` bytes; liblz4's safe decoder reads only the
    // `src_len` bytes of `frame` and writes at most `dst_len` = `size` bytes into
    // that room (it fails, negative, on a block that would write more), whatever the
    // block holds. It returns the bytes written, so those are initialised.
    let n = unsafe {
        lz4::liblz4::LZ4_decompress_safe(
            frame.as_ptr().cast(),
            out.as_mut_ptr().cast(),
            src_len,
            dst_len,
        )
    };
    if n != dst_len {
        return false;
    }
    // SAFETY: liblz4 wrote exactly `size` bytes from the start of `out`'s buffer.
    unsafe { out.set_len(size) };
    true
}

#[cfg(test)]
#[path = "pack_tests.rs"]
mod tests;
