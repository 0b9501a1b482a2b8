//! The walk's record of which items reach each block, combined before it spills.
//!
//! Every item of a version series reaches mostly the same blocks: one record per
//! (block, item) made the plan's second sort spill ~50 bytes per pair, 16 times a
//! block's for 16 versions. Records are combined per block in memory instead (the
//! block's [`Users`] so far and its position in its first user's DAG), within a
//! bound; each time the bound is reached they spill as one record per block. The
//! sorted records of a block then come in walk order (a later spill's first user is
//! at least an earlier one's last) and [`merge`] folds them into one summary.

use std::collections::HashMap;
use std::path::Path;

use narfs_core::Cid;

use crate::repack_plan::{mix, Users};
use crate::sorted_set::{SortedSet, Spiller};
use crate::Error;

/// What a block's entry in memory costs (its CID, summary and hash-table slot).
const PER_BLOCK: usize = 160;

/// The (block, item, position) records of the walks, combined per block.
pub(crate) struct Reached {
    map: HashMap<Cid, (Users, u64)>,
    cap: usize,
    out: Spiller,
}

impl Reached {
    /// Records spilling into `dir`, within `memory` bytes (half of them for the
    /// combined blocks, half for the sort's buffer).
    pub(crate) fn new(dir: &Path, memory: usize) -> Reached {
        Reached {
            map: HashMap::new(),
            cap: (memory / 2 / PER_BLOCK).max(1),
            out: Spiller::new(dir, memory / 2),
        }
    }

    /// Item `item` (no earlier than any item added before) reaches `cid` at `pos`.
    pub(crate) fn add(&mut self, cid: &Cid, item: u32, pos: u64) -> Result<(), Error> {
        match self.map.get_mut(cid) {
            Some((users, _)) if users.last != item => *users = users.with(item),
            Some(_) => {}
            None => {
                self.map.insert(*cid, (Users::of(item), pos));
                if self.map.len() >= self.cap {
                    self.spill()?;
                }
            }
        }
        Ok(())
    }

    fn spill(&mut self) -> Result<(), Error> {
        for (cid, (users, pos)) in self.map.drain() {
            let c = cid.to_bytes();
            let mut k = Vec::with_capacity(1 + c.len() + 24);
            k.push(c.len() as u8);
            k.extend_from_slice(&c);
            k.extend_from_slice(&users.first.to_be_bytes());
            k.extend_from_slice(&users.last.to_be_bytes());
            k.extend_from_slice(&users.set.to_be_bytes());
            k.extend_from_slice(&pos.to_be_bytes());
            self.out.push(&k)?;
        }
        Ok(())
    }

    /// The records, sorted by block then first user.
    pub(crate) fn finish(mut self) -> Result<SortedSet, Error> {
        self.spill()?;
        self.out.finish()
    }
}

/// One spilled record: the block's CID bytes, its users and position in that spill.
pub(crate) fn parse(k: &[u8]) -> Option<(&[u8], Users, u64)> {
    let cl = usize::from(*k.first()?);
    let cid = k.get(1..1 + cl)?;
    let rest = k.get(1 + cl..)?;
    let u32_at = |i: usize| Some(u32::from_be_bytes(rest.get(i..i + 4)?.try_into().ok()?));
    let u64_at = |i: usize| Some(u64::from_be_bytes(rest.get(i..i + 8)?.try_into().ok()?));
    let users = Users {
        first: u32_at(0)?,
        last: u32_at(4)?,
        set: u64_at(8)?,
    };
    Some((cid, users, u64_at(16)?))
}

/// `a` with a later spill's `b` of the same block folded in: an item walked across
/// the spill between them is in both (`a`'s last, `b`'s first) and counts once.
pub(crate) fn merge(a: Users, b: Users) -> Users {
    let mut set = a.set ^ b.set;
    if b.first == a.last {
        set ^= mix(b.first);
    }
    Users {
        first: a.first,
        last: a.last.max(b.last),
        set,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::{cid_for, HashAlg, RAW};

    #[test]
    fn records_spilled_apart_merge_into_the_summary_of_all_users() {
        let all = Users::of(1).with(3).with(5);
        // An item walked across a spill (3 in both) counts once; apart, all count.
        assert_eq!(merge(Users::of(1).with(3), Users::of(3).with(5)), all);
        assert_eq!(merge(Users::of(1), Users::of(3).with(5)), all);
        assert_eq!(merge(Users::of(3), Users::of(3)), Users::of(3));
        // Spilled at every block, read back: one record per spill, in walk order.
        let dir = tempfile::tempdir().unwrap();
        let mut r = Reached::new(dir.path(), 1);
        let c = cid_for(RAW, HashAlg::Sha2_256, b"x");
        for (item, pos) in [(1, 7), (3, 2), (3, 9), (5, 0)] {
            r.add(&c, item, pos).unwrap();
        }
        let set = r.finish().unwrap();
        let mut it = set.iter().unwrap();
        let mut got: Option<(Users, u64)> = None;
        while let Some(k) = it.next_key().unwrap() {
            let (cid, users, pos) = parse(&k).unwrap();
            assert_eq!(cid, c.to_bytes().as_slice());
            got = Some(match got {
                None => (users, pos),
                Some((u, p)) => (merge(u, users), p),
            });
        }
        assert_eq!(got, Some((all, 7)));
    }
}
