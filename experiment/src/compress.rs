//! Compression at rest: what the unique blocks of one strategy take on disk under each
//! option a store could use, how long compressing takes, and how long the
//! decompression a reader of each item needs takes.
//!
//! The options (the fields of [`Compression`]):
//! - `raw`: the blocks as they are.
//! - `block`: each block its own zstd -3 frame, kept raw when that is not smaller
//!   (the store's form before packs).
//! - `dict`: the same with a dictionary trained on the store's own small blocks
//!   (`zstd::dict::from_samples`, 110 KiB like `zstd --train`'s default, trained once
//!   on a sample of every block of at most 32 KiB: the dictionary a background job
//!   would train on a filled store); its size is counted.
//! - `pack`: the new blocks of each item, in the order the encoder wrote them, cut
//!   into packs of about `pack_size` bytes (a larger block alone), each pack one zstd
//!   -3 frame: still seekable, one block is read by decompressing one pack, never the
//!   item's others.
//! - `pack-lz4`: the same packs, each one LZ4 block (the store's import default:
//!   larger, faster to compress and ~2.5× faster to decompress).
//! - `repack`: the same packs at a high level (19 by default), what a background
//!   `repack` would rewrite them to. zstd -19's window (8 MiB) covers a whole pack, so
//!   long-distance matching would find nothing more inside one.
//!
//! Decode speed is measured as a reader gets it: every item is decoded again (the
//! real decoder, every block verified, leaves fetched in parallel, the NAR checked
//! byte for byte) from a [`Frames`] source that decompresses each block as it is
//! asked for (a pack once per thread while its blocks are read, as a store would keep
//! the pack it just read); `read_bytes` counts the bytes decompressed, which for packs
//! includes the neighbours of the blocks needed (the read amplification).

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use narfs_core::block::{BlockSource, MemoryStore, StoreError};
use narfs_core::Cid;

use crate::runner::ZSTD_LEVEL;
use crate::Error;

/// Decodes every item from a source and returns the seconds it took (the runner's
/// decode, checked against the NARs).
pub(crate) type Decode<'a> = &'a dyn Fn(&Frames) -> Result<f64, Error>;

/// The dictionary's size (`zstd --train`'s default `--maxdict`).
pub const DICT_SIZE: usize = 112_640;
/// Blocks up to this size are the dictionary's training samples.
const DICT_SAMPLE_MAX: usize = 32 * 1024;
/// At most this many bytes of samples (zstd advises ~100 × the dictionary).
const DICT_SAMPLES_BYTES: usize = 100 * DICT_SIZE;

/// The blocks one item's encoding touched.
#[derive(Clone, Debug, Default)]
pub(crate) struct ItemBlocks {
    /// Blocks it added to the store, in the order they were written.
    pub(crate) new: Vec<Cid>,
    /// Every block its DAG holds, once each, in the order they were written.
    pub(crate) all: Vec<Cid>,
}

/// One compression option's figures over a whole strategy's block set.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct Footprint {
    /// Bytes on disk, the dictionary included.
    pub bytes: u64,
    /// Of which the dictionary.
    pub dict_bytes: u64,
    /// Frames stored (blocks, or packs).
    pub frames: u64,
    /// zstd level.
    pub level: i32,
    /// Wall time compressing everything, on every core.
    pub compress_secs: f64,
    /// Wall time decoding every item from the compressed blocks, verified.
    pub decode_secs: f64,
    /// Bytes decompressed for that.
    pub read_bytes: u64,
}

/// A strategy's footprint under every option.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct Compression {
    pub raw: Footprint,
    pub block: Footprint,
    /// None when no dictionary could be trained (too few small blocks).
    pub dict: Option<Footprint>,
    pub pack: Footprint,
    /// The same packs in LZ4.
    pub pack_lz4: Footprint,
    /// Measured for one strategy only (the one `pack` stores smallest): slow.
    pub repack: Option<Footprint>,
    /// The pack size aimed at.
    pub pack_size: usize,
}

/// Measures `raw`, `block`, `dict`, `pack` (at `ZSTD_LEVEL`) and `pack_lz4`; also returns every
/// block's stored size under `block` (for the wire figures).
pub(crate) fn measure(
    store: &MemoryStore,
    items: &[ItemBlocks],
    pack_size: usize,
    raw_decode_secs: f64,
    decode: Decode<'_>,
) -> Result<(Compression, HashMap<Cid, u64>), Error> {
    let order: Vec<(&Cid, &[u8])> = items
        .iter()
        .flat_map(|i| &i.new)
        .map(|c| (c, store.get_ref(c).expect("a new block is stored")))
        .collect();
    let raw = Footprint {
        bytes: order.iter().map(|b| b.1.len() as u64).sum(),
        frames: order.len() as u64,
        read_bytes: items
            .iter()
            .flat_map(|i| &i.all)
            .map(|c| store.get_ref(c).map_or(0, |d| d.len() as u64))
            .sum(),
        decode_secs: raw_decode_secs,
        ..Footprint::default()
    };
    let (block, sizes) = per_block(&order, None, decode)?;
    let blocks: Vec<&[u8]> = order.iter().map(|b| b.1).collect();
    let dict = match train(&blocks) {
        Some(dict) => Some(per_block(&order, Some(dict), decode)?.0),
        None => None,
    };
    let pack = packs(store, items, pack_size, PackCodec::Zstd(ZSTD_LEVEL), decode)?;
    let pack_lz4 = packs(store, items, pack_size, PackCodec::Lz4, decode)?;
    let compression = Compression {
        raw,
        block,
        dict,
        pack,
        pack_lz4,
        repack: None,
        pack_size,
    };
    Ok((compression, sizes))
}

/// Each block on its own, with `dict` if given; also each block's stored size.
fn per_block(
    order: &[(&Cid, &[u8])],
    dict: Option<Vec<u8>>,
    decode: Decode<'_>,
) -> Result<(Footprint, HashMap<Cid, u64>), Error> {
    let t = Instant::now();
    let frames = parallel(
        order,
        || match &dict {
            Some(d) => zstd::bulk::Compressor::with_dictionary(ZSTD_LEVEL, d),
            None => zstd::bulk::Compressor::new(ZSTD_LEVEL),
        },
        |z, (_, b)| {
            let f = z.compress(b)?;
            Ok(if f.len() < b.len() {
                Unit::Zstd(f, b.len())
            } else {
                Unit::Raw(b.to_vec())
            })
        },
    )
    .map_err(Error::Zstd)?;
    let compress_secs = t.elapsed().as_secs_f64();
    let dict_bytes = dict.as_ref().map_or(0, |d| d.len() as u64);
    let sizes: HashMap<Cid, u64> = order
        .iter()
        .zip(&frames)
        .map(|((cid, _), f)| (**cid, f.stored_len()))
        .collect();
    let bytes = dict_bytes + sizes.values().sum::<u64>();
    let index = order
        .iter()
        .enumerate()
        .map(|(n, (cid, b))| (**cid, (n, 0, b.len())))
        .collect();
    let source = Frames::new(index, frames, dict);
    let decode_secs = decode(&source)?;
    let footprint = Footprint {
        bytes,
        dict_bytes,
        frames: order.len() as u64,
        level: ZSTD_LEVEL,
        compress_secs,
        decode_secs,
        read_bytes: source.read_bytes.load(Ordering::Relaxed),
    };
    Ok((footprint, sizes))
}

/// A dictionary trained on a sample of the small blocks, if zstd can make one.
fn train(blocks: &[&[u8]]) -> Option<Vec<u8>> {
    let small: Vec<&[u8]> = blocks
        .iter()
        .copied()
        .filter(|b| b.len() <= DICT_SAMPLE_MAX && b.len() >= 8)
        .collect();
    let total: usize = small.iter().map(|b| b.len()).sum();
    let stride = total.div_ceil(DICT_SAMPLES_BYTES).max(1);
    let samples: Vec<&[u8]> = small.iter().copied().step_by(stride).collect();
    if samples.len() < 16 || samples.iter().map(|s| s.len()).sum::<usize>() < 2 * DICT_SIZE {
        return None;
    }
    zstd::dict::from_samples(&samples, DICT_SIZE).ok()
}

/// What compresses a pack: zstd at a level, or LZ4 (liblz4's default).
#[derive(Clone, Copy, Debug)]
pub(crate) enum PackCodec {
    Zstd(i32),
    Lz4,
}

/// The new blocks of each item cut into packs of about `pack_size` bytes, each one
/// zstd frame or LZ4 block by `codec` (kept raw when that is not smaller).
pub(crate) fn packs(
    store: &MemoryStore,
    items: &[ItemBlocks],
    pack_size: usize,
    codec: PackCodec,
    decode: Decode<'_>,
) -> Result<Footprint, Error> {
    // index: block -> (pack, offset, length); packs: the bytes of each pack.
    let mut index: HashMap<Cid, (usize, usize, usize)> = HashMap::new();
    let mut packs: Vec<Vec<u8>> = Vec::new();
    for item in items {
        let mut fill = pack_size;
        for cid in &item.new {
            let data = store.get_ref(cid).expect("a new block is stored");
            if fill + data.len() > pack_size && fill > 0 {
                packs.push(Vec::new());
                fill = 0;
            }
            fill += data.len();
            let n = packs.len() - 1;
            let pack = &mut packs[n];
            index.insert(*cid, (n, pack.len(), data.len()));
            pack.extend_from_slice(data);
        }
    }
    let t = Instant::now();
    let level = match codec {
        PackCodec::Zstd(l) => l,
        PackCodec::Lz4 => 0,
    };
    let frames = parallel(
        &packs,
        || zstd::bulk::Compressor::new(level),
        |z, p| {
            let (f, unit): (_, fn(Vec<u8>, usize) -> Unit) = match codec {
                PackCodec::Zstd(_) => (z.compress(p)?, Unit::Zstd),
                PackCodec::Lz4 => (lz4::block::compress(p, None, false)?, Unit::Lz4),
            };
            Ok(if f.len() < p.len() {
                unit(f, p.len())
            } else {
                Unit::Raw(p.clone())
            })
        },
    )
    .map_err(Error::Zstd)?;
    let compress_secs = t.elapsed().as_secs_f64();
    drop(packs);
    let bytes = frames.iter().map(Unit::stored_len).sum();
    let count = frames.len() as u64;
    let source = Frames::new(index, frames, None);
    let decode_secs = decode(&source)?;
    Ok(Footprint {
        bytes,
        dict_bytes: 0,
        frames: count,
        level,
        compress_secs,
        decode_secs,
        read_bytes: source.read_bytes.load(Ordering::Relaxed),
    })
}

/// One stored frame: a zstd frame or an LZ4 block and the size it decompresses to,
/// or raw bytes.
pub(crate) enum Unit {
    Zstd(Vec<u8>, usize),
    Lz4(Vec<u8>, usize),
    Raw(Vec<u8>),
}

impl Unit {
    fn stored_len(&self) -> u64 {
        match self {
            Unit::Zstd(f, _) | Unit::Lz4(f, _) | Unit::Raw(f) => f.len() as u64,
        }
    }
}

/// Compressed blocks as a [`BlockSource`]: each block found in its frame (a block's
/// own, or its pack) at an offset; a frame is decompressed when a block of it is
/// asked for, and the last [`KEEP`] frames each thread decompressed are kept (a later
/// version's DAG interleaves blocks from the packs of every earlier one, so a reader
/// keeping one pack would decompress a pack per block).
pub(crate) struct Frames {
    /// Which instance this is, so that a thread's kept frame is never another's.
    id: usize,
    index: HashMap<Cid, (usize, usize, usize)>,
    units: Vec<Unit>,
    dict: Option<Vec<u8>>,
    read_bytes: AtomicU64,
}

static NEXT_ID: AtomicUsize = AtomicUsize::new(1);

/// Frames each reading thread keeps decompressed (8 packs of 1 MiB: 8 MiB a thread).
pub const KEEP: usize = 8;

/// Per thread: the frames kept, most recent last, each as ((source id, frame), its
/// bytes), and a decompressor (with the source's dictionary, if any).
struct Kept {
    frames: Vec<((usize, usize), Vec<u8>)>,
    z: Option<(usize, zstd::bulk::Decompressor<'static>)>,
}

thread_local! {
    static KEPT: RefCell<Kept> = const {
        RefCell::new(Kept { frames: Vec::new(), z: None })
    };
}

impl Frames {
    fn new(
        index: HashMap<Cid, (usize, usize, usize)>,
        units: Vec<Unit>,
        dict: Option<Vec<u8>>,
    ) -> Frames {
        Frames {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            index,
            units,
            dict,
            read_bytes: AtomicU64::new(0),
        }
    }
}

impl BlockSource for Frames {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        let Some(&(unit, at, len)) = self.index.get(cid) else {
            return Ok(None);
        };
        let (frame, size, lz4) = match &self.units[unit] {
            Unit::Raw(b) => return Ok(Some(b[at..at + len].to_vec())),
            Unit::Zstd(f, size) => (f, *size, false),
            Unit::Lz4(f, size) => (f, *size, true),
        };
        let key = (self.id, unit);
        KEPT.with(|k| {
            let mut k = k.borrow_mut();
            let k = &mut *k;
            if let Some(i) = k.frames.iter().position(|f| f.0 == key) {
                let f = k.frames.remove(i);
                k.frames.push(f);
            } else {
                if k.z.as_ref().is_none_or(|z| z.0 != self.id) {
                    let z = match &self.dict {
                        Some(d) => zstd::bulk::Decompressor::with_dictionary(d)?,
                        None => zstd::bulk::Decompressor::new()?,
                    };
                    k.z = Some((self.id, z));
                }
                let z = &mut k.z.as_mut().expect("just set").1;
                let mut bytes = if k.frames.len() >= KEEP {
                    k.frames.remove(0).1
                } else {
                    Vec::new()
                };
                if lz4 {
                    bytes.resize(size, 0);
                    lz4::block::decompress_to_buffer(frame, Some(size as i32), &mut bytes)?;
                } else {
                    bytes.clear();
                    bytes.reserve(size);
                    z.decompress_to_buffer(frame, &mut bytes)?;
                }
                self.read_bytes.fetch_add(size as u64, Ordering::Relaxed);
                k.frames.push((key, bytes));
            }
            let bytes = &k.frames.last().expect("just kept").1;
            Ok(Some(bytes[at..at + len].to_vec()))
        })
        .map_err(StoreError::Io)
    }
}

/// `f` over `inputs` on every core, each thread with its own state from `init`; the
/// outputs in the inputs' order.
fn parallel<I: Sync, S, O: Send>(
    inputs: &[I],
    init: impl Fn() -> io::Result<S> + Sync,
    f: impl Fn(&mut S, &I) -> io::Result<O> + Sync,
) -> io::Result<Vec<O>> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per = inputs.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        let workers: Vec<_> = inputs
            .chunks(per)
            .map(|part| {
                let (init, f) = (&init, &f);
                s.spawn(move || -> io::Result<Vec<O>> {
                    let mut state = init()?;
                    part.iter().map(|i| f(&mut state, i)).collect()
                })
            })
            .collect();
        let mut out = Vec::with_capacity(inputs.len());
        for w in workers {
            out.extend(w.join().expect("a compression worker does not panic")?);
        }
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::{cid_for, BlockSink, RAW};

    /// Two "versions": 40 small text blocks, the second repeating 30 of them.
    fn sample() -> (MemoryStore, Vec<ItemBlocks>) {
        let mut store = MemoryStore::new();
        let mut items = vec![ItemBlocks::default(), ItemBlocks::default()];
        for v in 0..2u32 {
            for i in 0..40u32 {
                let i = if v == 1 && i < 30 { i } else { i + 100 * v };
                let text = format!("def function_{i}(x):\n    return x * {i} + {}\n", i % 7)
                    .repeat(20 + i as usize % 13);
                let cid = cid_for(RAW, Default::default(), text.as_bytes());
                if !store.contains(&cid) {
                    items[v as usize].new.push(cid);
                }
                items[v as usize].all.push(cid);
                store.put(&cid, text.as_bytes()).unwrap();
            }
        }
        (store, items)
    }

    /// A decode that reads every block each item needs and checks its bytes.
    fn check<'a>(
        store: &'a MemoryStore,
        items: &'a [ItemBlocks],
    ) -> impl Fn(&Frames) -> Result<f64, Error> + 'a {
        move |src: &Frames| {
            for cid in items.iter().flat_map(|i| &i.all) {
                assert_eq!(src.get(cid).unwrap().as_deref(), store.get_ref(cid));
            }
            assert_eq!(
                src.get(&cid_for(RAW, Default::default(), b"absent"))
                    .unwrap(),
                None
            );
            Ok(1.0)
        }
    }

    #[test]
    fn options_are_consistent() {
        let (store, items) = sample();
        let decode = check(&store, &items);
        let (c, sizes) = measure(&store, &items, 64 * 1024, 0.5, &decode).unwrap();
        assert_eq!(c.raw.bytes, store.total_bytes());
        assert_eq!(c.raw.frames, 50);
        assert_eq!((c.raw.decode_secs, c.block.decode_secs), (0.5, 1.0));
        assert!(c.block.bytes < c.raw.bytes, "{c:?}");
        assert_eq!(sizes.values().sum::<u64>(), c.block.bytes);
        // Packs see across blocks: smaller than block by block; LZ4 packs larger.
        assert!(c.pack.bytes < c.block.bytes, "{c:?}");
        assert!(c.pack.bytes < c.pack_lz4.bytes && c.pack_lz4.bytes < c.raw.bytes);
        assert_eq!(c.pack_lz4.frames, c.pack.frames);
        assert_eq!(c.pack_lz4.read_bytes, c.pack.read_bytes);
        assert!(c.pack.frames < c.block.frames);
        // Every block read was decompressed; packs are read whole.
        assert_eq!(c.block.read_bytes, c.raw.read_bytes);
        assert!(c.pack.read_bytes >= store.total_bytes() / 2, "{c:?}");
        let repack = packs(&store, &items, 64 * 1024, PackCodec::Zstd(19), &decode).unwrap();
        assert!(repack.bytes <= c.pack.bytes + 64, "{repack:?}");
        assert_eq!(repack.frames, c.pack.frames);
    }

    #[test]
    fn one_pack_per_block_when_packs_are_tiny() {
        let (store, items) = sample();
        for codec in [PackCodec::Zstd(ZSTD_LEVEL), PackCodec::Lz4] {
            let p = packs(&store, &items, 1, codec, &check(&store, &items)).unwrap();
            assert_eq!(p.frames, 50);
        }
    }

    #[test]
    fn a_dictionary_is_trained_on_many_small_blocks() {
        let mut store = MemoryStore::new();
        let mut item = ItemBlocks::default();
        for i in 0..800u32 {
            let text = format!(
                "import os\nfrom typing import Any\n\ndef handler_{i}(event: Any) -> int:\n    return os.getpid() + {}\n",
                i * 7
            )
            .repeat(3 + i as usize % 5);
            let cid = cid_for(RAW, Default::default(), text.as_bytes());
            item.new.push(cid);
            item.all.push(cid);
            store.put(&cid, text.as_bytes()).unwrap();
        }
        let items = [item];
        let (c, _) = measure(&store, &items, 1 << 20, 0.1, &check(&store, &items)).unwrap();
        let dict = c.dict.expect("a dictionary");
        assert!(dict.dict_bytes > 0 && dict.dict_bytes <= DICT_SIZE as u64);
        assert_eq!(dict.read_bytes, c.raw.read_bytes);
    }
}
