//! Runs one strategy over the corpus: encodes every NAR, in order, into one
//! in-memory block set shared by the whole corpus (so later versions dedup against
//! earlier ones), decodes each NAR back from it (verifying every block) and checks the
//! bytes are the NAR's, then measures the block set under each compression option
//! ([`crate::compress`]) and the update cost of each item ([`crate::update`]). Encode
//! and decode are timed on NAR bytes already in memory; reading files and the
//! compression passes are not part of either time (they have their own).

use std::collections::HashSet;
use std::fs::File;
use std::io::{self, Read, Write};
use std::time::Instant;

use narfs_core::block::{BlockSink, BlockSource, MemoryStore, StoreError, RAW};
use narfs_core::Cid;
use narfs_decoder::{decode_nar, fetch, DecodeError, FileReader, Limits};
use narfs_encoder::chunker::{ChunkBuffer, ChunkError};
use narfs_encoder::file::{Counts, FileTree};
use narfs_encoder::{encode, Layout};

use crate::compress::{self, Frames, ItemBlocks};
use crate::corpus::Item;
use crate::report::StrategyResult;
use crate::update::{self, Update};
use crate::{Difference, Error, Strategy};

/// zstd level of the nar-zstd baseline and of the per-block compression: zstd's
/// default, as narfs's fallback uses.
pub const ZSTD_LEVEL: i32 = narfs_encoder::fallback::ZSTD_LEVEL;

/// Called with the bytes of each NAR as it is done.
pub(crate) type Progress<'a> = &'a mut dyn FnMut(u64);

/// Reads a corpus NAR into `buf`.
pub(crate) fn load(item: &Item, buf: &mut Vec<u8>) -> Result<(), Error> {
    buf.clear();
    File::open(&item.path)
        .and_then(|mut f| f.read_to_end(buf))
        .map_err(|source| Error::ReadNar {
            path: item.path.clone(),
            source,
        })?;
    Ok(())
}

/// The zstd size of a whole NAR, as the nar-zstd baseline stores it.
pub(crate) fn zstd_size(nar: &[u8]) -> Result<u64, Error> {
    Ok(zstd::bulk::compress(nar, ZSTD_LEVEL)
        .map_err(Error::Zstd)?
        .len() as u64)
}

/// A DAG strategy's block set, kept after its run so that the slow `repack` option
/// can be measured on the one strategy that needs it.
pub(crate) struct Blocks {
    pub(crate) store: MemoryStore,
    pub(crate) items: Vec<ItemBlocks>,
    pub(crate) roots: Vec<Cid>,
}

/// Runs `strategy` over `items`, packing at `pack_size`; a DAG strategy's blocks come
/// back too.
pub(crate) fn run(
    strategy: Strategy,
    items: &[Item],
    deltas: &[Option<u64>],
    pack_size: usize,
    progress: Progress<'_>,
) -> Result<(StrategyResult, Option<Blocks>), Error> {
    match strategy.layout() {
        None => Ok((run_zstd(strategy, items, progress)?, None)),
        Some(layout) => {
            let (r, b) = run_dag(strategy, &layout, items, deltas, pack_size, progress)?;
            Ok((r, Some(b)))
        }
    }
}

fn run_zstd(
    strategy: Strategy,
    items: &[Item],
    progress: Progress<'_>,
) -> Result<StrategyResult, Error> {
    let mut r = StrategyResult::new(strategy);
    let mut nar = Vec::new();
    let mut seen = HashSet::new();
    for item in items {
        load(item, &mut nar)?;
        let t = Instant::now();
        let z = zstd::bulk::compress(&nar, ZSTD_LEVEL).map_err(Error::Zstd)?;
        let encode_time = t.elapsed();
        let t = Instant::now();
        // The seed baseline: one zstd frame per NAR, not a DAG, so no narfs decode here.
        let back = zstd::bulk::decompress(&z, nar.len()).map_err(Error::Zstd)?;
        let mut check = CheckWriter::new(&nar);
        // A refused write is recorded; `finish` reports it.
        let _ = check.write_all(&back);
        check.finish().map_err(|source| Error::Mismatch {
            item: item.name.clone(),
            strategy,
            source,
        })?;
        let decode_time = t.elapsed();
        let size = z.len() as u64;
        r.stored_bytes += size;
        r.stored_zstd_bytes += size;
        r.blocks += 1;
        r.put_blocks += 1;
        r.put_bytes += size;
        r.push_item(item, None, size, 1, encode_time, decode_time);
        // An update is the whole compressed NAR again.
        if !seen.insert(item.package.clone()) {
            r.items.last_mut().expect("just pushed").update = Some(Update {
                blocks: 1,
                raw_bytes: item.size,
                block_zstd_bytes: size,
                car_zstd_bytes: size,
                delta_bytes: size,
            });
        }
        progress(item.size);
    }
    Ok(r)
}

fn run_dag(
    strategy: Strategy,
    layout: &Layout,
    items: &[Item],
    deltas: &[Option<u64>],
    pack_size: usize,
    progress: Progress<'_>,
) -> Result<(StrategyResult, Blocks), Error> {
    let mut r = StrategyResult::new(strategy);
    let mut store = Recording::default();
    let mut roots = Vec::with_capacity(items.len());
    let mut blocks = Vec::with_capacity(items.len());
    let mut nar = Vec::new();
    let mut tree = FileTree::new(layout.hash, layout.max_links);
    let mut chunks = ChunkBuffer::default();
    for item in items {
        load(item, &mut nar)?;
        let (bytes0, blocks0) = (store.store.total_bytes(), store.store.len());
        let t = Instant::now();
        let root = match strategy {
            Strategy::File(_) => {
                encode(&nar[..], layout, &mut store, None)
                    .map_err(|source| Error::Encode {
                        item: item.name.clone(),
                        strategy,
                        source: Box::new(source),
                    })?
                    .root
            }
            _ => encode_stream(&nar, layout, &mut tree, &mut chunks, &mut store).map_err(
                |source| Error::Store {
                    item: item.name.clone(),
                    strategy,
                    source: Box::new(source),
                },
            )?,
        };
        let encode_time = t.elapsed();
        let t = Instant::now();
        decode_one(strategy, &store.store, &root, item, &nar)?;
        let decode_time = t.elapsed();
        let new_bytes = store.store.total_bytes() - bytes0;
        let new_blocks = (store.store.len() - blocks0) as u64;
        blocks.push(store.take_item());
        roots.push(root);
        r.push_item(
            item,
            Some(&root),
            new_bytes,
            new_blocks,
            encode_time,
            decode_time,
        );
        progress(item.size);
    }
    r.put_blocks = store.put.blocks;
    r.put_bytes = store.put.bytes;
    r.put_leaves = store.put_leaves.blocks;
    r.put_leaf_bytes = store.put_leaves.bytes;
    r.stored_bytes = store.store.total_bytes();
    r.blocks = store.store.len() as u64;
    for (cid, data) in store.store.iter() {
        if cid.codec() == RAW {
            r.leaves += 1;
            r.leaf_bytes += data.len() as u64;
        }
    }
    let decode = |source: &Frames| decode_all(strategy, source, items, &roots);
    let (compression, sizes) =
        compress::measure(&store.store, &blocks, pack_size, r.decode_secs, &decode)?;
    r.stored_zstd_bytes = compression.block.bytes;
    r.compress_secs = compression.block.compress_secs;
    r.compression = Some(compression);
    let updates = update::measure(items, &roots, &blocks, &store.store, &sizes, deltas)
        .map_err(Error::Zstd)?;
    for (i, u) in r.items.iter_mut().zip(updates) {
        i.update = u;
    }
    Ok((
        r,
        Blocks {
            store: store.store,
            items: blocks,
            roots,
        },
    ))
}

/// Decodes `item` (whose NAR is `nar`) from `source`, every block verified, and
/// checks it is the NAR.
fn decode_one<S: BlockSource + Sync>(
    strategy: Strategy,
    source: &S,
    root: &Cid,
    item: &Item,
    nar: &[u8],
) -> Result<(), Error> {
    let limits = Limits::default();
    let mut check = CheckWriter::new(nar);
    let decoded = match strategy {
        Strategy::File(_) => decode_nar(source, root, &mut check, &limits).map(drop),
        _ => read_file(source, root, limits, &mut check),
    };
    let mismatch = |source| Error::Mismatch {
        item: item.name.clone(),
        strategy,
        source,
    };
    if let Err(source) = decoded {
        // A write the check refused stops the decode: the difference is the cause.
        return Err(match check.refused() {
            Some(d) => mismatch(d),
            None => Error::Decode {
                item: item.name.clone(),
                strategy,
                source,
            },
        });
    }
    check.finish().map_err(mismatch)
}

/// Decodes every item from `source`, checked; the seconds decoding took (reading
/// the NARs to check against is not counted).
pub(crate) fn decode_all<S: BlockSource + Sync>(
    strategy: Strategy,
    source: &S,
    items: &[Item],
    roots: &[Cid],
) -> Result<f64, Error> {
    let mut nar = Vec::new();
    let mut secs = 0.0;
    for (item, root) in items.iter().zip(roots) {
        load(item, &mut nar)?;
        let t = Instant::now();
        decode_one(strategy, source, root, item, &nar)?;
        secs += t.elapsed().as_secs_f64();
    }
    Ok(secs)
}

/// The whole NAR as one UnixFS file: chunks of the stream under balanced `File` nodes.
fn encode_stream(
    nar: &[u8],
    layout: &Layout,
    tree: &mut FileTree,
    chunks: &mut ChunkBuffer,
    sink: &mut Recording,
) -> Result<Cid, StoreError> {
    let mut counts = Counts::default();
    let chunked = layout
        .chunker
        .chunk(nar, chunks, |c| tree.leaf(c, sink, &mut counts));
    match chunked {
        Ok(_) => {}
        // Reading a slice does not fail; the conversion is for the type's sake.
        Err(ChunkError::Read(e)) => return Err(StoreError::Io(e)),
        Err(ChunkError::Consumer(e)) => return Err(e),
    }
    Ok(tree.finish(false, sink, &mut counts)?.cid)
}

/// Reads the file DAG under `root` (verifying every block) into `out`, stopping at
/// the first write `out` refuses (it records why).
fn read_file<S: BlockSource + Sync>(
    store: &S,
    root: &Cid,
    limits: Limits,
    out: &mut CheckWriter<'_>,
) -> Result<(), DecodeError> {
    let block = fetch(store, root, "")?;
    let mut file = FileReader::open(store, root, block, "", limits)?;
    loop {
        let bytes = file.next_bytes()?;
        if bytes.is_empty() {
            return Ok(());
        }
        if out.write_all(bytes).is_err() {
            return Ok(());
        }
    }
}

/// A memory store that also counts every `put`, leaves apart, repeats included, and
/// records the blocks of the item being encoded.
#[derive(Default)]
struct Recording {
    store: MemoryStore,
    put: Counts,
    put_leaves: Counts,
    item: ItemBlocks,
    item_seen: HashSet<Cid>,
}

impl Recording {
    /// The blocks of the item just encoded; the next starts empty.
    fn take_item(&mut self) -> ItemBlocks {
        self.item_seen.clear();
        std::mem::take(&mut self.item)
    }
}

impl BlockSink for Recording {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), StoreError> {
        if self.item_seen.insert(*cid) {
            self.item.all.push(*cid);
            if !self.store.contains(cid) {
                self.item.new.push(*cid);
            }
        }
        self.put.blocks += 1;
        self.put.bytes += data.len() as u64;
        if cid.codec() == RAW {
            self.put_leaves.blocks += 1;
            self.put_leaves.bytes += data.len() as u64;
        }
        self.store.put(cid, data)
    }
}

/// A writer that checks what is written is exactly `expected`, without keeping it.
/// It refuses the first write that differs and remembers why.
pub(crate) struct CheckWriter<'a> {
    expected: &'a [u8],
    at: usize,
    refused: Option<Difference>,
}

impl<'a> CheckWriter<'a> {
    pub(crate) fn new(expected: &'a [u8]) -> Self {
        CheckWriter {
            expected,
            at: 0,
            refused: None,
        }
    }

    /// The difference a write was refused for, if one was.
    pub(crate) fn refused(&self) -> Option<Difference> {
        self.refused
    }

    /// Fails unless all of `expected`, and nothing else, was written.
    pub(crate) fn finish(&self) -> Result<(), Difference> {
        if let Some(d) = self.refused {
            return Err(d);
        }
        if self.at != self.expected.len() {
            return Err(Difference::Length {
                decoded: self.at as u64,
                original: self.expected.len() as u64,
            });
        }
        Ok(())
    }
}

impl Write for CheckWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(d) = self.refused {
            return Err(io::Error::other(d));
        }
        let end = self.at + buf.len();
        if end > self.expected.len() || self.expected[self.at..end] != *buf {
            let first = buf
                .iter()
                .zip(self.expected.get(self.at..).unwrap_or_default())
                .position(|(a, b)| a != b)
                .unwrap_or(self.expected.len().saturating_sub(self.at));
            let d = Difference::At((self.at + first) as u64);
            self.refused = Some(d);
            return Err(io::Error::other(d));
        }
        self.at = end;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_writer_catches_differences() {
        let mut w = CheckWriter::new(b"hello world");
        w.write_all(b"hello ").unwrap();
        assert!(w.finish().is_err(), "short output accepted");
        let err = w.write_all(b"wOrld").unwrap_err().to_string();
        assert!(err.contains("byte 7"), "{err}");
        let mut w = CheckWriter::new(b"ab");
        assert!(w.write_all(b"abc").is_err(), "long output accepted");
        let mut w = CheckWriter::new(b"ab");
        w.write_all(b"ab").unwrap();
        w.finish().unwrap();
    }
}
