//! Lookups of many keys in the block tree by one write session: each leaf page read
//! is kept, its keys and the range of keys the branch pages above it send to it
//! ([`Leaves`]), so the next key in that range is answered without a walk down the
//! tree ([`Lookup`]).
//!
//! Why: encoding into a store that already holds the item looks up every block, and
//! each lookup walked the branch pages and read and checked a leaf page (`pread` of
//! 4 KiB, every node checked, the page's `Vec`s allocated and freed): ~3 µs a block,
//! 0.2 s of CPU for the 62,000 blocks of a 570 MB NAR of 46,537 small files, a
//! quarter of what the encode itself costs. CIDs are hashes, so an item's keys land
//! all over the tree, but a store of 60,000 blocks has only ~1,400 leaf pages: kept,
//! each is read once, and a lookup is one binary search over the kept ranges and one
//! in the leaf's keys.
//!
//! A leaf of a snapshot never changes while that snapshot is the newest (see
//! [`super::branches`]), so the leaves are kept under the meta page of their snapshot
//! and dropped when a lookup comes through a newer one. A leaf's range is where the
//! walk from the root sends a key (the separators of the branch pages on its way,
//! each range inside its parent's), so the answer for a key in it is the walk's; the
//! ranges of one snapshot's leaves never overlap. Only checked pages are kept (the
//! check is the same [`View::page`] as every read's), and only whether a key is there
//! is answered from them: a value is always read from the file. Bounded: [`MAX_BYTES`]
//! of keys; when full, an arbitrary leaf makes room.

use std::sync::Mutex;

use super::page::To;
use super::{prefix, Keys, Meta, View, NO_PAGE};
use crate::Error;

/// Most bytes of keys (and their offsets and ranges) kept: the leaves of a store of
/// ~100,000 blocks.
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// One kept leaf: the range of keys the tree sends to it, and its keys that name
/// values (not named trees), ascending.
struct Leaf {
    /// The range's first key (empty: from the lowest key on).
    from: Box<[u8]>,
    /// The first key past the range (`None`: to the highest key).
    to: Option<Box<[u8]>>,
    /// The keys back to back.
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<u16>,
    /// Each key's [`prefix`].
    prefixes: Vec<u64>,
}

impl Leaf {
    fn key(&self, i: usize) -> &[u8] {
        let from = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        &self.bytes[from..self.ends[i] as usize]
    }

    fn push(&mut self, key: &[u8]) {
        self.bytes.extend_from_slice(key);
        self.ends.push(self.bytes.len() as u16);
        self.prefixes.push(prefix(key));
    }

    /// Bytes kept for it.
    fn size(&self) -> usize {
        let range = self.from.len() + self.to.as_ref().map_or(0, |t| t.len());
        self.bytes.len() + 10 * self.ends.len() + range
    }

    /// Whether the tree sends `key` to this leaf (`key` ≥ `from` is the caller's).
    fn takes(&self, key: &[u8]) -> bool {
        self.to.as_deref().is_none_or(|to| key < to)
    }

    fn contains(&self, key: &[u8]) -> bool {
        let p = prefix(key);
        let first = self.prefixes.partition_point(|&x| x < p);
        (first..self.prefixes.len())
            .take_while(|&i| self.prefixes[i] == p)
            .any(|i| self.key(i) == key)
    }
}

/// Leaves of one snapshot, by range, shared by a session's threads.
pub(crate) struct Leaves {
    state: Mutex<State>,
    /// Most bytes kept.
    max: usize,
}

impl Default for Leaves {
    fn default() -> Self {
        Leaves::bounded(MAX_BYTES)
    }
}

#[derive(Default)]
struct State {
    meta: Option<Meta>,
    /// Sorted by `from`; no two ranges overlap. Boxed: an insertion moves pointers,
    /// not 100-byte leaves (1,400 of them, each inserted once, moved ~100 MB).
    #[allow(clippy::vec_box)]
    leaves: Vec<Box<Leaf>>,
    /// The [`prefix`] of each leaf's `from`.
    froms: Vec<u64>,
    bytes: usize,
}

impl State {
    /// The last leaf whose range starts at or before `key`.
    fn before(&self, key: &[u8]) -> Option<usize> {
        let p = prefix(key);
        let end = self.froms.partition_point(|&x| x <= p);
        // Those with a smaller prefix start before `key`; equal ones may not.
        (0..end)
            .rev()
            .find(|&i| self.froms[i] < p || &*self.leaves[i].from <= key)
    }
}

impl Leaves {
    /// Keeping at most `max` bytes.
    pub(crate) fn bounded(max: usize) -> Leaves {
        Leaves {
            state: Mutex::default(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the kept leaf whose range holds `key` holds `key` (`None`: no kept
    /// leaf's range holds it).
    fn answer(&self, meta: &Meta, key: &[u8]) -> Option<bool> {
        let st = self.lock();
        if st.meta.as_ref() != Some(meta) {
            return None;
        }
        let leaf = &st.leaves[st.before(key)?];
        leaf.takes(key).then(|| leaf.contains(key))
    }

    fn put(&self, meta: &Meta, leaf: Leaf) {
        let mut st = self.lock();
        if st.meta.as_ref() != Some(meta) {
            st.leaves.clear();
            st.froms.clear();
            st.bytes = 0;
            st.meta = Some(*meta);
        }
        let size = leaf.size();
        if size > self.max {
            return;
        }
        while st.bytes + size > self.max && !st.leaves.is_empty() {
            // An arbitrary one: the keys of a lookup are hashes, no leaf is likelier.
            let any = st.bytes % st.leaves.len();
            let gone = st.leaves.remove(any);
            st.froms.remove(any);
            st.bytes -= gone.size();
        }
        // Ranges of one snapshot do not overlap: one already kept is this leaf's.
        let at = st.before(&leaf.from).map_or(0, |i| i + 1);
        let clash = at
            .checked_sub(1)
            .is_some_and(|i| st.leaves[i].takes(&leaf.from))
            || st.leaves.get(at).is_some_and(|next| leaf.takes(&next.from));
        if clash {
            return;
        }
        st.bytes += size;
        st.froms.insert(at, prefix(&leaf.from));
        st.leaves.insert(at, Box::new(leaf));
    }

    /// Bytes kept (tests).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// Lookups through one snapshot: whether the block tree holds each key asked.
pub(crate) struct Lookup<'v> {
    view: View<'v>,
    kept: &'v Leaves,
}

impl<'v> View<'v> {
    /// Lookups of keys in the block tree, leaves kept in `kept`.
    pub(crate) fn lookup(self, kept: &'v Leaves) -> Lookup<'v> {
        Lookup { view: self, kept }
    }
}

impl Lookup<'_> {
    /// Whether the block tree holds a value under `key`.
    pub(crate) fn holds(&mut self, key: &[u8]) -> Result<bool, Error> {
        let v = &self.view;
        if let Some(held) = self.kept.answer(&v.meta, key) {
            return Ok(held);
        }
        let tree = v.meta.main;
        if tree.root == NO_PAGE {
            return Ok(false);
        }
        // Down from the root as `View::get` goes, narrowing the range at each branch.
        let (mut from, mut to): (Vec<u8>, Option<Vec<u8>>) = (Vec::new(), None);
        let mut pgno = tree.root;
        for _ in 1..tree.depth {
            let page = v.branch(pgno)?;
            // The last child whose separator is ≤ key; the first has none.
            let i = page.separators_at_most(key);
            if i > 0 {
                let sep = page.key(&page.nodes[i]);
                if sep > from.as_slice() {
                    from = sep.to_vec();
                }
            }
            if let Some(next) = page.nodes.get(i + 1) {
                let sep = page.key(next);
                if to.as_deref().is_none_or(|t| sep < t) {
                    to = Some(sep.to_vec());
                }
            }
            let To::Child(child) = page.nodes[i].to else {
                unreachable!("a branch page holds branch nodes")
            };
            pgno = child;
        }
        let page = v.page(pgno, true, Keys::Bytes, true)?;
        let mut leaf = Leaf {
            from: from.into_boxed_slice(),
            to: to.map(Vec::into_boxed_slice),
            bytes: Vec::with_capacity(page.bytes.len()),
            ends: Vec::with_capacity(page.nodes.len()),
            prefixes: Vec::with_capacity(page.nodes.len()),
        };
        for n in page
            .nodes
            .iter()
            .filter(|n| matches!(n.to, To::Inline(_) | To::Overflow { .. }))
        {
            leaf.push(page.key(n));
        }
        leaf.bytes.shrink_to_fit();
        let held = leaf.contains(key);
        self.kept.put(&v.meta, leaf);
        Ok(held)
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::Cid;

    use super::Leaves;
    use crate::test_blocks::{put_all as put, raw_blocks};
    use crate::Store;

    fn cids(from: u32, to: u32) -> Vec<(Cid, Vec<u8>)> {
        raw_blocks("leaf", from..to)
    }

    /// Asks `keys` in the order given through one lookup; the answers.
    fn ask(store: &Store, kept: &Leaves, keys: &[Vec<u8>]) -> Vec<bool> {
        let snap = store.blocks.read_txn().unwrap();
        let mut look = snap.view().lookup(kept);
        keys.iter().map(|k| look.holds(k).unwrap()).collect()
    }

    #[test]
    fn answers_as_the_tree_does_in_any_order_and_after_a_new_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = Leaves::default();
        let (held, absent) = (cids(0, 3000), cids(3000, 4000));
        put(&store, &held);
        let mut keys: Vec<(Vec<u8>, bool)> = held
            .iter()
            .map(|(c, _)| (c.to_bytes(), true))
            .chain(absent.iter().map(|(c, _)| (c.to_bytes(), false)))
            .collect();
        // Keys below, between and above every stored one, and a named tree's name.
        keys.extend([
            (vec![], false),
            (vec![0xff; 40], false),
            (b"narfs-roots".to_vec(), false),
        ]);
        keys.sort();
        let (k, want): (Vec<_>, Vec<_>) = keys.iter().cloned().unzip();
        assert_eq!(ask(&store, &kept, &k), want);
        assert!(kept.bytes() > 0);
        // Unsorted, and again from the kept leaves.
        let (k, want): (Vec<_>, Vec<_>) = keys.iter().rev().cloned().unzip();
        assert_eq!(ask(&store, &kept, &k), want);
        // A write makes a new snapshot: the kept leaves of the old one are not used.
        put(&store, &absent);
        let stored: Vec<Vec<u8>> = held
            .iter()
            .chain(&absent)
            .map(|(c, _)| c.to_bytes())
            .collect();
        let want: Vec<bool> = k.iter().map(|k| stored.contains(k)).collect();
        assert_eq!(want.iter().filter(|&&w| w).count(), 4000);
        assert_eq!(ask(&store, &kept, &k), want);
    }

    #[test]
    fn answers_as_a_walk_from_the_root_does_in_a_deeper_tree() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = Leaves::default();
        let held = cids(0, 12_000);
        put(&store, &held);
        let snap = store.blocks.read_txn().unwrap();
        // Ranges narrowed by two levels of branch pages.
        assert!(
            snap.view().meta.main.depth >= 3,
            "{:?}",
            snap.view().meta.main
        );
        let mut look = snap.view().lookup(&kept);
        for (c, _) in held.iter().chain(&cids(12_000, 14_000)) {
            let key = c.to_bytes();
            let walk = snap.view().get(&key).unwrap().is_some();
            assert_eq!(look.holds(&key).unwrap(), walk, "{c}");
            // Keys next to it, in whichever leaf's range they fall.
            for near in [[&key[..], &[0]].concat(), key[..key.len() - 1].to_vec()] {
                let walk = snap.view().get(&near).unwrap().is_some();
                assert_eq!(look.holds(&near).unwrap(), walk);
            }
        }
    }

    #[test]
    fn a_full_cache_makes_room_and_answers_stay_right() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Room for about two leaves' keys.
        let kept = Leaves::bounded(8 << 10);
        let held = cids(0, 3000);
        put(&store, &held);
        let mut keys: Vec<Vec<u8>> = held.iter().map(|(c, _)| c.to_bytes()).collect();
        keys.sort();
        assert_eq!(ask(&store, &kept, &keys), vec![true; keys.len()]);
        assert!((1..=8 << 10).contains(&kept.bytes()), "{}", kept.bytes());
        keys.reverse();
        assert_eq!(ask(&store, &kept, &keys), vec![true; keys.len()]);
        assert!(kept.bytes() <= 8 << 10);
    }

    #[test]
    fn an_empty_store_holds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        let kept = Leaves::default();
        let keys: Vec<Vec<u8>> = cids(0, 10).iter().map(|(c, _)| c.to_bytes()).collect();
        assert_eq!(ask(&store, &kept, &keys), vec![false; 10]);
    }
}
