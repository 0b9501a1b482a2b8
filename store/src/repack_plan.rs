//! Where `repack` puts each packed block: beside the blocks used by the same items.
//!
//! Written in order, a pack holds an item's new blocks; a later version of a package
//! then reaches into the packs of earlier ones for the files they share, and
//! decompresses whole packs for a few of their blocks (read amplification 1.4–2.2 on
//! the large corpus). Here every recorded root's DAG is walked, and each block gets a
//! summary of the items using it ([`Users`]: the first and last item in record order
//! and a hash of the whole set); blocks with the same users are then laid out
//! together, in the first user's DAG order, so an item decoding reads packs that are
//! (nearly) all its own. Groups come in the order (first, last, set), so neighbouring
//! groups share their first user; small ones are merged into packs of about the
//! target size ([`Cutter`]) rather than made into tiny packs that compress poorly.
//!
//! Bounded memory, whatever the store holds: three external sorts
//! ([`crate::sorted_set`], each within `memory` bytes, spilling runs into the
//! repack's own directory): the items by creation time; a (block, item, DAG position)
//! key per block each item reaches; the blocks by (users, position). A block's summary
//! is 16 bytes beside its CID, never a list of its users. The walk of one item
//! remembers what it has seen within `memory / 4` bytes ([`Seen`]; an item larger than
//! that may count a block twice, which only blurs its set hash, never correctness).
//! Disk: ~50 bytes per (item, block) pair of the walk, repeats across items included.

use std::collections::{HashMap, VecDeque};
use std::path::Path;

use narfs_core::Cid;

use crate::blocks::Snapshot;
use crate::lmdb_file::View;
use crate::pack::{Slot, MAX_PACK_BLOCKS, MAX_PACK_VALUE, SLOT_LEN};
use crate::repack_drift::PackUse;
use crate::repack_reached::{self as reached, Reached};
use crate::sorted_set::{RunReader, SortedSet, Spiller};
use crate::walk::{self, Leaves, Problems, Seen};
use crate::Error;

/// Who uses a block: the first and last item in record order, and a hash of the set
/// of all of them (blocks with equal summaries are, but for a hash collision, used by
/// exactly the same items).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Users {
    pub(crate) first: u32,
    pub(crate) last: u32,
    pub(crate) set: u64,
}

impl Users {
    /// The summary of one item.
    pub(crate) fn of(item: u32) -> Users {
        Users {
            first: item,
            last: item,
            set: mix(item),
        }
    }

    /// The summary with `item` (later than every item in it) added.
    pub(crate) fn with(self, item: u32) -> Users {
        Users {
            first: self.first.min(item),
            last: self.last.max(item),
            set: self.set ^ mix(item),
        }
    }
}

/// splitmix64 of an item's index: the set hash is the XOR of its members' mixes.
pub(crate) fn mix(item: u32) -> u64 {
    let mut z = u64::from(item).wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A block in the plan: its users, its position in its first user's DAG, its size,
/// the pack it was in when planned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Planned {
    pub(crate) users: Users,
    pub(crate) pos: u64,
    pub(crate) len: u32,
    pub(crate) pack: u64,
    pub(crate) cid: Cid,
}

impl Planned {
    /// The sort key: users, then position (the layout's order), then size, pack and
    /// CID.
    pub(crate) fn key(&self) -> Vec<u8> {
        let mut k = Vec::with_capacity(36 + 64);
        k.extend_from_slice(&self.users.first.to_be_bytes());
        k.extend_from_slice(&self.users.last.to_be_bytes());
        k.extend_from_slice(&self.users.set.to_be_bytes());
        k.extend_from_slice(&self.pos.to_be_bytes());
        k.extend_from_slice(&self.len.to_be_bytes());
        k.extend_from_slice(&self.pack.to_be_bytes());
        k.extend_from_slice(&self.cid.to_bytes());
        k
    }

    fn from_key(k: &[u8]) -> Option<Planned> {
        let u32_at = |i: usize| Some(u32::from_be_bytes(k.get(i..i + 4)?.try_into().ok()?));
        let u64_at = |i: usize| Some(u64::from_be_bytes(k.get(i..i + 8)?.try_into().ok()?));
        Some(Planned {
            users: Users {
                first: u32_at(0)?,
                last: u32_at(4)?,
                set: u64_at(8)?,
            },
            pos: u64_at(16)?,
            len: u32_at(24)?,
            pack: u64_at(28)?,
            cid: Cid::try_from(k.get(36..)?).ok()?,
        })
    }
}

/// The plan: every packed block some root reaches, in layout order.
pub(crate) struct Plan {
    set: SortedSet,
    /// Items (distinct roots) walked. (What a walk cannot read, a missing or damaged
    /// node, is not planned: what is under it stays where it is.)
    pub(crate) items: u32,
    /// What the items read of each pack they reach (one entry per pack: ~40 bytes
    /// each, 20 MiB for a TiB of 2 MiB packs).
    pub(crate) packs: HashMap<u64, PackUse>,
}

impl Plan {
    /// The planned blocks in order.
    pub(crate) fn blocks(&self) -> Result<PlanReader, Error> {
        Ok(PlanReader(self.set.iter()?))
    }
}

/// Reads a [`Plan`]'s blocks in order.
pub(crate) struct PlanReader(RunReader);

impl Iterator for PlanReader {
    type Item = Result<Planned, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        match self.0.next_key() {
            Ok(Some(k)) => Some(
                Planned::from_key(&k)
                    .ok_or_else(|| Error::Writer("repack's plan holds a key it did not write")),
            ),
            Ok(None) => None,
            Err(e) => Some(Err(e)),
        }
    }
}

/// Plans the layout of `snap`'s packed blocks, spilling into `spill` (one
/// subdirectory per sort) within `memory` bytes.
pub(crate) fn plan(snap: &Snapshot<'_>, spill: &Path, memory: usize) -> Result<Plan, Error> {
    let dir = |name: &str| -> Result<std::path::PathBuf, Error> {
        let d = spill.join(name);
        std::fs::create_dir(&d).map_err(Error::io(&d))?;
        Ok(d)
    };
    // 1. The items, by creation time (then root): one per distinct root.
    let mut items = Spiller::new(&dir("items")?, memory);
    let mut last: Option<(Cid, u64)> = None;
    let push_item = |items: &mut Spiller, (cid, created): (Cid, u64)| {
        let mut k = created.to_be_bytes().to_vec();
        k.extend_from_slice(&cid.to_bytes());
        items.push(&k)
    };
    snap.records()?.each_after(b"", &mut |_, rec| {
        // Records of one root are neighbours (keyed by root first): the earliest counts.
        let Ok(cid) = rec.cid() else {
            return Ok(true);
        };
        match &mut last {
            Some((c, t)) if *c == cid => *t = (*t).min(rec.created),
            _ => {
                if let Some(prev) = last.replace((cid, rec.created)) {
                    push_item(&mut items, prev)?;
                }
            }
        }
        Ok(true)
    })?;
    if let Some(prev) = last {
        push_item(&mut items, prev)?;
    }
    let items = items.finish()?;
    // 2. Every (block, item, position) the walks reach, combined per block.
    let mut reached = Reached::new(&dir("reached")?, memory);
    let mut problems = Problems::new(0);
    let mut n = 0u32;
    let view = snap.view();
    let mut packs: HashMap<u64, PackUse> = HashMap::new();
    // This item's bytes in each pack it reaches.
    let mut mine: HashMap<u64, u64> = HashMap::new();
    let mut it = items.iter()?;
    while let Some(k) = it.next_key()? {
        let Some(root) = k.get(8..).and_then(|c| Cid::try_from(c).ok()) else {
            continue;
        };
        let mut pos = 0u64;
        let mut seen = Seen::with_bytes(memory / 4);
        walk::walk_dag(
            snap.reader(),
            &root,
            "",
            Leaves::Visit,
            &mut seen,
            &mut |c| {
                if let Some(slot) = packed(view, &c.to_bytes())? {
                    *mine.entry(slot.pack).or_default() += u64::from(slot.len);
                }
                pos += 1;
                reached.add(c, n, pos - 1)
            },
            &mut problems,
        )?;
        for (p, used) in mine.drain() {
            let u = packs.entry(p).or_default();
            u.items += 1;
            u.used += used;
        }
        n = n.saturating_add(1);
    }
    let reached = reached.finish()?;
    // 3. Each packed block once, with its users, by (users, position).
    let mut planned = Spiller::new(&dir("planned")?, memory);
    let mut flush = |cur: Option<(Vec<u8>, Users, u64)>| -> Result<(), Error> {
        let Some((cid, users, pos)) = cur else {
            return Ok(());
        };
        let (Some(slot), Ok(cid)) = (packed(view, &cid)?, Cid::try_from(cid.as_slice())) else {
            return Ok(()); // Not packed: stored on its own, left so.
        };
        planned.push(
            &Planned {
                users,
                pos,
                len: slot.len,
                pack: slot.pack,
                cid,
            }
            .key(),
        )
    };
    let mut cur: Option<(Vec<u8>, Users, u64)> = None;
    let mut r = reached.iter()?;
    while let Some(k) = r.next_key()? {
        let Some((cid, users, pos)) = reached::parse(&k) else {
            continue;
        };
        match &mut cur {
            // Sorted by block then first user: the first record of a block has its
            // first user's position; later ones (later spills) add users.
            Some((c, u, _)) if c.as_slice() == cid => *u = reached::merge(*u, users),
            _ => flush(cur.replace((cid.to_vec(), users, pos)))?,
        }
    }
    flush(cur)?;
    Ok(Plan {
        set: planned.finish()?,
        items: n,
        packs,
    })
}

/// Where the block of CID bytes `cid` is packed, if it is.
fn packed(view: View<'_>, cid: &[u8]) -> Result<Option<Slot>, Error> {
    let Some(entry) = view.get(cid)? else {
        return Ok(None);
    };
    let head = view.read_prefix(&entry, MAX_PACK_VALUE, SLOT_LEN as u64)?;
    Ok(Slot::decode(&head).ok())
}

/// Cuts the plan's blocks into packs of about `target` bytes: a pack ends before a
/// block that would take it past `target`, and at the start of a group (a new
/// [`Users`]) when the group would not fit in what is left and the pack already holds
/// a quarter of `target`; smaller groups are merged with their neighbours. To know
/// whether the next group fits, it looks ahead at most `target` bytes (and
/// [`MAX_PACK_BLOCKS`] blocks): its memory is one pack's plan.
pub(crate) struct Cutter<I> {
    source: I,
    ahead: VecDeque<Planned>,
    target: u64,
    done: bool,
}

impl<I: Iterator<Item = Result<Planned, Error>>> Cutter<I> {
    pub(crate) fn new(source: I, target: u64) -> Cutter<I> {
        Cutter {
            source,
            ahead: VecDeque::new(),
            target: target.max(1),
            done: false,
        }
    }

    /// The `i`th block ahead, read from the source if need be.
    fn peek(&mut self, i: usize) -> Result<Option<&Planned>, Error> {
        while self.ahead.len() <= i && !self.done {
            match self.source.next() {
                Some(b) => self.ahead.push_back(b?),
                None => self.done = true,
            }
        }
        Ok(self.ahead.get(i))
    }

    /// Bytes of the group starting ahead, counted until they pass `limit`.
    fn group_bytes(&mut self, limit: u64) -> Result<u64, Error> {
        let Some(users) = self.peek(0)?.map(|b| b.users) else {
            return Ok(0);
        };
        let (mut sum, mut i) = (0u64, 0usize);
        while let Some(b) = self.peek(i)? {
            if b.users != users || sum > limit || i >= MAX_PACK_BLOCKS {
                break;
            }
            sum += u64::from(b.len);
            i += 1;
        }
        Ok(sum)
    }

    /// The next pack's blocks, in order (`None` at the end).
    pub(crate) fn next_pack(&mut self) -> Result<Option<Vec<Planned>>, Error> {
        let mut pack: Vec<Planned> = Vec::new();
        let mut size = 0u64;
        while let Some(b) = self.peek(0)? {
            let (len, users) = (u64::from(b.len), b.users);
            if let Some(prev) = pack.last() {
                if size + len > self.target || pack.len() >= MAX_PACK_BLOCKS {
                    break;
                }
                if prev.users != users && size >= self.target / 4 {
                    let left = self.target - size;
                    if self.group_bytes(left)? > left {
                        break;
                    }
                }
            }
            size += len;
            pack.push(self.ahead.pop_front().expect("peeked"));
        }
        Ok((!pack.is_empty()).then_some(pack))
    }
}

#[cfg(test)]
#[path = "repack_plan_tests.rs"]
pub(crate) mod tests;
