//! The embedded persistent blockstore: the default home of every encoded NAR.
//!
//! It is a crate of its own, not part of the encoder or the decoder, because both sides
//! need it: `encode` writes blocks and records roots into it, `decode` reads blocks and
//! resolves root names from it, and `verify`/`gc` walk it. Encoder and decoder meet only
//! in `core`, so the store depends on `core` alone.
//!
//! Engine: LMDB (through `heed`), chosen by measurement; see [`blocks`] and the store's
//! note in the report. One file per block (Kubo's flatfs, this store's first engine)
//! spent most of a fresh store's time creating inodes; redb rounds a 256 KiB value up
//! to 512 KiB and admits one process at a time. Layout of a store directory:
//!
//! ```text
//! blocks/data.mdb        the block table: CID -> tag byte + bytes (raw or zstd) or the
//!                        block's place in a pack; beside it the packs (`pack`), the
//!                        root records and their indexes (`root_table`)
//! blocks/lock.mdb        LMDB's reader table and mutexes (no data; see `lock_file`)
//! blocks/compact.lock    flock: held shared while opening the environment,
//!                        exclusive by `compact` while it replaces data.mdb
//! lock                   flock: writers and readers shared, `gc` exclusive
//! gc-tmp/                gc's sorted runs of live CIDs, while it runs
//! repack-tmp/            a grouped repack's sorted runs (its plan), while it runs
//! repack.lock            flock: held exclusive by a grouped repack (one at a time)
//! verify-checkpoint.json where an interrupted `verify` stopped (`--resume`)
//! ```
//!
//! Compression at rest ([`Compression`]; `pack`, the default, packs an item's new
//! blocks in write order into ~1 MiB packs, each one LZ4 block at acceleration 8
//! ([`LZ4_ACCELERATION`]); [`Store::repack`] rewrites them at zstd -19). Chosen by
//! `benches/disk.sh` on the large corpus (16 NARs of numpy, scipy and pandas; figures in
//! the README): packs store the same blocks in less than per-block compression (small
//! blocks compress with their neighbours' context) for fewer calls, and read a file's
//! leaves with one decompression per pack. LZ4 keeps a fresh store's encode near the
//! NarHash stream's speed (zstd -1 took half the CPU of a fresh store's encode); the
//! bytes it leaves on disk are what repack's -19 then gains, off the write path. Packs
//! written as zstd frames (every store before LZ4) read alike: a pack's first byte names
//! its codec.
//!
//! (Older stores kept one JSON file per record in `roots/` and sessions in `tmp/`;
//! `migrate` moves the records into the table when such a store is opened.)
//!
//! Atomicity: blocks are committed in LMDB transactions (atomic and durable: a
//! committed block always has its bytes, a killed writer leaves the last commit); a root
//! record is written in the commit holding the last new block of its DAG, or a later
//! one, never an earlier one. Concurrency: any number of processes read and write at once (LMDB writers
//! take turns, per batch); `gc` takes the lock exclusively, so it never runs while an
//! `encode` holds committed blocks that no root reaches yet.

mod blocks;

/// The size of the packs `repack` writes by default: 2 MiB. On the large corpus
/// (FastCDC 4/16/64, zstd -19, compacted, `benches/disk.sh`, docs/BENCHMARKS.md, packgroup)
/// packs grouped by the items using their blocks take 0.478 × Σ `zstd -19` of each
/// NAR at 2 MiB, 0.453 × at 4 MiB and 0.434 × at 8 MiB, while decoding every NAR
/// decompresses 1.11, 1.72 and 9.24 × its bytes: an item's groups interleave in its
/// DAG order, and the readers' 24 MiB cache holds fewer of the larger packs. (Written
/// in order, 2 MiB packs took 0.496 × and read 1.60 ×.) A block read decompresses at
/// most its pack.
pub const REPACK_BYTES: u64 = 2 << 20;
mod committer;
mod compact;
mod compression;
mod credit;
mod gathered;
mod gc;
mod held;
mod lmdb_file;
mod lock;
mod lock_file;
mod migrate;
mod nofollow;
mod pack;
mod pack_cache;
mod pack_order;
mod pack_table;
mod packer;
mod read_ahead;
mod record_form;
mod repack;
mod repack_drift;
mod repack_plan;
mod repack_reached;
mod root_table;
mod roots;
mod sink;
mod sorted_set;
mod uncache;
mod verify;
mod verify_packs;
mod walk;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use narfs_core::block::{BlockError, BlockSource, StoreError};
use narfs_core::Cid;

pub use blocks::BlockInfo;
use blocks::Blocks;
pub use compact::CompactReport;
pub use compression::{Codec, Compression, CompressionError, LZ4_ACCELERATION};
pub use gc::{GcReport, DEFAULT_MEMORY as DEFAULT_GC_MEMORY};
pub use lock::LockGuard;
pub use record_form::RecordError;
pub use repack::{Layout, RepackReport, Scope, MAX_AMPLIFICATION, PLAN_MEMORY};
pub use root_table::NarInfoCounts;
pub use roots::{NarInfoMeta, RootRecord, RootsVersion};
pub use sink::{Done, Session, StoreSink, Written};
pub use verify::{VerifyOptions, VerifyReport};
pub use walk::Stats;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory of the store could not be read or written.
    #[error("{}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A root record is not the JSON narfs writes.
    #[error("root record {}", path.display())]
    Record {
        /// The record's file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A record in the record table cannot be stored or read back.
    #[error("root record (key {key})")]
    StoredRecord {
        /// Its key in the table, in hex (empty for a record being stored).
        key: String,
        /// What is wrong.
        #[source]
        source: RecordError,
    },
    /// LMDB refused an operation on the block table.
    #[error("block table {}", path.display())]
    Lmdb {
        /// The block table's directory.
        path: PathBuf,
        /// LMDB's error (boxed: it is large).
        #[source]
        source: Box<heed::Error>,
    },
    /// The block table file is damaged; `problem` says where and how (read by checked
    /// `pread`, never mapped, so damage is an error and not a signal).
    #[error("{}: damaged block table: {problem}", path.display())]
    Damaged {
        /// The block table's data file.
        path: PathBuf,
        /// What is wrong, with the page or offset.
        problem: String,
    },
    /// LMDB's lock file, open in another process, is one LMDB cannot take as it is
    /// (checked before LMDB maps it: it follows the file's reader count unchecked).
    #[error("{}: damaged LMDB lock file (stop every narfs using the store, and it is rebuilt): {problem}", path.display())]
    DamagedLockFile {
        /// The lock file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A stored value is no block (a bad tag, or a zstd frame that does not decompress).
    #[error("{}: block {cid}: {problem}", path.display())]
    DamagedBlock {
        /// The block table's data file.
        path: PathBuf,
        /// The block's CID.
        cid: Box<Cid>,
        /// What is wrong with the value.
        problem: &'static str,
    },
    /// LMDB opened the block table but made no data file, or no table in it.
    #[error("{}: {what}", path.display())]
    NoBlockTable {
        /// The store's block directory.
        path: PathBuf,
        /// What is missing.
        what: &'static str,
    },
    /// A block was refused (bad CID, or bytes that do not hash to it).
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The store has no root record of that name.
    #[error("no root named {0:?} in the store")]
    UnknownRoot(String),
    /// A block writer thread failed (`0` says how).
    #[error("a block writer thread failed: {0}")]
    Writer(&'static str),
    /// A path inside the store is a symbolic link: the store follows none.
    #[error("{}: is a symbolic link inside the store; the store follows none", path.display())]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// A path of the store that must be a directory is something else.
    #[error("{}: is not a directory", path.display())]
    NotADirectory {
        /// The path.
        path: PathBuf,
    },
    /// A store file is longer than narfs ever writes it.
    #[error("{}: longer than {max} bytes", path.display())]
    TooLong {
        /// The file.
        path: PathBuf,
        /// The limit.
        max: u64,
    },
    /// `verify`'s checkpoint file is not the JSON it writes.
    #[error("{}: not a verify checkpoint (remove it, or run without --resume)", path.display())]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// `verify --resume` was asked for other roots than the checkpoint's run.
    #[error("{}: the checkpoint is of a run over other roots ({roots:?}); run without --resume to start over", path.display())]
    OtherCheckpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// The roots of the checkpoint's run (empty: the whole store).
        roots: String,
    },
    /// Compaction needs the store to itself: another process has it open.
    #[error("{}: the store is open in another process (a `narfs serve`, encode, import...); stop it first: compaction replaces the block table's file", path.display())]
    InUse {
        /// The store directory.
        path: PathBuf,
    },
    /// Garbage collection refused to run: what a damaged DAG reaches is unknown. The
    /// message names the first problem `verify` would report.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    pub(crate) fn io(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}

impl From<Error> for StoreError {
    fn from(e: Error) -> StoreError {
        match e {
            Error::Io { source, .. } if source.kind() != io::ErrorKind::Other => {
                StoreError::Io(source)
            }
            Error::Block(b) => StoreError::Block(b),
            other => StoreError::Backend(Box::new(other)),
        }
    }
}

/// Options for writing blocks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// zstd level for blocks (`None`: store raw). A compressed block is kept only when
    /// it is at least 1/8 smaller.
    pub zstd_level: Option<i32>,
    /// Packing threads (each checks whether blocks are stored and compresses them).
    pub writers: usize,
    /// Stored bytes a session puts into one write transaction (one durable commit).
    pub batch_bytes: u64,
    /// Uncompressed bytes of an item's new blocks compressed together into one pack
    /// (0: each block on its own; at most 16 MiB). Only with a `zstd_level`.
    pub pack_bytes: u64,
    /// What compresses packs (blocks stored alone stay zstd at `zstd_level`).
    pub pack_codec: Codec,
    /// liblz4's acceleration of LZ4 packs (1: its default; higher: faster, larger).
    pub lz4_acceleration: i32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            zstd_level: Some(1),
            writers: 2,
            batch_bytes: 4 << 20,
            pack_bytes: 1 << 20,
            pack_codec: Codec::Lz4,
            lz4_acceleration: LZ4_ACCELERATION,
        }
    }
}

/// An open store directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    options: Options,
    blocks: Arc<Blocks>,
}

impl Store {
    /// Opens the store at `dir`, creating it if needed, with the default options
    /// (`$NARFS_STORE_BATCH_BYTES` overrides [`Options::batch_bytes`]).
    ///
    /// ```
    /// use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
    /// use narfs_core::Encoding;
    /// use narfs_store::{RootRecord, Store};
    ///
    /// let dir = tempfile::tempdir()?;
    /// let store = Store::open(dir.path().join("store"))?;
    /// let cid = cid_for(RAW, HashAlg::Sha2_256, b"hello");
    /// let mut sink = store.sink()?;
    /// sink.put(&cid, b"hello")?;
    /// // The record is written only after the commit holding the root's block.
    /// let record = RootRecord::new(&cid, Encoding::UnixFs, &[0; 32], 5).with_name(Some("h".into()));
    /// sink.finish(Some(record))?;
    ///
    /// let again = Store::open(dir.path().join("store"))?;
    /// assert_eq!(again.get_block(&cid)?.as_deref(), Some(&b"hello"[..]));
    /// assert_eq!(again.find_roots("h")?[0].cid()?, cid);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, Error> {
        let mut options = Options::default();
        if let Some(n) = std::env::var("NARFS_STORE_BATCH_BYTES")
            .ok()
            .and_then(|v| v.parse().ok())
        {
            options.batch_bytes = n;
        }
        Store::open_with(dir, options)
    }

    pub fn open_with(dir: impl Into<PathBuf>, options: Options) -> Result<Store, Error> {
        let dir = dir.into();
        std::fs::create_dir_all(&dir).map_err(Error::io(&dir))?;
        for f in ["lock", "tmp"] {
            nofollow::not_a_link(&dir.join(f))?;
        }
        let blocks = Blocks::open(&dir.join("blocks"))?;
        migrate::flat_files(&dir.join("blocks"), &blocks, options.zstd_level)?;
        migrate::json_roots(&dir, &blocks)?;
        Ok(Store {
            dir,
            options,
            blocks,
        })
    }

    /// The default location: `$NARFS_STORE`, else the platform data directory
    /// (`$XDG_DATA_HOME/narfs`, `~/.local/share/narfs`; macOS:
    /// `~/Library/Application Support/narfs`).
    pub fn default_dir() -> Option<PathBuf> {
        let var = |k: &str| {
            std::env::var_os(k)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(p) = var("NARFS_STORE") {
            return Some(p);
        }
        if cfg!(target_os = "macos") {
            return var("HOME").map(|h| h.join("Library/Application Support/narfs"));
        }
        if let Some(p) = var("XDG_DATA_HOME") {
            return Some(p.join("narfs"));
        }
        var("HOME").map(|h| h.join(".local/share/narfs"))
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn options(&self) -> Options {
        self.options
    }

    /// This store, its write sessions storing new blocks as `c` says.
    pub fn with_compression(mut self, c: Compression) -> Store {
        self.options = c.apply(self.options);
        self
    }

    /// Takes the store lock shared (blocks while `gc` runs): hold it while reading a
    /// DAG that must not be collected under you. Writers take it themselves.
    pub fn lock_shared(&self) -> Result<LockGuard, Error> {
        LockGuard::acquire(&self.dir.join("lock"), false)
    }

    /// Starts a write session for one item (takes the lock shared until finished or
    /// dropped).
    pub fn sink(&self) -> Result<StoreSink, Error> {
        StoreSink::start(self, self.options.zstd_level)
    }

    /// [`sink`](Self::sink), its new blocks stored with `zstd_level` rather than the
    /// store's (`None`: as they are). A fetch stores raw by default: on a busy machine
    /// compressing every block costs more time than the transfer (reads take either).
    pub fn sink_with_zstd(&self, zstd_level: Option<i32>) -> Result<StoreSink, Error> {
        StoreSink::start(self, zstd_level)
    }

    /// Starts a write session that many items share ([`Session::sink`] per item): a
    /// commit carries the blocks and records of many items, so small items do not pay
    /// a sync each. Takes the lock shared until closed or dropped.
    pub fn session(&self) -> Result<Session, Error> {
        Session::start(self, self.options.zstd_level)
    }

    /// Records `rec` for a DAG whose blocks are all committed already (a write session
    /// records its root itself, in [`StoreSink::finish`]), in a transaction of its own.
    /// The caller checks the DAG is complete and holds [`lock_shared`](Self::lock_shared)
    /// from the commit of its blocks until this returns, so `gc` cannot take them in
    /// between.
    ///
    /// The record is stored sealed ([`RootRecord::sealed`]): its NarHash and NarSize
    /// must be ones the caller computed from the NAR this DAG decodes to, or checked
    /// against it (encode hashes its input, import checks the narinfo's, fetch and CAR
    /// import hash what they decode), because decoders take a sealed record's NarHash
    /// without hashing the NAR again (`narfs store verify` still does).
    pub fn record_root(&self, rec: &RootRecord) -> Result<(), Error> {
        let mut txn = self.blocks.write_txn()?;
        self.blocks.tables().add(&mut txn, rec, true)?;
        self.blocks.commit(txn)
    }

    /// Whether the block is stored (raw or compressed).
    pub fn contains(&self, cid: &Cid) -> Result<bool, Error> {
        let txn = self.blocks.read_txn()?;
        self.blocks.has(&txn, cid)
    }

    /// The block's bytes, decompressed, not verified (the caller verifies).
    pub fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        self.blocks.get(cid)
    }

    /// Every root record, sorted by name then CID.
    pub fn roots(&self) -> Result<Vec<RootRecord>, Error> {
        let mut out = Vec::new();
        self.each_root(|r| out.push(r))?;
        out.sort_by(|a, b| (&a.name, &a.root).cmp(&(&b.name, &b.root)));
        Ok(out)
    }

    /// Every root record to `f`, in the table's order (by root CID), one at a time.
    pub fn each_root(&self, mut f: impl FnMut(RootRecord)) -> Result<(), Error> {
        let snap = self.blocks.read_txn()?;
        snap.records()?.each(&mut f)
    }

    /// The version of the root records, to tell cheaply whether [`Store::roots`] would
    /// give anything new: equal `Some` versions mean no record was added or removed in
    /// between; `None` means "cannot tell, read them again".
    pub fn roots_version(&self) -> Option<RootsVersion> {
        let snap = self.blocks.read_txn().ok()?;
        let v = snap.records().ok()?.version().ok()?;
        Some(RootsVersion(v))
    }

    /// The records a NAME or CID designates: the one with that name, or else those
    /// with that root CID. Empty if none. O(log N).
    pub fn find_roots(&self, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
        let snap = self.blocks.read_txn()?;
        snap.records()?.find(name_or_cid)
    }

    /// The records of root `cid` (under any name, or none). O(log N).
    pub fn find_by_cid(&self, cid: &Cid) -> Result<Vec<RootRecord>, Error> {
        let snap = self.blocks.read_txn()?;
        snap.records()?.by_cid(cid)
    }

    /// The records with a narinfo whose store path (`/nix/store/HASH-…` or
    /// `/gnu/store/HASH-…`) has this hash part, as a binary cache is asked for it.
    /// O(log N).
    pub fn find_by_path_hash(&self, hash: &str) -> Result<Vec<RootRecord>, Error> {
        let snap = self.blocks.read_txn()?;
        snap.records()?.by_path_hash(hash)
    }

    /// How many records carry a narinfo, by store directory.
    pub fn narinfo_counts(&self) -> Result<NarInfoCounts, Error> {
        let snap = self.blocks.read_txn()?;
        snap.records()?.narinfo_counts()
    }

    /// Removes the records a NAME or CID designates (blocks stay until `gc`); returns them.
    pub fn remove_roots(&self, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
        let mut txn = self.blocks.write_txn()?;
        let removed = self.blocks.tables().remove(&mut txn, name_or_cid)?;
        self.blocks.commit(txn)?;
        Ok(removed)
    }

    /// Every stored block (CID, stored size, compressed or not), in key order.
    pub fn blocks(&self) -> Result<Vec<BlockInfo>, Error> {
        self.blocks.infos()
    }

    /// Roots, unique blocks, logical vs stored bytes.
    pub fn stats(&self) -> Result<Stats, Error> {
        walk::stats(self)
    }

    /// Re-hashes every block and checks that every root's DAG is complete.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        self.verify_with(|_, _| Ok(()))
    }

    /// [`verify`](Self::verify), then `check` on every root whose DAG is complete (in
    /// parallel); what it returns is a problem of that root. `narfs verify` passes the
    /// decoder's check of the NAR against the record's NarHash and NarSize: the store
    /// depends on no decoder, so the caller brings it.
    pub fn verify_with(
        &self,
        check: impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync,
    ) -> Result<VerifyReport, Error> {
        self.verify_some(&VerifyOptions::default(), check)
    }

    /// [`verify_with`](Self::verify_with), limited to some roots and what they reach,
    /// or resumed from the checkpoint of an interrupted run (see [`VerifyOptions`]).
    pub fn verify_some(
        &self,
        options: &VerifyOptions,
        check: impl Fn(&Store, &RootRecord) -> Result<(), String> + Sync,
    ) -> Result<VerifyReport, Error> {
        let _lock = self.lock_shared()?;
        verify::verify(self, options, &check)
    }

    /// Rewrites the packs below zstd `level`, or holding blocks `gc` deleted, into
    /// packs at `level` (19 by `narfs store repack`): a smaller store for the same
    /// blocks. Safe while others read and write; resumable. Packs of about
    /// [`REPACK_BYTES`]; see [`repack_to`](Self::repack_to).
    pub fn repack(&self, level: i32) -> Result<RepackReport, Error> {
        self.repack_to(level, REPACK_BYTES)
    }

    /// [`repack`](Self::repack) into packs of about `pack_bytes` (64 KiB..=16 MiB):
    /// larger packs compress better (zstd sees more context) but a block read
    /// decompresses its whole pack.
    pub fn repack_to(&self, level: i32, pack_bytes: u64) -> Result<RepackReport, Error> {
        self.repack_with(level, pack_bytes, Layout::default(), Scope::Full)
    }

    /// [`repack_to`](Self::repack_to) with the blocks laid out as `layout` says:
    /// grouped by the items using them (the default), or in write order; grouped,
    /// `scope` says whether the packs an earlier repack wrote are replanned too
    /// (`Full`) or kept while the layout's read amplification stays within a bound
    /// (`Incremental`).
    pub fn repack_with(
        &self,
        level: i32,
        pack_bytes: u64,
        layout: Layout,
        scope: Scope,
    ) -> Result<RepackReport, Error> {
        repack::repack(self, level, pack_bytes, layout, scope)
    }

    /// Has the packs of `root`'s recorded pack order (written by `repack`: the packs
    /// its decode reads, in first-use order) decompressed ahead of this process's
    /// readers, a few at a time, while it is decoded; nothing when it has none. A
    /// hint: a stale or damaged record costs decompressions, never a wrong block.
    pub fn will_decode(&self, root: &Cid) {
        let Ok(snap) = self.blocks.read_txn() else {
            return;
        };
        if let Some(packs) = pack_order::read(&snap, root) {
            drop(snap);
            read_ahead::follow(&self.blocks, *root, packs);
        }
    }

    /// Packs decompressed by this process's readers of the store, and their bytes
    /// (over the NAR bytes read: the read amplification of packs).
    pub fn packs_read(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.blocks.cache;
        (c.unpacked.load(Relaxed), c.unpacked_bytes.load(Relaxed))
    }

    /// Packs this process's readers decompressed themselves (not found cached nor
    /// being loaded ahead), and times a reader waited for a pack another thread was
    /// decompressing: how far the read-ahead ran behind the decoder.
    pub fn pack_waits(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.blocks.cache;
        (c.missed.load(Relaxed), c.waited.load(Relaxed))
    }

    /// Removes the blocks no root reaches (and an older store's abandoned `tmp/`
    /// sessions), under the exclusive lock (waits for running encodes to finish), its
    /// mark within [`DEFAULT_GC_MEMORY`] bytes.
    pub fn gc(&self) -> Result<GcReport, Error> {
        self.gc_within(DEFAULT_GC_MEMORY)
    }

    /// [`gc`](Self::gc), its mark's sort buffer and seen cache within `memory` bytes
    /// (more spills more sorted runs to `DIR/gc-tmp/`; the result is the same).
    pub fn gc_within(&self, memory: usize) -> Result<GcReport, Error> {
        let _lock = LockGuard::acquire(&self.dir.join("lock"), true)?;
        gc::gc(self, memory.max(1024))
    }

    /// Rewrites the block table's file without its free pages (after a large `gc`),
    /// and closes the store. Refused while another process has the store open.
    pub fn compact(self) -> Result<CompactReport, Error> {
        compact::compact(self)
    }
}

impl BlockSource for Store {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_block(cid)?)
    }

    fn get_many_verified(
        &self,
        cids: &[Cid],
    ) -> Vec<Result<Option<narfs_core::block::Verified>, StoreError>> {
        // One snapshot for the whole run, not one per block.
        match self.blocks.read_txn() {
            Ok(snap) => narfs_core::block::get_then_verify(&snap.reader(), cids),
            Err(_) => narfs_core::block::get_then_verify(self, cids),
        }
    }

    /// Decompresses the packs of `cids` ahead, on a rayon worker
    /// ([`read_ahead`](crate::read_ahead)).
    fn will_need(&self, cids: &[Cid]) {
        read_ahead::will_need(&self.blocks, cids);
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod root_tests;

#[cfg(test)]
mod test_blocks;
