//! The block table: every block of the store in one LMDB environment (`blocks/`), keyed
//! by the CID's binary form. A value is one tag byte and the block as stored: [`RAW`]
//! then the bytes, or [`ZSTD`] then a zstd frame (kept only when it saves ≥ 1/8).
//!
//! Why LMDB: a B+tree in one memory-mapped file, copy-on-write, so a committed
//! transaction is atomic and durable and a `kill -9` at any moment leaves the last
//! committed state (no repair step on open); several processes read and write one
//! environment at once (writers take turns through a robust process-shared mutex, which
//! the next writer recovers if its holder was killed); a large value takes whole 4 KiB
//! overflow pages (a 256 KiB block costs 1.6% more, like a file on ext4) while small
//! ones share pages. Compared with one file per block it saves an inode, a directory
//! entry and a rename per block, which dominated writing a fresh store.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use narfs_core::Cid;

use crate::Error;

/// Tag of a value holding the block's bytes as they are.
pub(crate) const RAW: u8 = 0;
/// Tag of a value holding a zstd frame of the block.
pub(crate) const ZSTD: u8 = 1;
/// The largest block narfs reads back (a sanity bound on decompression).
pub(crate) const MAX_BLOCK: u64 = narfs_core::block::MAX_BLOCK_SIZE as u64;
/// Address space reserved for the map (not disk: the file grows as blocks are added).
/// 4 TiB; LMDB refuses writes beyond it with "MDB_MAP_FULL".
const MAP_SIZE: usize = 4 << 40;
/// Reader slots: one per concurrent read, across every process using the store.
const MAX_READERS: u32 = 1024;

/// One stored block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub cid: Cid,
    /// Bytes stored (compressed size for compressed blocks, tag byte not counted).
    pub stored: u64,
    pub compressed: bool,
}

type Table = Database<Bytes, Bytes>;
/// A stored (key, value), borrowed from a read transaction's snapshot.
pub(crate) type Entry<'t> = (&'t [u8], &'t [u8]);

/// The open block table of one store directory, shared by every [`crate::Store`] of
/// that directory in this process (LMDB allows one environment per file per process).
#[derive(Debug)]
pub(crate) struct Blocks {
    env: Env<WithoutTls>,
    table: Table,
}

fn lmdb(path: &Path) -> impl FnOnce(heed::Error) -> Error + '_ {
    move |e| Error::Lmdb {
        path: path.to_path_buf(),
        source: Box::new(e),
    }
}

/// Environments open in this process, by canonical path.
static OPEN: Mutex<Vec<(PathBuf, Weak<Blocks>)>> = Mutex::new(Vec::new());

impl Blocks {
    /// Opens (creating if needed) the block table in `dir`, or returns the one this
    /// process already has open there.
    pub(crate) fn open(dir: &Path) -> Result<Arc<Blocks>, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io(dir))?;
        let canonical = dir.canonicalize().map_err(Error::io(dir))?;
        let mut open = OPEN.lock().unwrap_or_else(|p| p.into_inner());
        open.retain(|(_, w)| w.strong_count() > 0);
        if let Some(b) = open
            .iter()
            .find(|(p, _)| *p == canonical)
            .and_then(|(_, w)| w.upgrade())
        {
            return Ok(b);
        }
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options.map_size(MAP_SIZE).max_readers(MAX_READERS);
        // SAFETY: the environment's files are only ever written through LMDB (by this
        // crate, in any process); LMDB's lock file coordinates those processes.
        let env = unsafe { options.open(&canonical) }.map_err(lmdb(dir))?;
        // Reader slots of killed processes would pin old pages forever.
        let _ = env.clear_stale_readers();
        let mut txn = env.write_txn().map_err(lmdb(dir))?;
        let table: Table = env.create_database(&mut txn, None).map_err(lmdb(dir))?;
        txn.commit().map_err(lmdb(dir))?;
        let blocks = Arc::new(Blocks { env, table });
        open.push((canonical, Arc::downgrade(&blocks)));
        Ok(blocks)
    }

    fn err(&self) -> impl FnOnce(heed::Error) -> Error + '_ {
        lmdb(self.env.path())
    }

    pub(crate) fn read_txn(&self) -> Result<RoTxn<'_, WithoutTls>, Error> {
        self.env.read_txn().map_err(self.err())
    }

    /// A write transaction: waits while another thread or process holds one.
    pub(crate) fn write_txn(&self) -> Result<RwTxn<'_>, Error> {
        self.env.write_txn().map_err(self.err())
    }

    pub(crate) fn commit(&self, txn: RwTxn<'_>) -> Result<(), Error> {
        txn.commit().map_err(self.err())
    }

    /// Whether `cid` is stored, as seen by `txn`.
    pub(crate) fn has(&self, txn: &RoTxn, cid: &Cid) -> Result<bool, Error> {
        let key = cid.to_bytes();
        Ok(self.table.get(txn, &key).map_err(self.err())?.is_some())
    }

    /// The stored value of `cid` (tag byte first), borrowed from the map.
    pub(crate) fn value<'t>(&self, txn: &'t RoTxn, cid: &Cid) -> Result<Option<&'t [u8]>, Error> {
        self.table.get(txn, &cid.to_bytes()).map_err(self.err())
    }

    /// Stores `block` under `cid` unless a block is there already (written straight
    /// into the table's page, behind its tag byte); whether it was new.
    pub(crate) fn put(
        &self,
        txn: &mut RwTxn<'_>,
        cid: &Cid,
        block: &Packed,
    ) -> Result<bool, Error> {
        let key = cid.to_bytes();
        if self.table.get(txn, &key).map_err(self.err())?.is_some() {
            return Ok(false);
        }
        let tag = if block.compressed { ZSTD } else { RAW };
        self.table
            .put_reserved(txn, &key, block.bytes.len() + 1, |space| {
                space.write_all(&[tag])?;
                space.write_all(&block.bytes)
            })
            .map_err(self.err())?;
        Ok(true)
    }

    pub(crate) fn delete(&self, txn: &mut RwTxn<'_>, cid: &Cid) -> Result<bool, Error> {
        self.table.delete(txn, &cid.to_bytes()).map_err(self.err())
    }

    /// The block's bytes (decompressed), or `None` if it is not stored.
    pub(crate) fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        let txn = self.read_txn()?;
        match self.value(&txn, cid)? {
            Some(v) => unpack(v).map(Some).map_err(|p| self.corrupt(cid, p)),
            None => Ok(None),
        }
    }

    pub(crate) fn corrupt(&self, cid: &Cid, problem: &str) -> Error {
        Error::Corrupt(format!(
            "{}: block {cid}: {problem}",
            self.env.path().display()
        ))
    }

    /// Every (key, value) of the table, borrowed from `txn`'s snapshot, in key order.
    pub(crate) fn entries<'t>(
        &self,
        txn: &'t RoTxn<'_, WithoutTls>,
    ) -> Result<Vec<Entry<'t>>, Error> {
        let mut out = Vec::new();
        for item in self.table.iter(txn).map_err(self.err())? {
            out.push(item.map_err(self.err())?);
        }
        Ok(out)
    }

    /// Bytes the environment's data file takes on disk (free pages included).
    pub(crate) fn file_bytes(&self) -> Result<u64, Error> {
        self.env.real_disk_size().map_err(self.err())
    }
}

/// What [`BlockInfo`] says of a stored value.
pub(crate) fn info(cid: Cid, value: &[u8]) -> BlockInfo {
    BlockInfo {
        cid,
        stored: value.len().saturating_sub(1) as u64,
        compressed: value.first() == Some(&ZSTD),
    }
}

/// The block's bytes from its stored value; the problem if the value is malformed.
pub(crate) fn unpack(value: &[u8]) -> Result<Vec<u8>, &'static str> {
    match value.split_first() {
        Some((&RAW, bytes)) => Ok(bytes.to_vec()),
        Some((&ZSTD, frame)) => decompress(frame),
        _ => Err("unknown storage tag"),
    }
}

/// zstd-decompresses at most [`MAX_BLOCK`] bytes; more is an error, not an allocation.
pub(crate) fn decompress(frame: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    zstd::Decoder::with_buffer(frame)
        .and_then(|d| d.take(MAX_BLOCK + 1).read_to_end(&mut out))
        .map_err(|_| "zstd frame does not decode")?;
    if out.len() as u64 > MAX_BLOCK {
        return Err("a compressed block decompresses to more than 4 MiB");
    }
    Ok(out)
}

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
    buf: Vec<u8>,
}

impl Packer {
    /// `level: None` stores every block raw.
    pub(crate) fn new(level: Option<i32>) -> Packer {
        Packer {
            zstd: level.and_then(|l| zstd::bulk::Compressor::new(l).ok()),
            buf: Vec::new(),
        }
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

/// Compresses `data` into `buf`; whether it saved at least 1/8.
fn fits(z: &mut zstd::bulk::Compressor<'static>, data: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
    match z.compress_to_buffer(data, buf) {
        Ok(n) => n <= data.len() - data.len() / 8,
        Err(_) => false,
    }
}

/// Test hooks: damage the store behind LMDB's back the way a bug or a bad disk would.
#[cfg(test)]
pub(crate) fn overwrite(blocks: &Blocks, cid: &Cid, value: Option<&[u8]>) {
    let mut txn = blocks.write_txn().unwrap();
    match value {
        Some(v) => blocks.table.put(&mut txn, &cid.to_bytes(), v).unwrap(),
        None => {
            blocks.delete(&mut txn, cid).unwrap();
        }
    }
    blocks.commit(txn).unwrap();
}
