//! Which packs an incremental `repack` keeps: those a grouped repack already wrote,
//! as long as the layout's read amplification stays within a bound.
//!
//! A cache grows a version at a time. Each new version changes the users of the old
//! blocks it shares, so a full grouped plan moves them, and a full repack rewrites
//! most packs of the series it joins (and every mirror of the store fetches them
//! again). Instead, a pack already at the level with every block alive ("settled")
//! is kept; only the loose blocks (the new items' packs, packs `gc` left partly
//! dead) are planned into new packs. What that costs is drift: a settled pack a new
//! version reads only part of is decompressed whole. The walk of the plan measures
//! it per pack (`PackUse`: how many items read it, how many of its bytes they use);
//! when the layout would read more than `max` × the bytes its items use, the packs
//! wasting the most are rewritten too, until it would read at most half-way between
//! 1 and `max` (the hysteresis keeps the next run from rewriting them again).

use std::collections::{HashMap, HashSet};

use crate::pack_table::PackInfo;

/// What the items read of one pack: how many of them reach a block in it, and the
/// bytes of its blocks they use (each item's distinct blocks, summed over items).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct PackUse {
    pub(crate) items: u32,
    pub(crate) used: u64,
}

/// The packs to keep and the layout's bytes: those its items use, those they
/// decompress now, and those they would after a repack keeping `keep` (the
/// rewritten blocks counted once: a lower bound).
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Drift {
    pub(crate) keep: HashSet<u64>,
    pub(crate) used: u64,
    pub(crate) read: u64,
    pub(crate) read_after: u64,
}

/// The bytes an item reading pack `p` decompresses.
fn raw(p: &PackInfo) -> u64 {
    p.raw
}

/// Chooses the settled packs (at `level` or above, every block alive) to keep, with
/// the layout's read amplification bound by `max` (see the module's doc).
pub(crate) fn choose(
    packs: &HashMap<u64, PackInfo>,
    uses: &HashMap<u64, PackUse>,
    level: i32,
    max: f64,
) -> Drift {
    let mut d = Drift::default();
    // (waste, id, what it reads, what it uses) of each settled pack some item reads.
    let mut settled: Vec<(u64, u64, u64, u64)> = Vec::new();
    for (id, u) in uses {
        let Some(p) = packs.get(id) else { continue };
        let read = u64::from(u.items) * raw(p);
        d.used += u.used;
        d.read += read;
        if i32::from(p.level) >= level && p.live == p.blocks {
            settled.push((read.saturating_sub(u.used), *id, read, u.used));
            d.read_after += read;
        } else {
            d.read_after += u.used;
        }
    }
    // Settled packs no item reads stay as they are (nothing reads them to waste).
    for (id, p) in packs {
        if !uses.contains_key(id) && i32::from(p.level) >= level && p.live == p.blocks {
            d.keep.insert(*id);
        }
    }
    let bound = |f: f64| (d.used as f64 * f.max(1.0)) as u64;
    if d.read_after > bound(max) {
        let target = bound(1.0 + (max - 1.0) / 2.0);
        // The most wasteful first (ids break ties: the same choice every run).
        settled.sort_unstable_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let mut dropped = 0;
        for &(_, _, read, used) in &settled {
            if d.read_after <= target {
                break;
            }
            d.read_after = d.read_after - read + used;
            dropped += 1;
        }
        d.keep.extend(settled[dropped..].iter().map(|s| s.1));
        return d;
    }
    d.keep.extend(settled.into_iter().map(|s| s.1));
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pack(id: u64, level: i8, blocks: u32, live: u32, raw: u64) -> (u64, PackInfo) {
        (
            id,
            PackInfo {
                id,
                level,
                blocks,
                live,
                raw,
                ..PackInfo::default()
            },
        )
    }

    fn uses(list: &[(u64, u32, u64)]) -> HashMap<u64, PackUse> {
        list.iter()
            .map(|&(id, items, used)| (id, PackUse { items, used }))
            .collect()
    }

    #[test]
    fn settled_packs_are_kept_and_loose_ones_replanned_within_the_bound() {
        // 1 and 2 settled, 3 written by an import (level 1), 4 partly dead, 5 settled
        // but read by no item.
        let packs: HashMap<u64, PackInfo> = [
            pack(1, 19, 10, 10, 100),
            pack(2, 19, 10, 10, 100),
            pack(3, 1, 10, 10, 100),
            pack(4, 19, 10, 6, 100),
            pack(5, 19, 3, 3, 30),
        ]
        .into_iter()
        .collect();
        // Two items read pack 1 whole, one reads 2 and 3 whole, one 60 of pack 4.
        let u = uses(&[(1, 2, 200), (2, 1, 100), (3, 1, 100), (4, 1, 60)]);
        let d = choose(&packs, &u, 19, 1.25);
        assert_eq!(d.keep, HashSet::from([1, 2, 5]));
        assert_eq!((d.used, d.read), (460, 500));
        assert_eq!(d.read_after, 460, "kept packs read whole, the rest once");
        // At a higher level nothing is settled: everything read is replanned.
        let d = choose(&packs, &u, 22, 1.25);
        assert!(d.keep.is_empty(), "{d:?}");
    }

    #[test]
    fn past_the_bound_the_most_wasteful_packs_go_until_half_way() {
        // Five settled packs of 100: four items read pack 1 for 10 bytes each (waste
        // 360), pack 2 is read by 2 for 50 each (waste 100), 3..=5 read whole once.
        let packs: HashMap<u64, PackInfo> = (1..=5).map(|i| pack(i, 19, 10, 10, 100)).collect();
        let u = uses(&[
            (1, 4, 40),
            (2, 2, 100),
            (3, 1, 100),
            (4, 1, 100),
            (5, 1, 100),
        ]);
        // Used 440, read 900: 2.05 > 1.25. Without pack 1: 540 (1.23), above the
        // half-way 1.125 (495); without pack 2 too: 440.
        let d = choose(&packs, &u, 19, 1.25);
        assert_eq!(d.keep, HashSet::from([3, 4, 5]));
        assert_eq!(d.read_after, 440);
        // A looser bound keeps everything: drift is allowed up to it.
        let d = choose(&packs, &u, 19, 2.5);
        assert_eq!(d.keep.len(), 5);
        assert_eq!(d.read_after, 900);
        // A bound of 1 (or less) rewrites every pack read with waste.
        let d = choose(&packs, &u, 19, 1.0);
        assert_eq!(d.keep, HashSet::from([3, 4, 5]));
    }
}
