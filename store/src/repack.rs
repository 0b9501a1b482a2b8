//! `narfs store repack`: packs rewritten at a higher zstd level, their dead blocks
//! (entries deleted by `gc`) dropped and partially dead packs merged.
//!
//! Safe beside readers and writers: each new pack is built from a read snapshot
//! (every block verified against its CID, so damage is never copied), then one write
//! transaction points the blocks still where they were at the new pack and deletes the
//! old ones; a reader sees the old packs or the new one, never half. Killed, it leaves
//! the last committed pack; run again, it skips packs already at the level with no dead
//! block (idempotent), so it resumes where it stopped.

use narfs_core::block::verify as verify_block;
use narfs_core::Cid;
use rayon::prelude::*;

use crate::pack::{self, NewPack, Slot};
use crate::pack_table::{self, PackInfo};
use crate::{Error, Store};

/// What a repack did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct RepackReport {
    /// Packs read and replaced (or deleted, when nothing in them was alive).
    pub packs_read: u64,
    /// Packs written.
    pub packs_written: u64,
    /// Packs left as they were (already at the level, nothing dead).
    pub packs_kept: u64,
    /// Blocks moved into the new packs.
    pub blocks_moved: u64,
    /// Stored bytes of the packs read, and of those written.
    pub bytes_before: u64,
    pub bytes_after: u64,
}

/// A group of packs rewritten into one: their ids and their live blocks.
struct Built {
    old: Vec<u64>,
    was: Vec<Slot>,
    pack: Option<NewPack>,
    before: u64,
}

pub(crate) fn repack(store: &Store, level: i32, pack_bytes: u64) -> Result<RepackReport, Error> {
    let _lock = store.lock_shared()?;
    let blocks = &store.blocks;
    let target = pack_bytes.clamp(64 << 10, pack::MAX_PACK);
    let infos = {
        let snap = blocks.read_txn()?;
        pack_table::each(snap.view())?
    };
    let mut report = RepackReport::default();
    // Consecutive packs (one item's, or neighbours') to rewrite, about `target` alive.
    let mut groups: Vec<Vec<PackInfo>> = Vec::new();
    let mut alive = u64::MAX;
    for p in infos {
        if i32::from(p.level) >= level && p.live == p.blocks {
            report.packs_kept += 1;
            continue;
        }
        if alive.saturating_add(p.live_bytes) > target {
            groups.push(Vec::new());
            alive = 0;
        }
        alive += p.live_bytes;
        groups.last_mut().expect("pushed").push(p);
    }
    let threads = rayon::current_num_threads().max(1);
    for chunk in groups.chunks(2 * threads) {
        let built: Vec<Result<Built, Error>> =
            chunk.par_iter().map(|g| build(store, g, level)).collect();
        for b in built {
            let b = b?;
            let mut txn = blocks.write_txn()?;
            let moved = blocks.replace_packs(&mut txn, &b.old, &b.was, b.pack.as_ref())?;
            blocks.commit(txn)?;
            report.packs_read += b.old.len() as u64;
            report.bytes_before += b.before;
            report.blocks_moved += u64::from(moved);
            if let (Some(p), true) = (&b.pack, moved > 0) {
                report.packs_written += 1;
                report.bytes_after += p.value.len() as u64;
            }
        }
    }
    Ok(report)
}

/// The new pack of `group`'s live blocks, each verified, at `level`.
fn build(store: &Store, group: &[PackInfo], level: i32) -> Result<Built, Error> {
    let snap = store.blocks.read_txn()?;
    let mut live: Vec<(Cid, Slot, Vec<u8>)> = Vec::new();
    for p in group {
        live.extend(pack_table::live_blocks(snap.view(), p.id)?);
    }
    drop(snap);
    for (cid, _, bytes) in &live {
        verify_block(cid, bytes)?;
    }
    let old = group.iter().map(|p| p.id).collect();
    let before = group.iter().map(|p| p.stored).sum();
    if live.is_empty() {
        return Ok(Built {
            old,
            was: Vec::new(),
            pack: None,
            before,
        });
    }
    let mut z =
        zstd::bulk::Compressor::new(level).map_err(|_| Error::Writer("zstd refused the level"))?;
    let refs: Vec<(Cid, &[u8])> = live.iter().map(|(c, _, b)| (*c, b.as_slice())).collect();
    // A pack that no longer saves 1/8 at this level stays as it is.
    let Some(pack) = pack::encode(&mut z, level, &refs) else {
        return Ok(Built {
            old: Vec::new(),
            was: Vec::new(),
            pack: None,
            before: 0,
        });
    };
    Ok(Built {
        old,
        was: live.iter().map(|(_, s, _)| *s).collect(),
        pack: Some(pack),
        before,
    })
}
