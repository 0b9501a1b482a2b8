//! The embedded persistent blockstore: the default home of every encoded NAR.
//!
//! It is a crate of its own, not part of the encoder or the decoder, because both sides
//! need it: `encode` writes blocks and records roots into it, `decode` reads blocks and
//! resolves root names from it, and `verify`/`gc` walk it. Encoder and decoder meet only
//! in `core`, so the store depends on `core` alone.
//!
//! Engine: sharded flat files, as Kubo's flatfs (chosen by measurement over redb 4.6,
//! see the store's note in the report: redb rounds each value up to a power-of-two page,
//! so 256 KiB blocks took twice their size on disk even after compaction, and it admits
//! one writing process at a time). Layout of a store directory:
//!
//! ```text
//! blocks/XY/<cid>        a block's bytes; XY = two characters near the end of the CID
//! blocks/XY/<cid>.zst    the same, zstd-compressed (kept only when it saves ≥ 1/8)
//! roots/<key>.json       one record per encoded NAR (root CID, NarHash, name, ...)
//! tmp/<session>/         blocks being written by one `encode`, not yet visible
//! lock                   flock: writers and readers shared, `gc` exclusive
//! ```
//!
//! Atomicity: a block is written under `tmp/`, the file system is synced, and only then
//! is it renamed to its CID, so a visible block always has its bytes; a root record is
//! written (and synced) only after every new block of its DAG is renamed and synced.
//! Concurrency: any number of processes write and read at once (rename is atomic, and
//! two writers of one CID write the same bytes); `gc` takes the lock exclusively, so it
//! never runs while an `encode` holds blocks that no root reaches yet.

mod blocks;
mod lock;
mod roots;
mod sink;
mod walk;

use std::io;
use std::path::{Path, PathBuf};

use narfs_core::block::{BlockError, BlockSource, StoreError};
use narfs_core::Cid;

pub use blocks::BlockInfo;
pub use lock::LockGuard;
pub use roots::{NarInfoMeta, RootRecord};
pub use sink::{StoreSink, Written};
pub use walk::{GcReport, Stats, VerifyReport};

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("root record {path}: {source}")]
    Record {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("no root named {0:?} in the store")]
    UnknownRoot(String),
    #[error("a block writer thread failed: {0}")]
    Writer(String),
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
    /// Writer threads (each creates, writes and compresses block files).
    pub writers: usize,
    /// New bytes a session holds in `tmp/` before it syncs and publishes them.
    pub batch_bytes: u64,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            zstd_level: Some(1),
            writers: 2,
            batch_bytes: 256 << 20,
        }
    }
}

/// An open store directory.
#[derive(Clone, Debug)]
pub struct Store {
    dir: PathBuf,
    options: Options,
}

impl Store {
    /// Opens the store at `dir`, creating it if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<Store, Error> {
        Store::open_with(dir, Options::default())
    }

    pub fn open_with(dir: impl Into<PathBuf>, options: Options) -> Result<Store, Error> {
        let dir = dir.into();
        for sub in ["blocks", "roots", "tmp"] {
            let p = dir.join(sub);
            std::fs::create_dir_all(&p).map_err(Error::io(&p))?;
        }
        Ok(Store { dir, options })
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

    /// Takes the store lock shared (blocks while `gc` runs): hold it while reading a
    /// DAG that must not be collected under you. Writers take it themselves.
    pub fn lock_shared(&self) -> Result<LockGuard, Error> {
        LockGuard::acquire(&self.dir.join("lock"), false)
    }

    /// Starts a write session (takes the lock shared until finished or dropped).
    pub fn sink(&self) -> Result<StoreSink, Error> {
        StoreSink::start(self)
    }

    /// Whether the block is stored (raw or compressed).
    pub fn contains(&self, cid: &Cid) -> bool {
        blocks::find(&self.dir, cid).is_some()
    }

    /// The block's bytes, decompressed, not verified (the caller verifies).
    pub fn get_block(&self, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
        blocks::read(&self.dir, cid)
    }

    /// Every root record, sorted by name then CID.
    pub fn roots(&self) -> Result<Vec<RootRecord>, Error> {
        roots::list(&self.dir)
    }

    /// The records a NAME or CID designates: those with that name, or else those with
    /// that root CID. Empty if none.
    pub fn find_roots(&self, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
        roots::find(&self.dir, name_or_cid)
    }

    /// Removes the records a NAME or CID designates (blocks stay until `gc`); returns them.
    pub fn remove_roots(&self, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
        roots::remove(&self.dir, name_or_cid)
    }

    /// Every stored block file (CID, stored size, compressed or not).
    pub fn blocks(&self) -> Result<Vec<BlockInfo>, Error> {
        blocks::list(&self.dir)
    }

    /// Roots, unique blocks, logical vs stored bytes.
    pub fn stats(&self) -> Result<Stats, Error> {
        walk::stats(self)
    }

    /// Re-hashes every block and checks that every root's DAG is complete.
    pub fn verify(&self) -> Result<VerifyReport, Error> {
        let _lock = self.lock_shared()?;
        walk::verify(self)
    }

    /// Removes the blocks no root reaches and abandoned `tmp/` sessions, under the
    /// exclusive lock (waits for running encodes to finish).
    pub fn gc(&self) -> Result<GcReport, Error> {
        let _lock = LockGuard::acquire(&self.dir.join("lock"), true)?;
        walk::gc(self)
    }
}

impl BlockSource for Store {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.get_block(cid)?)
    }
}

#[cfg(test)]
mod tests;
