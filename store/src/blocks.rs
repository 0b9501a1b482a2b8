//! The block table: every block of the store in one LMDB environment (`blocks/`), keyed
//! by the CID's binary form. A value is one tag byte and the block as stored: [`RAW`]
//! then the bytes, [`ZSTD`] then a zstd frame (kept only when it saves ≥ 1/8), or
//! [`PACKED`] and where the block is in a pack (several blocks in one zstd frame or
//! LZ4 block, see [`crate::pack`]).
//!
//! Why LMDB: a B+tree in one memory-mapped file, copy-on-write, so a committed
//! transaction is atomic and durable and a `kill -9` at any moment leaves the last
//! committed state (no repair step on open); several processes read and write one
//! environment at once (writers take turns through a robust process-shared mutex, which
//! the next writer recovers if its holder was killed); a large value takes whole 4 KiB
//! overflow pages (a 256 KiB block costs 1.6% more, like a file on ext4) while small
//! ones share pages. Compared with one file per block it saves an inode, a directory
//! entry and a rename per block, which dominated writing a fresh store.
//!
//! What LMDB does not give: surviving a damaged file. It follows whatever page numbers
//! and sizes its map holds, so a flipped byte or a cut file faults (SIGSEGV/SIGBUS). So
//! LMDB only writes here; reads go through [`crate::lmdb_file`] (pread, every page
//! checked), and the first write transaction of a process checks the whole file first.
//! Reads by pread instead of the map measured the same for decode and ~20% slower for
//! verify on a 1 GB NAR, with a resident size of 18 MB instead of 270 MB.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use heed::types::Bytes;
use heed::{Database, Env, EnvOpenOptions, RoTxn, RwTxn, WithoutTls};
use narfs_core::Cid;

use crate::lmdb_file::{DataFile, Meta, Value, View};
use crate::lock_file;
use crate::nofollow;
use crate::pack::{self, Slot, PACKED, SLOT_LEN};
use crate::pack_cache::Cache;
pub(crate) use crate::packer::{Packed, Packer};
use crate::root_table::{self, Tables};
use crate::Error;

/// Tag of a value holding the block's bytes as they are.
pub(crate) const RAW: u8 = 0;
/// Tag of a value holding a zstd frame of the block.
pub(crate) const ZSTD: u8 = 1;
/// The largest block narfs reads back (a sanity bound on decompression).
pub(crate) const MAX_BLOCK: u64 = narfs_core::block::MAX_BLOCK_SIZE as u64;
/// The longest value of the table: a tag byte and a raw block (a zstd frame is
/// stored only when smaller).
const MAX_VALUE: u64 = MAX_BLOCK + 1;
/// Address space reserved for the map (not disk: the file grows as blocks are added).
/// 4 TiB; LMDB refuses writes beyond it with "MDB_MAP_FULL".
const MAP_SIZE: usize = 4 << 40;
/// No snapshot was checked ahead ([`Blocks::check_ahead`]).
const NONE_CHECKED: u64 = u64::MAX;
/// Reader slots: one per concurrent read, across every process using the store.
pub(crate) const MAX_READERS: u32 = 1024;
/// Named trees beside the blocks (the record tables, see `root_table`, and the packs).
const MAX_TABLES: u32 = 8;

/// One stored block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub cid: Cid,
    /// Bytes stored (compressed size for compressed blocks, tag byte not counted).
    pub stored: u64,
    pub compressed: bool,
}

pub(crate) type Table = Database<Bytes, Bytes>;
/// A stored (key, value), the value read on demand through [`Snapshot::block`].
pub(crate) type Entry = (Vec<u8>, Value);

/// The bytes a stored value of `len` bytes takes for its block (its tag byte not
/// counted).
pub(crate) fn stored_len(len: u64) -> u64 {
    len.saturating_sub(1)
}

/// The open block table of one store directory, shared by every [`crate::Store`] of
/// that directory in this process (LMDB allows one environment per file per process).
/// LMDB writes it; every read goes through [`crate::lmdb_file`], by `pread`, checked.
#[derive(Debug)]
pub(crate) struct Blocks {
    env: Env<WithoutTls>,
    pub(crate) table: Table,
    file: DataFile,
    /// The meta page of the last snapshot read, while it stays the newest.
    meta: Mutex<Option<Meta>>,
    /// The whole file was checked in this process, so LMDB's writer may walk it.
    checked: AtomicBool,
    /// The snapshot (transaction id) [`Blocks::check_ahead`] checked whole, if any:
    /// a first write transaction on it needs no check of its own.
    checked_ahead: AtomicU64,
    /// The record tables, opened (created if needed) by the first write transaction.
    tables: OnceLock<Tables>,
    /// The packs' tree, opened (created if needed) by the first write transaction.
    packs: OnceLock<Table>,
    /// The items' pack orders (`pack_order`), opened like the packs' tree.
    pack_orders: OnceLock<Table>,
    /// Decompressed packs, shared by every reader of the store in this process.
    pub(crate) cache: Cache,
    /// Blocks the readers will need soon, whose packs are decompressed ahead.
    pub(crate) hints: crate::read_ahead::Hints,
}

/// A read transaction: LMDB's (it keeps writers off the snapshot's pages) and the
/// snapshot's pages, read by `pread`.
pub(crate) struct Snapshot<'e> {
    _txn: RoTxn<'e, WithoutTls>,
    view: View<'e>,
    cache: &'e Cache,
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
    /// process already has open there. The directory and LMDB's two files must not be
    /// symbolic links, and the data file's meta pages must agree with its size.
    pub(crate) fn open(dir: &Path) -> Result<Arc<Blocks>, Error> {
        nofollow::real_dir(dir)?;
        let data = dir.join("data.mdb");
        for f in [&data, &dir.join("lock.mdb")] {
            nofollow::not_a_link(f)?;
        }
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
        // Held until LMDB has opened both files: `compact` replaces the data file
        // under this lock held exclusively.
        let _opening = crate::compact::opening(dir)?;
        // Before LMDB maps the files: the data file's meta pages and size, and the
        // lock file's header if another process has it open (else LMDB rebuilds it).
        let first = DataFile::open(&data)?;
        lock_file::check(&dir.join("lock.mdb"), || match &first {
            Some(f) => Ok(f.metas()?.iter().map(|m| m.txnid).max().unwrap_or(0)),
            None => Ok(u64::MAX),
        })?;
        drop(first);
        let mut options = EnvOpenOptions::new().read_txn_without_tls();
        options
            .map_size(MAP_SIZE)
            .max_readers(MAX_READERS)
            .max_dbs(MAX_TABLES);
        // SAFETY: `MDB_NOMETASYNC` keeps LMDB's ordering (a commit's pages are synced
        // before its meta page is written; a power cut may undo the last commit, never
        // damage the file): it only leaves the meta page's flush to the next commit's
        // sync or to [`Blocks::sync`]. Every commit but a write session's is followed
        // by that sync ([`Blocks::commit`]), and a session tells an item durable only
        // after one ([`Blocks::commit_unsynced`]).
        unsafe {
            options.flags(heed::EnvFlags::NO_META_SYNC);
        }
        // SAFETY: the environment's files are only ever written through LMDB (by this
        // crate, in any process); LMDB's lock file coordinates those processes (its header
        // checked above when another process has it open). LMDB
        // reads the map only in write transactions, after the file was checked.
        let env = unsafe { options.open(&canonical) }.map_err(lmdb(dir))?;
        // Reader slots of killed processes would pin old pages forever.
        let _ = env.clear_stale_readers();
        let file = DataFile::open(&data)?.ok_or_else(|| Error::NoBlockTable {
            path: data.to_path_buf(),
            what: "LMDB created no file",
        })?;
        // The unnamed table always exists: opening it reads nothing of the tree.
        let txn = env.read_txn().map_err(lmdb(dir))?;
        let table: Table = env
            .open_database(&txn, None)
            .map_err(lmdb(dir))?
            .ok_or_else(|| Error::NoBlockTable {
                path: data.to_path_buf(),
                what: "no block table",
            })?;
        drop(txn);
        let blocks = Arc::new(Blocks {
            env,
            table,
            file,
            meta: Mutex::new(None),
            checked: AtomicBool::new(false),
            checked_ahead: AtomicU64::new(NONE_CHECKED),
            tables: OnceLock::new(),
            packs: OnceLock::new(),
            pack_orders: OnceLock::new(),
            cache: Cache::default(),
            hints: Default::default(),
        });
        open.push((canonical, Arc::downgrade(&blocks)));
        Ok(blocks)
    }

    pub(crate) fn err(&self) -> impl FnOnce(heed::Error) -> Error + '_ {
        lmdb(self.env.path())
    }

    /// The data file is damaged: `problem` says how.
    pub(crate) fn damaged(&self, problem: impl std::fmt::Display) -> Error {
        self.file.damaged(problem)
    }

    /// The newest snapshot, its meta page re-read only when a writer committed since.
    pub(crate) fn read_txn(&self) -> Result<Snapshot<'_>, Error> {
        // LMDB's transaction reads the meta pages from the map: they must be in the file.
        self.file.has_metas()?;
        let txn = self.env.read_txn().map_err(self.err())?;
        let id = txn.id() as u64;
        let mut cached = self.meta.lock().unwrap_or_else(|p| p.into_inner());
        let view = match *cached {
            Some(m) if m.txnid == id => self.file.view(m),
            _ => {
                let v = self.file.snapshot(id)?;
                *cached = Some(v.meta);
                v
            }
        };
        Ok(Snapshot {
            _txn: txn,
            view,
            cache: &self.cache,
        })
    }

    /// A write transaction: waits while another thread or process holds one. The
    /// first one of this process checks the whole file before LMDB walks it, and opens
    /// the record tables (creating them in a store that has none yet).
    pub(crate) fn write_txn(&self) -> Result<RwTxn<'_>, Error> {
        self.file.has_metas()?;
        if !self.checked.load(Ordering::Acquire) {
            let mut txn = self.env.write_txn().map_err(self.err())?;
            // A write transaction's id is its snapshot's plus one.
            let id = (txn.id() as u64).saturating_sub(1);
            if self.checked_ahead.load(Ordering::Acquire) != id {
                self.file.snapshot(id)?.check(|_, _| ())?;
            }
            let tables = Tables::create(&self.env, &mut txn).map_err(self.err())?;
            let packs = self
                .env
                .create_database(&mut txn, Some(pack::PACKS))
                .map_err(self.err())?;
            let orders = self
                .env
                .create_database(&mut txn, Some(crate::pack_order::TREE))
                .map_err(self.err())?;
            // LMDB keeps the tables' handles once this commits (nothing is written
            // when they existed already).
            txn.commit().map_err(self.err())?;
            self.sync()?;
            let _ = self.tables.set(tables);
            let _ = self.packs.set(packs);
            let _ = self.pack_orders.set(orders);
            self.checked.store(true, Ordering::Release);
        }
        self.env.write_txn().map_err(self.err())
    }

    /// Checks the whole file of the newest snapshot now, as the first write
    /// transaction of the process would (invariant 8), so that one skips its check if
    /// no commit came in between: a write session calls this as it starts, and the
    /// check (~25 ms for a store of 60,000 blocks, seconds for a large one) runs while
    /// the encoder works, not between its last block and its record. A snapshot's
    /// pages do not change while it is the newest (LMDB copies a page on write), and
    /// a commit in between makes a newer one: then the write transaction checks as
    /// ever. A damaged file is left for that check to report.
    pub(crate) fn check_ahead(&self) {
        if self.checked.load(Ordering::Acquire) {
            return;
        }
        let Ok(snap) = self.read_txn() else {
            return;
        };
        if snap.view.check(|_, _| ()).is_ok() {
            self.checked_ahead
                .store(snap.view.meta.txnid, Ordering::Release);
        }
    }

    /// The record tables, for a write transaction of [`Blocks::write_txn`].
    pub(crate) fn tables(&self) -> &Tables {
        self.tables
            .get()
            .expect("opened by the first write transaction")
    }

    /// The packs' tree, for a write transaction of [`Blocks::write_txn`].
    pub(crate) fn packs(&self) -> &Table {
        self.packs
            .get()
            .expect("opened by the first write transaction")
    }

    /// The items' pack orders' tree, for a write transaction of [`Blocks::write_txn`].
    pub(crate) fn pack_orders(&self) -> &Table {
        self.pack_orders
            .get()
            .expect("opened by the first write transaction")
    }

    /// Commits `txn`, durably: its pages are synced before its meta page is written,
    /// and the meta page after.
    pub(crate) fn commit(&self, txn: RwTxn<'_>) -> Result<(), Error> {
        txn.commit().map_err(self.err())?;
        self.sync()
    }

    /// Commits `txn` atomically, but durably only from the next sync on: that of the
    /// next commit that writes anything (LMDB syncs the file, this meta page with it,
    /// before it writes its own) or [`Blocks::sync`]. One flush per commit instead of
    /// two, for the write sessions' stream of commits.
    pub(crate) fn commit_unsynced(&self, txn: RwTxn<'_>) -> Result<(), Error> {
        txn.commit().map_err(self.err())
    }

    /// Makes every commit so far durable (`fdatasync` of the data file).
    pub(crate) fn sync(&self) -> Result<(), Error> {
        self.env.force_sync().map_err(self.err())
    }

    /// Whether `cid` is stored, as seen by `snap`.
    pub(crate) fn has(&self, snap: &Snapshot, cid: &Cid) -> Result<bool, Error> {
        Ok(snap.view.get(&cid.to_bytes())?.is_some())
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
        let tag = if block.compressed { ZSTD } else { RAW };
        // One search of the tree for both (`MDB_NOOVERWRITE`): a block stored already
        // is left as it is.
        let stored = self
            .table
            .get_or_put_reserved(txn, &key, block.bytes.len() + 1, |space| {
                space.write_all(&[tag])?;
                space.write_all(&block.bytes)
            })
            .map_err(self.err())?;
        Ok(stored.is_none())
    }

    /// Removes the block stored under `cid`; whether there was one. The one way a block
    /// leaves the table (gc's sweep, repack and the test hooks): a packed block's pack
    /// loses a live block, and goes with its last one.
    pub(crate) fn delete(&self, txn: &mut RwTxn<'_>, cid: &Cid) -> Result<bool, Error> {
        let key = cid.to_bytes();
        let slot = match self.table.get(txn, &key).map_err(self.err())? {
            Some(v) if v.first() == Some(&PACKED) => Slot::decode(v).ok(),
            _ => None,
        };
        if let Some(slot) = slot {
            self.release(txn, slot)?;
        }
        self.table.delete(txn, &key).map_err(self.err())
    }

    /// The block's bytes (decompressed), or `None` if it is not stored.
    pub(crate) fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        let snap = self.read_txn()?;
        match snap.view.get(&cid.to_bytes())? {
            Some(v) => snap.block(cid, &v).map(Some),
            None => Ok(None),
        }
    }

    /// What [`BlockInfo`] says of every stored block (reading each one's tag byte and
    /// overflow page header), in key order, one at a time; keys that are no CID are
    /// skipped.
    pub(crate) fn each_info(&self, mut f: impl FnMut(BlockInfo)) -> Result<(), Error> {
        let snap = self.read_txn()?;
        // Recent packs' (value length, size): a packed block's share of its pack. Bounded
        // (cleared when full): a miss costs one lookup in the packs' tree.
        let mut packs: std::collections::HashMap<u64, (u64, u64)> = Default::default();
        snap.view.scan_blocks(b"", &mut |key, value| {
            let head = snap.view.read_prefix(&value, MAX_VALUE, SLOT_LEN as u64)?;
            let Ok(cid) = Cid::try_from(key) else {
                return Ok(true);
            };
            let mut b = info(cid, value.len(), head.first().copied());
            if let Ok(slot) = Slot::decode(&head) {
                let (len, size) = match packs.get(&slot.pack) {
                    Some(&s) => s,
                    None => {
                        let s = crate::pack_table::sizes(snap.view, slot.pack)?.unwrap_or((0, 0));
                        if packs.len() >= 1 << 16 {
                            packs.clear();
                        }
                        *packs.entry(slot.pack).or_insert(s)
                    }
                };
                b.stored = (len * u64::from(slot.len)).checked_div(size).unwrap_or(0);
            }
            f(b);
            Ok(true)
        })
    }

    /// [`Blocks::each_info`] gathered (tests and small stores).
    pub(crate) fn infos(&self) -> Result<Vec<BlockInfo>, Error> {
        let mut out = Vec::new();
        self.each_info(|i| out.push(i))?;
        Ok(out)
    }

    /// Writes a compacted copy of the environment into `file` (LMDB's
    /// `MDB_CP_COMPACT`: the pages in use only, renumbered, no free pages). LMDB reads
    /// its map for this: the caller checks the whole file first (invariant 8).
    pub(crate) fn copy_compacted(&self, file: &mut std::fs::File) -> Result<(), Error> {
        self.env
            .copy_to_file(file, heed::CompactionOption::Enabled)
            .map_err(self.err())
    }

    /// Closes the environment, and returns once LMDB has let go of its files (its map
    /// and its `fcntl` lock on the lock file).
    pub(crate) fn close(self) {
        self.env.prepare_for_closing().wait();
    }

    /// Branch pages kept by lookups (tests).
    #[cfg(test)]
    pub(crate) fn branches_kept(&self) -> usize {
        self.file.branches_kept()
    }

    /// Bytes the environment's data file takes on disk (free pages included).
    pub(crate) fn file_bytes(&self) -> Result<u64, Error> {
        self.env.real_disk_size().map_err(self.err())
    }
}

impl Snapshot<'_> {
    /// The snapshot's record tables.
    pub(crate) fn records(&self) -> Result<root_table::Reader<'_>, Error> {
        root_table::Reader::new(self.view)
    }

    /// Walks the whole file, checking it ([`View::check`]), and calls `entry` on every
    /// (key, value) of the block table in key order, one at a time.
    pub(crate) fn check_each(&self, entry: impl FnMut(Vec<u8>, Value)) -> Result<(), Error> {
        self.view.check(entry)
    }

    /// Calls `f` on the (key, value) of the block table from the first key ≥ `from`
    /// on, in key order, until it returns false (pages checked as they are read).
    pub(crate) fn scan_blocks(
        &self,
        from: &[u8],
        f: &mut crate::lmdb_file::ScanFn<'_>,
    ) -> Result<(), Error> {
        self.view.scan_blocks(from, f)
    }

    /// Reads the snapshot's values; unlike the transaction, it may be shared by threads.
    pub(crate) fn reader(&self) -> Reader<'_> {
        Reader(self.view, self.cache)
    }

    /// The snapshot's pages, for the packs' reads.
    pub(crate) fn view(&self) -> View<'_> {
        self.view
    }

    /// The block `value` holds under `cid`, decompressed; damage is an error.
    pub(crate) fn block(&self, cid: &Cid, value: &Value) -> Result<Vec<u8>, Error> {
        self.reader().block(cid, value)
    }
}

/// The values of a [`Snapshot`], for as long as it lives.
#[derive(Clone, Copy)]
pub(crate) struct Reader<'s>(View<'s>, &'s Cache);

impl Reader<'_> {
    /// The block stored under `cid` in this snapshot, decompressed, not verified.
    pub(crate) fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        match self.0.get(&cid.to_bytes())? {
            Some(v) => self.block(cid, &v).map(Some),
            None => Ok(None),
        }
    }

    /// Whether `cid` is stored in this snapshot.
    pub(crate) fn has(&self, cid: &Cid) -> Result<bool, Error> {
        Ok(self.0.get(&cid.to_bytes())?.is_some())
    }

    /// The block `value` holds under `cid`, decompressed; damage is an error.
    pub(crate) fn block(&self, cid: &Cid, value: &Value) -> Result<Vec<u8>, Error> {
        // A value in its leaf page (every packed block's entry, small blocks) is used
        // where it lies: copying its tag and rest into new buffers first was two
        // allocations per block of a small-file NAR.
        if let Value::Inline(v) = value {
            let unpacked = match v.split_first() {
                Some((&RAW, bytes)) => Ok(bytes.to_vec()),
                Some((&ZSTD, bytes)) => decompress(bytes),
                Some((&PACKED, _)) => return self.packed(cid, v),
                _ => Err("unknown storage tag"),
            };
            return unpacked.map_err(|p| self.0.damaged_block(cid, p));
        }
        // The tag first, then the block's bytes read straight into their own buffer.
        let tag = self.0.read_prefix(value, MAX_VALUE, 1)?;
        let bytes = self.0.read_from(value, MAX_VALUE, 1)?;
        let unpacked = match tag.first() {
            Some(&RAW) => Ok(bytes),
            Some(&ZSTD) => decompress(&bytes),
            Some(&PACKED) => {
                let mut v = vec![PACKED];
                v.extend_from_slice(&bytes);
                return self.packed(cid, &v);
            }
            _ => Err("unknown storage tag"),
        };
        unpacked.map_err(|p| self.0.damaged_block(cid, p))
    }

    /// The packed block whose entry (its tag included) is `entry`: its pack
    /// decompressed (or found in the cache), the block cut out of it.
    fn packed(&self, cid: &Cid, entry: &[u8]) -> Result<Vec<u8>, Error> {
        let slot = Slot::decode(entry).map_err(|p| self.0.damaged_block(cid, p))?;
        let data = self
            .1
            .get::<Error>(slot.pack, slot.len as usize, &self.pack_loader(cid))?
            .ok_or_else(|| self.0.damaged_block(cid, "its pack is missing"))?;
        let (at, len) = (slot.offset as usize, slot.len as usize);
        // Into a recycled buffer where the decode's output gave one back: a new one
        // faulted its pages in again (narfs_core::leaf_buffers).
        let copy = |b: &[u8]| {
            let mut v = narfs_core::leaf_buffers::take(b.len());
            v.extend_from_slice(b);
            v
        };
        data.get(at..at + len).map(copy).ok_or_else(|| {
            self.0
                .damaged_block(cid, "a packed block lies outside its pack")
        })
    }

    /// Decompresses a pack of this snapshot into the buffer given (`None`: no such
    /// pack), for the cache; damage is an error of `cid` (the block read, or hinted).
    pub(crate) fn pack_loader<'c>(
        &self,
        cid: &'c Cid,
    ) -> impl Fn(u64, Vec<u8>, &mut zstd::zstd_safe::DCtx<'static>) -> Result<Option<Vec<u8>>, Error>
           + Sync
           + 'c
    where
        Self: 'c,
    {
        let view = self.0;
        move |id, buf, dctx| {
            let Some(value) = crate::pack_table::value(view, id)? else {
                return Ok(None);
            };
            pack::unpack_into(&value, dctx, buf)
                .map(|(_, data)| Some(data))
                // A pack read ahead fails silently: it is read again when asked for.
                .map_err(|p| view.damaged_block(cid, p))
        }
    }

    /// The pack the block stored under `cid` is in (`None`: not stored, not packed,
    /// or an entry that does not read).
    pub(crate) fn pack_of_cid(&self, cid: &Cid) -> Option<u64> {
        self.pack_of(&self.0.get(&cid.to_bytes()).ok()??)
    }

    /// The pack a value points into, if it is a packed block's.
    pub(crate) fn pack_of(&self, value: &Value) -> Option<u64> {
        let v = self.0.read_prefix(value, MAX_VALUE, SLOT_LEN as u64).ok()?;
        Slot::decode(&v).ok().map(|s| s.pack)
    }
}

/// A snapshot's blocks as a [`BlockSource`](narfs_core::block::BlockSource): a run of
/// blocks read through one snapshot.
impl narfs_core::block::BlockSource for Reader<'_> {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, narfs_core::block::StoreError> {
        Ok(Reader::get(self, cid)?)
    }
}

/// What [`BlockInfo`] says of a stored value of `len` bytes starting with `tag`.
fn info(cid: Cid, len: u64, tag: Option<u8>) -> BlockInfo {
    BlockInfo {
        cid,
        stored: stored_len(len),
        compressed: tag == Some(ZSTD) || tag == Some(PACKED),
    }
}

/// zstd-decompresses at most [`MAX_BLOCK`] bytes; more is an error, not an allocation.
///
/// Each thread keeps one decompression context: making one per block took a quarter
/// of a decode from the store. A frame that states its size (every frame narfs
/// writes) is decompressed in one call into a buffer of exactly that size.
pub(crate) fn decompress(frame: &[u8]) -> Result<Vec<u8>, &'static str> {
    thread_local! {
        static DCTX: std::cell::RefCell<Option<zstd::zstd_safe::DCtx<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let size = match zstd::zstd_safe::get_frame_content_size(frame) {
        Ok(Some(n)) if n <= MAX_BLOCK => n as usize,
        Ok(Some(_)) => return Err("a compressed block decompresses to more than 4 MiB"),
        // No size in the header: the streaming decoder, bounded as it reads.
        _ => return decompress_streaming(frame),
    };
    let mut out = Vec::with_capacity(size);
    let done = DCTX.with(|cell| {
        let mut slot = cell.borrow_mut();
        let dctx = slot.get_or_insert_with(zstd::zstd_safe::DCtx::create);
        dctx.decompress(&mut out, frame)
    });
    match done {
        Ok(n) if n == size => Ok(out),
        _ => Err("zstd frame does not decode"),
    }
}

/// The frame through a streaming decoder, at most [`MAX_BLOCK`] bytes out.
fn decompress_streaming(frame: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut out = Vec::new();
    zstd::Decoder::with_buffer(frame)
        .and_then(|d| d.take(MAX_BLOCK + 1).read_to_end(&mut out))
        .map_err(|_| "zstd frame does not decode")?;
    if out.len() as u64 > MAX_BLOCK {
        return Err("a compressed block decompresses to more than 4 MiB");
    }
    Ok(out)
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
