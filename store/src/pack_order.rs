//! The order in which decoding an item reads its packs, recorded by `repack` beside
//! the item's root, so that the read-ahead decompresses the next packs before the
//! decoder asks for them.
//!
//! Why: after a grouped repack, a decode by name still decompressed ~285 of ~675 packs
//! itself, on the critical path with the other core idle (`decode --pack-stats`): an
//! item's first packs, and the first pack of each group a file's leaves enter. The
//! walk's hints name a pack only once the walk is there; the repack knows the whole
//! order. So `repack` walks each root's DAG in the decoder's order (depth first, in
//! link order: the NAR's order) once its packs are written, and records the packs it
//! meets, each once, in first-use order.
//!
//! ```text
//! pack-orders   root CID bytes -> version (1), n (varint), n × pack id as a zigzag
//!                                 varint delta from the one before (the first from 0),
//!                                 then 8 bytes of SHA-256 of everything before
//! ```
//!
//! A hint only: a record that is damaged, of an unknown version, too long, or stale
//! (its packs rewritten by a later repack: pack ids are never reused, so a gone pack
//! is just absent) costs speed, never a wrong block (every block read is verified
//! against its CID) nor unbounded work (at most [`MAX_PACKS`] ids, read ahead a few
//! at a time). Keyed by the root, not the name: the order is the DAG's, so an item
//! removed and added again under the same root finds its record still right. Every
//! repack rewrites the whole tree (records of roots no longer recorded dropped).

use std::collections::{HashMap, HashSet};

use narfs_core::block::HashAlg;
use narfs_core::{varint, Cid};

use crate::blocks::{Blocks, Snapshot};
use crate::walk::{self, Leaves, Problems, Seen};
use crate::Error;

/// The named tree of the records.
pub(crate) const TREE: &str = "pack-orders";
/// The layout written now.
const VERSION: u8 = 1;
/// Bytes of SHA-256 a record ends with, as `record_form`'s sealed records.
const CHECKSUM: usize = 8;
/// Most packs a record names: 32 GiB of 2 MiB packs, far beyond a NAR's; an item
/// reaching more has its first [`MAX_PACKS`] recorded.
pub(crate) const MAX_PACKS: usize = 16 << 10;
/// The longest record: every id a 10-byte varint.
const MAX_BYTES: usize = 1 + 3 + MAX_PACKS * 10 + CHECKSUM;
/// Records written per write transaction.
const BATCH_BYTES: usize = 4 << 20;
/// The walk's seen cache per item (as `repack_plan`'s: a quarter of its 64 MiB).
const SEEN_BYTES: usize = 16 << 20;

/// Packs of a recorded order kept decompressed after the one the readers are in
/// (within [`AHEAD_PACKS`](crate::pack_cache::AHEAD_PACKS) unread, so within the cache).
/// Two, not four: the later items of a series read their predecessors' shared groups
/// interleaved, 7–10 packs in use at once in a cache of 12, and a window of four
/// evicted packs still in use (large corpus, 16 NARs: 823 packs decompressed instead
/// of 677, and more misses); two left 683 and cut the readers' own decompressions
/// from ~290 to ~95, three 711 and ~90.
pub(crate) const WINDOW: usize = 2;

/// An item's recorded pack order, and how far the jobs are through it.
#[derive(Debug)]
pub(crate) struct Order {
    /// The item's root: what a damaged pack's error names (it is never reported: the
    /// reader loads the pack again and says).
    pub(crate) root: Cid,
    packs: Vec<u64>,
    /// Each pack's first place in `packs`.
    place: HashMap<u64, usize>,
    /// The furthest place the readers were seen in, plus one (0: not started).
    reached: usize,
    /// The next place to load ahead.
    next: usize,
}

impl Order {
    /// The order of `packs` (the first [`MAX_PACKS`]) for the item of `root`, none
    /// read yet.
    pub(crate) fn new(root: Cid, mut packs: Vec<u64>) -> Order {
        packs.truncate(MAX_PACKS);
        let mut place = HashMap::with_capacity(packs.len());
        for (i, &p) in packs.iter().enumerate() {
            place.entry(p).or_insert(i);
        }
        Order {
            root,
            packs,
            place,
            reached: 0,
            next: 0,
        }
    }

    /// Moves `reached` to the pack the readers are in (`reading`: its id plus one),
    /// when it is further on in the order.
    pub(crate) fn see(&mut self, reading: u64) {
        if let Some(&i) = reading.checked_sub(1).and_then(|id| self.place.get(&id)) {
            self.reached = self.reached.max(i + 1);
        }
    }

    /// The next pack to load ahead, if one is within the window, taken.
    pub(crate) fn take(&mut self) -> Option<(usize, u64)> {
        self.next = self.next.max(self.reached);
        let end = (self.reached + WINDOW).min(self.packs.len());
        (self.next < end).then(|| {
            self.next += 1;
            (self.next - 1, self.packs[self.next - 1])
        })
    }

    /// Whether a pack is due (without taking it).
    pub(crate) fn due(&self) -> bool {
        self.next.max(self.reached) < (self.reached + WINDOW).min(self.packs.len())
    }

    /// The pack at place `i`, taken, was not loaded (the packs ahead were full): it is
    /// taken again next.
    pub(crate) fn put_back(&mut self, i: usize) {
        self.next = self.next.min(i);
    }
}

/// Why a stored record does not read (the read-ahead then goes without it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum OrderError {
    /// A version this narfs does not know.
    #[error("pack order record of version {0}")]
    Version(u8),
    /// Its checksum does not hold, or it ends early or late.
    #[error("pack order record damaged: {0}")]
    Damaged(&'static str),
}

/// The stored form of `packs` (the first [`MAX_PACKS`]).
pub(crate) fn encode(packs: &[u64]) -> Vec<u8> {
    let packs = &packs[..packs.len().min(MAX_PACKS)];
    let mut out = vec![VERSION];
    varint::put(&mut out, packs.len() as u64);
    let mut prev = 0u64;
    for &p in packs {
        let d = p.wrapping_sub(prev) as i64;
        varint::put(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        prev = p;
    }
    let sum = HashAlg::Sha2_256.digest(&out);
    out.extend_from_slice(&sum[..CHECKSUM]);
    out
}

/// The packs a stored record names, checked.
pub(crate) fn decode(b: &[u8]) -> Result<Vec<u64>, OrderError> {
    let damaged = OrderError::Damaged;
    match b.first() {
        None => return Err(damaged("empty")),
        Some(&VERSION) => {}
        Some(&v) => return Err(OrderError::Version(v)),
    }
    if b.len() > MAX_BYTES || b.len() < 1 + CHECKSUM {
        return Err(damaged("of an impossible length"));
    }
    let (body, sum) = b.split_at(b.len() - CHECKSUM);
    if HashAlg::Sha2_256.digest(body)[..CHECKSUM] != *sum {
        return Err(damaged("its checksum does not hold"));
    }
    let mut at = 1;
    let mut next = || -> Result<u64, OrderError> {
        match varint::decode(&body[at..], 10) {
            Ok(Some((v, n))) => {
                at += n;
                Ok(v)
            }
            _ => Err(damaged("a bad varint")),
        }
    };
    let n = next()?;
    if n > MAX_PACKS as u64 {
        return Err(damaged("too many packs"));
    }
    let mut packs = Vec::with_capacity(n as usize);
    let mut prev = 0u64;
    for _ in 0..n {
        let z = next()?;
        let d = ((z >> 1) as i64) ^ -((z & 1) as i64);
        prev = prev.wrapping_add(d as u64);
        packs.push(prev);
    }
    if at != body.len() {
        return Err(damaged("bytes after its packs"));
    }
    Ok(packs)
}

/// The recorded pack order of `root` in `snap`, if one reads (`None` too when it is
/// damaged or of an unknown version: a hint goes unused, nothing fails).
pub(crate) fn read(snap: &Snapshot<'_>, root: &Cid) -> Option<Vec<u64>> {
    let view = snap.view();
    let tree = view.named(TREE.as_bytes()).ok()??;
    let v = view.get_in(tree, false, &root.to_bytes()).ok()??;
    let b = view.read_from(&v, MAX_BYTES as u64, 0).ok()?;
    decode(&b).ok()
}

/// The packs decoding `root` reads, in first-use order: its DAG walked as the decoder
/// walks it (depth first, in link order), each packed block's pack taken once.
fn order_of(snap: &Snapshot<'_>, root: &Cid) -> Result<Vec<u64>, Error> {
    let reader = snap.reader();
    let mut seen = Seen::with_bytes(SEEN_BYTES);
    let mut met = HashSet::new();
    let mut packs = Vec::new();
    // What does not read is verify's to report: the record only lacks those packs.
    let mut problems = Problems::new(0);
    walk::walk_dag(
        snap.reader(),
        root,
        "",
        Leaves::Visit,
        &mut seen,
        &mut |c| {
            if packs.len() < MAX_PACKS {
                if let Some(p) = reader.pack_of_cid(c) {
                    if met.insert(p) {
                        packs.push(p);
                    }
                }
            }
            Ok(())
        },
        &mut problems,
    )?;
    Ok(packs)
}

/// Records the pack order of every recorded root (once per root), replacing the whole
/// tree: `repack` calls it once its packs are written. Returns the records written
/// and their bytes.
pub(crate) fn record_all(blocks: &Blocks) -> Result<(u64, u64), Error> {
    let snap = blocks.read_txn()?;
    let mut txn = blocks.write_txn()?;
    let tree = blocks.pack_orders();
    tree.clear(&mut txn).map_err(blocks.err())?;
    blocks.commit(txn)?;
    let mut batch: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
    let mut bytes = 0usize;
    let (mut count, mut total) = (0u64, 0u64);
    let write = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), Error> {
        if batch.is_empty() {
            return Ok(());
        }
        let mut txn = blocks.write_txn()?;
        for (k, v) in batch.drain(..) {
            tree.put(&mut txn, &k, &v).map_err(blocks.err())?;
        }
        blocks.commit(txn)
    };
    let mut last: Option<Cid> = None;
    snap.records()?.each_after(b"", &mut |_, rec| {
        // Records of one root are neighbours (keyed by root first).
        let Ok(cid) = rec.cid() else { return Ok(true) };
        if last.replace(cid) == Some(cid) {
            return Ok(true);
        }
        let stored = encode(&order_of(&snap, &cid)?);
        count += 1;
        total += stored.len() as u64;
        bytes += stored.len();
        batch.push((cid.to_bytes(), stored));
        if bytes >= BATCH_BYTES {
            write(&mut batch)?;
            bytes = 0;
        }
        Ok(true)
    })?;
    write(&mut batch)?;
    Ok((count, total))
}

#[cfg(test)]
#[path = "pack_order_tests.rs"]
mod tests;
