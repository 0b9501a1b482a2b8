//! What an import tells as it goes ([`Observer`], [`Outcome`]) and at the end
//! ([`ImportReport`]).

use std::path::{Path, PathBuf};

use narfs_core::Cid;

use crate::EntryError;

/// What happened to one narinfo.
#[derive(Debug)]
#[non_exhaustive]
pub enum Outcome {
    /// Encoded and recorded.
    Imported {
        /// Its root.
        root: Cid,
        /// The NAR's size.
        nar_size: u64,
        /// Block bytes the store did not hold before.
        new_bytes: u64,
    },
    /// Already recorded with the same NarHash: skipped.
    Present {
        /// The root it is recorded with.
        root: Cid,
    },
    /// Not imported, for this reason; nothing was recorded.
    Failed(EntryError),
}

/// Told of the import's progress, from the worker threads.
pub trait Observer: Sync {
    /// The cache lists, or the caller gave, `total` narinfos.
    fn start(&self, _total: u64) {}
    /// Following `References` found `more` narinfos not seen before.
    fn found(&self, _more: u64) {}
    /// One narinfo is done.
    fn done(&self, _narinfo: &Path, _outcome: &Outcome) {}
}

/// An observer that is told nothing.
impl Observer for () {}

/// One store path that was not imported.
#[derive(Debug)]
pub struct Failure {
    /// Its narinfo file.
    pub narinfo: PathBuf,
    /// Why.
    pub error: EntryError,
}

/// What an import did.
#[derive(Debug, Default)]
pub struct ImportReport {
    /// Store paths encoded and recorded.
    pub imported: u64,
    /// Store paths skipped as already recorded.
    pub already_present: u64,
    /// Bytes of the NARs imported.
    pub nar_bytes: u64,
    /// Block bytes new to the store.
    pub new_bytes: u64,
    /// The store paths that failed, sorted by narinfo.
    pub failed: Vec<Failure>,
    /// Every store path of the cache the store now has a root for (imported or
    /// already present), sorted by store path.
    pub roots: Vec<Recorded>,
}

/// A store path of the cache and its root in the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The store path (the root's name in the store).
    pub store_path: String,
    /// Its root.
    pub root: Cid,
    /// Whether it was recorded before this import.
    pub present: bool,
}
