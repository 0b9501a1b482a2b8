//! `narfs store repack`: packs rewritten at a higher zstd level (LZ4 packs, the
//! import's, always: they rank below every level), their dead blocks (entries
//! deleted by `gc`) dropped and partially dead packs merged.
//!
//! Two layouts ([`Layout`]). `grouped` (the default) lays the blocks every root
//! reaches out by the items that use them (`repack_plan`): decoding an item then
//! decompresses packs that are nearly all its own. Blocks no root reaches (not yet
//! collected), and any left where they were, are then rewritten as `write-order`
//! does: consecutive packs, in id (write) order, merged into packs of the target size.
//!
//! Grouped, a repack is full (every packed block placed by the plan) or incremental
//! ([`Scope`]): the packs a repack already wrote are kept while the layout's read
//! amplification stays within a bound (`repack_drift`), only the rest is placed.
//!
//! Safe beside readers and writers: each new pack is built from a read snapshot
//! (every block verified against its CID, so damage is never copied), then one write
//! transaction points the blocks still where they were at the new pack and releases
//! their old places (an old pack goes with its last live block); a reader sees a
//! block in its old pack or its new one, never half. Killed, it leaves the last
//! committed pack; run again, it keeps packs that are already what it would write
//! (grouped: exactly a planned pack's blocks, in order, at the level; write order: at
//! the level with no dead block), so it resumes where it stopped and does nothing on a
//! store it has just repacked (idempotent).

use std::collections::{HashMap, HashSet};

use narfs_core::block::verify as verify_block;
use narfs_core::Cid;
use rayon::prelude::*;

use crate::gc::SpillDir;
use crate::lock::LockGuard;
use crate::pack::{self, NewPack, Slot, MAX_PACK_VALUE, SLOT_LEN};
use crate::pack_table::{self, PackInfo};
use crate::repack_drift;
use crate::repack_plan::{self, Cutter, Planned};
use crate::{Error, Store};

/// Where `repack` puts the blocks it rewrites.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// By the items using them: blocks the same items use together, in the DAG
    /// order of the first of them (see `repack_plan`).
    #[default]
    Grouped,
    /// As written: consecutive packs merged, in id order.
    WriteOrder,
}

/// The memory budget of the grouped layout's plan (each of its sorts, and a quarter
/// of it for the walk of one item).
pub const PLAN_MEMORY: usize = 64 << 20;

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
    /// Items (distinct roots) whose DAGs were walked to group the blocks (0 in write
    /// order).
    pub items: u64,
    /// The grouped layout's read amplification, as bytes: what the items use of the
    /// packs they reach (each item's distinct blocks), what decoding each of them
    /// decompresses (every pack it reaches, whole) before the repack, and (incremental)
    /// the same after it, the rewritten blocks counted once (a lower bound). 0 in write
    /// order.
    pub layout_used: u64,
    pub layout_read: u64,
    pub layout_read_after: u64,
    /// Items whose pack order (the packs their decode reads, in first-use order:
    /// `pack_order`) was recorded for the read-ahead, and those records' bytes.
    pub orders: u64,
    pub order_bytes: u64,
}

/// What a grouped repack rewrites.
#[derive(Clone, Copy, Debug, PartialEq)]
#[non_exhaustive]
pub enum Scope {
    /// Every packed block is placed by the plan (packs already exactly as planned are
    /// kept).
    Full,
    /// Packs a repack already wrote stay, while the layout decompresses at most this
    /// many times the bytes its items use (`repack_drift`); the rest is placed by the
    /// plan.
    Incremental(f64),
}

/// The default bound of an incremental repack's read amplification.
pub const MAX_AMPLIFICATION: f64 = 1.25;

/// A group of packs rewritten into one: their ids and their live blocks.
struct Built {
    old: Vec<u64>,
    was: Vec<Slot>,
    pack: Option<NewPack>,
    before: u64,
}

pub(crate) fn repack(
    store: &Store,
    level: i32,
    pack_bytes: u64,
    layout: Layout,
    scope: Scope,
) -> Result<RepackReport, Error> {
    let _lock = store.lock_shared()?;
    let target = pack_bytes.clamp(64 << 10, pack::MAX_PACK);
    let mut report = match layout {
        Layout::WriteOrder => write_order(store, level, target, &HashSet::new())?,
        Layout::Grouped => grouped(store, level, target, PLAN_MEMORY, scope, None)?,
    };
    // Once every pack is where it stays: the order each item's decode reads them in.
    (report.orders, report.order_bytes) = crate::pack_order::record_all(&store.blocks)?;
    Ok(report)
}

/// The grouped layout (of every packed block, or with `Scope::Incremental` of those
/// not in packs it keeps), then the write-order one for the packs it did not write
/// or keep; the report counts both. `stop_after` packs written, it stops as a killed
/// repack would (tests).
pub(crate) fn grouped(
    store: &Store,
    level: i32,
    target: u64,
    memory: usize,
    scope: Scope,
    stop_after: Option<u64>,
) -> Result<RepackReport, Error> {
    let blocks = &store.blocks;
    // One repack at a time: the plan's spill directory is the store's.
    let _one = LockGuard::acquire(&store.dir().join("repack.lock"), true)?;
    let spill = SpillDir::create(store.dir(), "repack-tmp")?;
    let (plan, start) = {
        let snap = blocks.read_txn()?;
        let infos: HashMap<u64, PackInfo> = pack_table::each(snap.view())?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        (repack_plan::plan(&snap, &spill.0, memory)?, infos)
    };
    let drift = repack_drift::choose(
        &start,
        &plan.packs,
        level,
        match scope {
            Scope::Full => 0.0,
            Scope::Incremental(max) => max,
        },
    );
    let keep = match scope {
        Scope::Full => HashSet::new(),
        Scope::Incremental(_) => drift.keep,
    };
    let mut report = RepackReport {
        items: u64::from(plan.items),
        packs_kept: keep.len() as u64,
        layout_used: drift.used,
        layout_read: drift.read,
        layout_read_after: match scope {
            Scope::Full => 0,
            Scope::Incremental(_) => drift.read_after,
        },
        ..RepackReport::default()
    };
    // Packs this pass wrote or kept: the write-order pass leaves them alone.
    let mut done: HashSet<u64> = keep.clone();
    // The blocks of the packs kept are not replanned.
    let loose = plan
        .blocks()?
        .filter(|b| b.as_ref().map_or(true, |b| !keep.contains(&b.pack)));
    let mut cutter = Cutter::new(loose, target);
    let threads = rayon::current_num_threads().max(1);
    loop {
        let mut todo = Vec::new();
        while todo.len() < 2 * threads {
            let Some(p) = cutter.next_pack()? else { break };
            match kept(store, &start, &p, level)? {
                Some(id) => {
                    done.insert(id);
                    report.packs_kept += 1;
                }
                None => todo.push(p),
            }
        }
        if todo.is_empty() {
            break;
        }
        let built: Vec<Result<Built, Error>> = todo
            .par_iter()
            .map(|p| build_planned(store, p, level))
            .collect();
        for b in built {
            let b = b?;
            let Some(p) = &b.pack else { continue };
            let mut txn = blocks.write_txn()?;
            let (id, moved) = blocks.move_into(&mut txn, &b.was, p)?;
            blocks.commit(txn)?;
            if moved > 0 {
                done.insert(id);
                report.packs_written += 1;
                report.bytes_after += p.value.len() as u64;
                report.blocks_moved += u64::from(moved);
            }
            if Some(report.packs_written) == stop_after {
                return Ok(report);
            }
        }
    }
    drop(cutter);
    drop(plan);
    drop(spill);
    let rest = write_order(store, level, target, &done)?;
    report.packs_written += rest.packs_written;
    report.packs_kept += rest.packs_kept;
    report.blocks_moved += rest.blocks_moved;
    report.bytes_after += rest.bytes_after;
    // Read: the packs of the start that are gone (emptied into new ones).
    let snap = blocks.read_txn()?;
    let now: HashSet<u64> = pack_table::each(snap.view())?
        .into_iter()
        .map(|p| p.id)
        .collect();
    for (id, p) in &start {
        if !now.contains(id) {
            report.packs_read += 1;
            report.bytes_before += p.stored;
        }
    }
    Ok(report)
}

/// The pack that is already exactly `plan` (its blocks, in order, all alive, at
/// `level` or above), if one is.
fn kept(
    store: &Store,
    start: &HashMap<u64, PackInfo>,
    plan: &[Planned],
    level: i32,
) -> Result<Option<u64>, Error> {
    let snap = store.blocks.read_txn()?;
    let view = snap.view();
    let mut id = None;
    let mut offset = 0u32;
    for b in plan {
        let Some(entry) = view.get(&b.cid.to_bytes())? else {
            return Ok(None);
        };
        let head = view.read_prefix(&entry, MAX_PACK_VALUE, SLOT_LEN as u64)?;
        let Ok(slot) = Slot::decode(&head) else {
            return Ok(None);
        };
        if *id.get_or_insert(slot.pack) != slot.pack || slot.offset != offset {
            return Ok(None);
        }
        offset = offset.wrapping_add(slot.len);
    }
    Ok(id.filter(|id| {
        start.get(id).is_some_and(|p| {
            i32::from(p.level) >= level && p.live == p.blocks && p.blocks as usize == plan.len()
        })
    }))
}

/// The new pack of `plan`'s blocks where they are now packed, each verified.
fn build_planned(store: &Store, plan: &[Planned], level: i32) -> Result<Built, Error> {
    let snap = store.blocks.read_txn()?;
    let view = snap.view();
    let reader = snap.reader();
    let mut live: Vec<(Cid, Slot, Vec<u8>)> = Vec::with_capacity(plan.len());
    for b in plan {
        let Some(entry) = view.get(&b.cid.to_bytes())? else {
            continue;
        };
        let head = view.read_prefix(&entry, MAX_PACK_VALUE, SLOT_LEN as u64)?;
        let Ok(slot) = Slot::decode(&head) else {
            continue; // No longer packed: left as it is.
        };
        live.push((b.cid, slot, reader.block(&b.cid, &entry)?));
    }
    drop(snap);
    encode_live(live, Vec::new(), 0, level)
}

/// Rewrites the packs not in `skip`, consecutive ones merged, about `target` alive
/// bytes each.
fn write_order(
    store: &Store,
    level: i32,
    target: u64,
    skip: &HashSet<u64>,
) -> Result<RepackReport, Error> {
    let blocks = &store.blocks;
    let infos = {
        let snap = blocks.read_txn()?;
        pack_table::each(snap.view())?
    };
    let mut report = RepackReport::default();
    // Consecutive packs (one item's, or neighbours') to rewrite, about `target` alive.
    let mut groups: Vec<Vec<PackInfo>> = Vec::new();
    let mut alive = u64::MAX;
    for p in infos {
        if skip.contains(&p.id) {
            continue;
        }
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
    let old = group.iter().map(|p| p.id).collect();
    let before = group.iter().map(|p| p.stored).sum();
    encode_live(live, old, before, level)
}

/// The pack of `live` (each block verified first) at `level`, to replace `old`.
fn encode_live(
    live: Vec<(Cid, Slot, Vec<u8>)>,
    old: Vec<u64>,
    before: u64,
    level: i32,
) -> Result<Built, Error> {
    for (cid, _, bytes) in &live {
        verify_block(cid, bytes)?;
    }
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
    let Some(pack) = pack::encode(pack::Encoder::Zstd { z: &mut z, level }, &refs) else {
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
