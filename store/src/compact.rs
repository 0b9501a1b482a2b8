//! `narfs store compact`: rewrite the block table's file without its free pages.
//!
//! LMDB never shrinks its file: pages a `gc` frees are reused by later writes, but the
//! file keeps its largest size. Compaction writes LMDB's compacted copy of the
//! environment (`MDB_CP_COMPACT`: pages in use only, renumbered) beside the file,
//! checks it as a store's file is checked on open (`View::check`: every page, every
//! count), syncs it, and renames it over `blocks/data.mdb`.
//!
//! What keeps other processes safe. A process that has the environment open maps
//! the old file and trusts LMDB's lock file (its reader table and last transaction),
//! which describes the old file: after the rename it would read and write the
//! unlinked file, losing its writes, or take the old lock file for the new one. So:
//! - compaction holds the store lock exclusively (no writer, no reader of a DAG);
//! - it refuses while any other process has the environment open: LMDB holds an
//!   `fcntl` lock on the first byte of `blocks/lock.mdb` in every such process
//!   (`narfs serve`, a running `encode` or `ls` alike), and that is what is probed;
//! - every narfs opening the environment holds `blocks/compact.lock` shared until
//!   LMDB has opened both files; compaction holds it exclusively from the probe until
//!   it has closed its own environment after the rename. So an opener waits, then
//!   opens the new file as the only process, and LMDB rebuilds the lock file for it.
//!
//! Out of reach: a process opening the environment without `compact.lock` (an older
//! narfs, or another LMDB program) between the probe and the rename.

use std::fs::OpenOptions;
use std::path::Path;
use std::sync::Arc;

use crate::lmdb_file::DataFile;
use crate::lock::LockGuard;
use crate::{Error, Store};

/// The lock a process holds while opening the environment in `blocks`.
const OPEN_LOCK: &str = "compact.lock";

/// What `narfs store compact` did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// The block table's file before, in bytes.
    pub bytes_before: u64,
    /// And after.
    pub bytes_after: u64,
}

/// Held shared while this process opens the environment in `blocks` (`Blocks::open`).
pub(crate) fn opening(blocks: &Path) -> Result<LockGuard, Error> {
    LockGuard::acquire(&blocks.join(OPEN_LOCK), false)
}

pub(crate) fn compact(store: Store) -> Result<CompactReport, Error> {
    let dir = store.dir().to_path_buf();
    let blocks_dir = dir.join("blocks");
    let data = blocks_dir.join("data.mdb");
    let _store_lock = LockGuard::acquire(&dir.join("lock"), true)?;
    let _open_lock = LockGuard::acquire(&blocks_dir.join(OPEN_LOCK), true)?;
    let lock_file = blocks_dir.join("lock.mdb");
    if crate::lock_file::open_elsewhere(&lock_file)? {
        return Err(Error::InUse { path: dir });
    }
    let Store { blocks, .. } = store;
    // A read-ahead job of this process's last decode holds the environment a moment.
    crate::read_ahead::wait_idle(&blocks);
    let Ok(blocks) = Arc::try_unwrap(blocks) else {
        // Another `Store` of this directory in this process keeps it open.
        return Err(Error::InUse { path: dir });
    };
    // LMDB walks its map to copy it: the file is checked whole first (invariant 8).
    blocks.read_txn()?.check_each(|_, _| {})?;
    let bytes_before = blocks.file_bytes()?;
    let tmp = blocks_dir.join("data.mdb.compact");
    crate::nofollow::not_a_link(&tmp)?;
    match std::fs::remove_file(&tmp) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(&tmp)(e)),
        _ => {}
    }
    let written = (|| {
        let mut f = crate::nofollow::open(
            &tmp,
            OpenOptions::new().read(true).write(true).create_new(true),
        )?;
        blocks.copy_compacted(&mut f)?;
        f.sync_all().map_err(Error::io(&tmp))?;
        drop(f);
        // The copy is checked as a store's file is: meta pages, every page, counts.
        let copy = DataFile::open(&tmp)?.ok_or_else(|| Error::NoBlockTable {
            path: tmp.clone(),
            what: "LMDB wrote an empty copy",
        })?;
        let newest = copy.metas()?.iter().map(|m| m.txnid).max().unwrap_or(0);
        copy.snapshot(newest)?.check(|_, _| {})?;
        std::fs::rename(&tmp, &data).map_err(Error::io(&data))?;
        std::fs::File::open(&blocks_dir)
            .and_then(|d| d.sync_all())
            .map_err(Error::io(&blocks_dir))
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    // Closed before the locks go: the next opener is then alone and rebuilds LMDB's
    // lock file for the new data file.
    blocks.close();
    written?;
    let bytes_after = std::fs::metadata(&data).map_err(Error::io(&data))?.len();
    Ok(CompactReport {
        bytes_before,
        bytes_after,
    })
}
