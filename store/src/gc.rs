//! `gc`: delete the blocks no root reaches, in memory bounded whatever the store
//! holds (10⁷ blocks and more).
//!
//! - **Mark**: every root's DAG is walked from one snapshot (`walk::walk_dag`); each
//!   CID reached goes into an external sort (`sorted_set`) that spills sorted runs to
//!   `DIR/gc-tmp/` when its buffer is full, and is merged into one file of distinct
//!   sorted CIDs: the live set. Only dag-pb nodes are read (their links are needed);
//!   leaves are not looked up one by one.
//! - **Check**: the live set is merge-joined with the block table's key-order scan
//!   (both sorted by the CID's bytes). A live CID the table lacks is a missing block:
//!   gc then refuses and deletes nothing, as it does for any problem of the walk (what
//!   an incomplete or corrupt DAG reaches is unknown).
//! - **Sweep**: the same join again; every table key not in the live set is deleted,
//!   [`BATCH`] blocks per write transaction through `Blocks::delete`, the scan resumed
//!   after the last key seen from a fresh snapshot (no snapshot is held across a
//!   commit, so freed pages are reusable at once).
//!
//! Memory: the sort buffer and the walk's [`walk::Seen`] cache share the budget
//! (`memory`), plus one read buffer per run being merged, one batch of dead keys and
//! the walk's stack (links of the nodes on one path). Disk: ~40 bytes per live CID in
//! `gc-tmp/`, removed at the end (and at the start of the next gc, if killed).
//!
//! Concurrent writers: gc holds the store lock exclusively from before the mark until
//! after the sweep. Every writer (`Session`, `StoreSink`, `record_root`'s callers)
//! holds it shared from before its first block until its root is recorded, so no
//! block can be committed, nor a root recorded, between mark and sweep: a root an
//! import adds is either in the snapshot the mark walks or written after gc ends.
//! A killed sweep leaves some dead blocks deleted and the rest for the next gc.

use std::path::{Path, PathBuf};

use narfs_core::{error_chain, Cid};

use crate::blocks::stored_len;
use crate::sorted_set::{SortedSet, Spiller};
use crate::walk::{self, Leaves, Problems, Seen};
use crate::{Error, Store};

/// Blocks deleted per write transaction (a few in tests, so that they cross batches).
const BATCH: usize = if cfg!(test) { 3 } else { 10_000 };
/// Table entries scanned from one snapshot before the next is taken.
const SCAN_CHUNK: usize = if cfg!(test) { 5 } else { 100_000 };
/// The default memory budget of mark (sort buffer and seen cache).
pub const DEFAULT_MEMORY: usize = 64 << 20;

/// What `narfs gc` removed and kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    pub kept_blocks: u64,
    pub removed_blocks: u64,
    pub removed_bytes: u64,
    /// Abandoned write sessions (of killed encoders) removed from `tmp/`.
    pub removed_sessions: u64,
    /// Distinct CIDs the roots reach.
    pub live_blocks: u64,
    /// Sorted runs the mark spilled to disk (1: the live set fit in its buffer).
    pub spilled_runs: u64,
}

/// A spill directory of the store (`gc-tmp/`, `repack-tmp/`), emptied on creation
/// (of what a killed run left) and removed on drop.
pub(crate) struct SpillDir(pub(crate) PathBuf);

impl SpillDir {
    pub(crate) fn create(store: &Path, name: &str) -> Result<SpillDir, Error> {
        let dir = store.join(name);
        crate::nofollow::real_dir(&dir)?;
        crate::nofollow::clear_dir(&dir)?;
        Ok(SpillDir(dir))
    }
}

impl Drop for SpillDir {
    fn drop(&mut self) {
        let _ = crate::nofollow::clear_dir(&self.0);
        let _ = std::fs::remove_dir(&self.0);
    }
}

/// gc under a held exclusive store lock, mark within `memory` bytes.
pub(crate) fn gc(store: &Store, memory: usize) -> Result<GcReport, Error> {
    let spill = SpillDir::create(store.dir(), "gc-tmp")?;
    let mut problems = Problems::new(100);
    let live = mark(store, &spill.0, memory, &mut problems)?;
    if problems.is_empty() {
        // A live CID the table lacks: the join says which, not which root.
        join(store, &live, false, &mut |cid| {
            problems.push(format!("block {cid} is missing (reached from a root)"))
        })?;
    }
    if let Some(first) = problems.list.first() {
        // What an incomplete or corrupt DAG reaches is unknown: delete nothing.
        return Err(Error::Refused(format!(
            "refusing to collect garbage: {first} ({} problem(s); run `narfs verify`)",
            problems.total
        )));
    }
    let mut report = join(store, &live, true, &mut |_| {})?;
    report.live_blocks = live.len;
    report.spilled_runs = live.runs as u64;
    // No writer holds the lock now: every session an older narfs left in tmp/ is
    // abandoned.
    let tmp = store.dir().join("tmp");
    if std::fs::symlink_metadata(&tmp).is_ok() {
        crate::nofollow::real_dir(&tmp)?;
        report.removed_sessions += crate::nofollow::clear_dir(&tmp)?;
    }
    Ok(report)
}

/// Every CID the roots reach, sorted and distinct, from one snapshot.
fn mark(
    store: &Store,
    spill: &Path,
    memory: usize,
    problems: &mut Problems,
) -> Result<SortedSet, Error> {
    let mut spiller = Spiller::new(spill, memory - memory / 4);
    let mut seen = Seen::with_bytes(memory / 4);
    let snap = store.blocks.read_txn()?;
    let records = snap.records()?;
    records.each_after(b"", &mut |_, rec| {
        let label = walk::label(&rec);
        match rec.cid() {
            Ok(cid) => walk::walk_dag(
                snap.reader(),
                &cid,
                &label,
                Leaves::Visit,
                &mut seen,
                &mut |c| spiller.push(&c.to_bytes()),
                problems,
            )?,
            Err(e) => problems.push(format!("root {label}: {}", error_chain(&e))),
        }
        Ok(true)
    })?;
    drop(seen);
    drop(snap);
    spiller.finish()
}

/// Merge-joins `live` with the block table in key order: `missing` hears of every
/// live CID the table lacks; with `sweep`, every block not live is deleted. Keys of
/// the table that are no CID are left alone and not counted.
fn join(
    store: &Store,
    live: &SortedSet,
    sweep: bool,
    missing: &mut dyn FnMut(&Cid),
) -> Result<GcReport, Error> {
    let mut report = GcReport::default();
    let mut lives = live.iter()?;
    let mut next_live = lives.next_key()?;
    // Live keys are CIDs' bytes (made by `Cid::to_bytes`).
    let mut say_missing = |k: &[u8]| {
        if let Ok(c) = Cid::try_from(k) {
            missing(&c)
        }
    };
    let mut after: Option<Vec<u8>> = None;
    loop {
        let snap = store.blocks.read_txn()?;
        let mut dead: Vec<Cid> = Vec::new();
        let mut scanned = 0;
        let mut more = false;
        let from = after.clone().unwrap_or_default();
        snap.scan_blocks(&from, &mut |key, value| {
            if after.as_deref() == Some(key) {
                return Ok(true);
            }
            while let Some(l) = next_live.as_deref().filter(|l| *l < key) {
                say_missing(l);
                next_live = lives.next_key()?;
            }
            let is_live = next_live.as_deref() == Some(key);
            if is_live {
                next_live = lives.next_key()?;
            }
            after = Some(key.to_vec());
            if let Ok(cid) = Cid::try_from(key) {
                if is_live {
                    report.kept_blocks += 1;
                } else if sweep {
                    report.removed_bytes += stored_len(value.len());
                    dead.push(cid);
                }
            }
            scanned += 1;
            more = dead.len() >= BATCH || scanned >= SCAN_CHUNK;
            Ok(!more)
        })?;
        drop(snap);
        if !dead.is_empty() {
            let mut txn = store.blocks.write_txn()?;
            for cid in &dead {
                if store.blocks.delete(&mut txn, cid)? {
                    report.removed_blocks += 1;
                }
            }
            store.blocks.commit(txn)?;
        }
        if !more {
            break;
        }
    }
    while let Some(l) = next_live {
        say_missing(&l);
        next_live = lives.next_key()?;
    }
    Ok(report)
}

#[cfg(test)]
#[path = "gc_tests.rs"]
mod tests;
