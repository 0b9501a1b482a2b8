//! Reads of the block tree that keep each leaf read, with its small values
//! ([`View::get`] through [`DataFile`]'s kept leaves).
//!
//! Why: a decode from the store looks up every block, and each lookup read and
//! checked one leaf page (`pread` of 4 KiB, every node checked, the page's buffers
//! allocated, zeroed and freed): ~17% of the CPU of a decode of 46,537 small files
//! (`perf`, docs/runs/smalldec2.md), whose store has ~53,000 blocks on ~9,400 leaf
//! pages. Whole pages kept would take ~37 MiB (small blocks are stored inline in
//! them); their keys and the values a lookup answers with in a few bytes (a pack's
//! slot: 17 bytes; an overflow value's page and length) take ~60 bytes a key, so a
//! bounded cache of [`READ_BYTES`] holds most of them and a leaf is read about once
//! for all of its keys. A value inline longer than [`KEPT_INLINE`] (a small block
//! stored raw) is not kept: its key is answered by reading the page, as before.
//!
//! The kept leaves are [`super::leaves`]'s (checked pages only, under the meta page of
//! their snapshot, dropped when a lookup comes through another one): a leaf of a
//! snapshot never changes while a reader holds that snapshot (the caller's LMDB
//! transaction), so the value kept is the value the page holds. Every block read is
//! still verified against its CID by the decoder, as ever.

use super::leaves::{Leaf, Leaves};
use super::page::To;
use super::{u64_at, Value, View};
use crate::Error;

/// Most bytes of leaves kept for reads: a decode from the store (`-o FILE`) peaks
/// at ~62 MiB of the 64 MiB bound without them.
pub(crate) const READ_BYTES: usize = 1536 << 10;
/// Longest inline value kept (a pack's slot is 17 bytes).
pub(crate) const KEPT_INLINE: usize = 32;

/// How a kept value is told apart: its first byte.
const INLINE: u8 = 0;
const OVERFLOW: u8 = 1;
/// Inline, longer than [`KEPT_INLINE`]: read the page.
const NOT_KEPT: u8 = 2;

/// What a kept leaf says of a key in its range.
enum Answer {
    Absent,
    Value(Value),
    /// The key is there, its value not kept.
    ReadPage,
}

impl Leaf {
    fn push_value(&mut self, to: &To, page: &[u8]) {
        match to {
            To::Inline(r) if r.len() <= KEPT_INLINE => {
                self.values.push(INLINE);
                self.values.extend_from_slice(&page[r.clone()]);
            }
            To::Overflow { pgno, len } => {
                self.values.push(OVERFLOW);
                self.values.extend_from_slice(&pgno.to_le_bytes());
                self.values.extend_from_slice(&len.to_le_bytes());
            }
            _ => self.values.push(NOT_KEPT),
        }
        self.value_ends.push(self.values.len() as u32);
    }

    fn answer(&self, key: &[u8]) -> Answer {
        let Some(i) = self.find(key) else {
            return Answer::Absent;
        };
        let from = match i {
            0 => 0,
            _ => self.value_ends[i - 1] as usize,
        };
        let v = &self.values[from..self.value_ends[i] as usize];
        match v[0] {
            INLINE => Answer::Value(Value::Inline(v[1..].to_vec())),
            OVERFLOW => Answer::Value(Value::Overflow {
                pgno: u64_at(v, 1),
                len: u64_at(v, 9),
            }),
            _ => Answer::ReadPage,
        }
    }
}

impl View<'_> {
    /// The value stored under `key` in the block tree, answered from `kept` when a
    /// leaf kept there holds `key`'s range, else read (and its leaf kept).
    pub(super) fn get_kept(&self, kept: &Leaves, key: &[u8]) -> Result<Option<Value>, Error> {
        match kept.with_leaf(&self.meta, key, |leaf| leaf.answer(key)) {
            Some(Answer::Absent) => return Ok(None),
            Some(Answer::Value(v)) => return Ok(Some(v)),
            Some(Answer::ReadPage) => return self.get_in(self.meta.main, true, key),
            None => {}
        }
        let Some((page, mut leaf)) = self.leaf_in_range(key)? else {
            return Ok(None);
        };
        let mut found = None;
        for n in page.nodes.iter() {
            if !matches!(n.to, To::Inline(_) | To::Overflow { .. }) {
                continue;
            }
            let k = page.key(n);
            if k == key {
                found = page.value(n);
            }
            leaf.push(k);
            leaf.push_value(&n.to, &page.bytes);
        }
        leaf.shrink();
        kept.put(&self.meta, leaf);
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, HashAlg, RAW};
    use narfs_core::Cid;

    use super::super::leaves::{Leaf, Leaves};
    use super::super::page::To;
    use super::super::Value;
    use super::{Answer, KEPT_INLINE};
    use crate::test_blocks::{put_all as put, raw_blocks};
    use crate::Store;

    #[test]
    fn a_leaf_keeps_short_inline_and_overflow_values_and_not_long_ones() {
        let page: Vec<u8> = (0..=255).collect();
        let mut leaf = Leaf::new(Vec::new(), None, 3);
        let kinds = [
            To::Inline(3..3 + 17),
            To::Inline(0..KEPT_INLINE + 1),
            To::Overflow { pgno: 7, len: 9000 },
        ];
        for (k, to) in [b"a", b"b", b"c"].iter().zip(&kinds) {
            leaf.push(*k);
            leaf.push_value(to, &page);
        }
        assert!(matches!(leaf.answer(b"a"), Answer::Value(Value::Inline(v)) if v == page[3..20]));
        assert!(matches!(leaf.answer(b"b"), Answer::ReadPage));
        assert!(matches!(
            leaf.answer(b"c"),
            Answer::Value(Value::Overflow { pgno: 7, len: 9000 })
        ));
        assert!(matches!(leaf.answer(b"ab"), Answer::Absent));
        assert!(matches!(leaf.answer(b"d"), Answer::Absent));
    }

    /// Blocks of 1 byte to ~6 KiB: stored inline short and long, and on overflow
    /// pages, as the store's writer chooses.
    fn blocks(n: u32) -> Vec<(Cid, Vec<u8>)> {
        raw_blocks("kept", 0..n)
            .into_iter()
            .enumerate()
            .map(|(i, (_, mut b))| {
                b.resize(1 + (i * 37) % 6000, i as u8);
                (cid_for(RAW, HashAlg::Sha2_256, &b), b)
            })
            .collect()
    }

    #[test]
    fn kept_values_answer_as_the_walk_does_held_or_absent() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = blocks(3000);
        put(&store, &held);
        let absent = raw_blocks("kept-absent", 0..500);
        let kept = Leaves::bounded(super::READ_BYTES);
        let snap = store.blocks.read_txn().unwrap();
        let v = snap.view();
        // Twice: the first reads keep the leaves, the second answers from them.
        for round in 0..2 {
            for (c, _) in held.iter().chain(&absent) {
                let key = c.to_bytes();
                let walk = v.get_in(v.meta.main, true, &key).unwrap();
                assert_eq!(walk.is_some(), held.iter().any(|h| h.0 == *c));
                assert_eq!(v.get_kept(&kept, &key).unwrap(), walk, "{c} round {round}");
                let near = [&key[..], &[0]].concat();
                assert_eq!(v.get_kept(&kept, &near).unwrap(), None);
            }
            assert!(kept.bytes() > 0);
        }
    }

    #[test]
    fn a_full_cache_of_values_keeps_within_its_bound_and_answers_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let held = blocks(3000);
        put(&store, &held);
        let kept = Leaves::bounded(8 << 10);
        let snap = store.blocks.read_txn().unwrap();
        let v = snap.view();
        for (c, _) in held.iter().rev() {
            let key = c.to_bytes();
            let walk = v.get_in(v.meta.main, true, &key).unwrap();
            assert!(walk.is_some());
            assert_eq!(v.get_kept(&kept, &key).unwrap(), walk);
        }
        assert!((1..=8 << 10).contains(&kept.bytes()), "{}", kept.bytes());
    }
}
