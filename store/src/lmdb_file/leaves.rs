//! Lookups of many keys in the block tree by one write session: the keys of each leaf
//! page read, kept for the session's next lookups ([`Leaves`]), and a walk that stays
//! on the leaf of the previous key while the next one falls inside it ([`Lookup`]).
//!
//! Why: encoding into a store that already holds the item looks up every block, and
//! each lookup read and checked a leaf page (`pread` of 4 KiB, every node checked,
//! the page's `Vec`s allocated and freed): ~3 µs a block, 0.2 s of CPU for the 62,000
//! blocks of a 570 MB NAR of 46,537 small files, a quarter of what the encode
//! itself costs. CIDs are hashes, so an item's keys land all over the tree, but a
//! store of 60,000 blocks has only ~1,400 leaf pages: kept, each is read once.
//!
//! A leaf of a snapshot never changes while that snapshot is the newest (see
//! [`super::branches`]), so the keys are kept under the meta page of their snapshot
//! and dropped when a lookup comes through a newer one. Only the keys of checked
//! pages are kept (the check is the same [`View::page`] as every read's), and only
//! whether a key is there is answered from them: a value is always read from the file.
//! Bounded: [`MAX_BYTES`] of keys; when full, an arbitrary leaf makes room.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::page::To;
use super::{Keys, Meta, View, NO_PAGE};
use crate::Error;

/// Most bytes of keys (and their offsets) kept: a store of ~120,000 blocks' leaves.
pub(crate) const MAX_BYTES: usize = 4 << 20;

/// The keys of one checked leaf page that name values (not named trees), ascending.
pub(crate) struct LeafKeys {
    /// The keys back to back.
    bytes: Vec<u8>,
    /// Where each key ends in `bytes`.
    ends: Vec<u16>,
}

impl LeafKeys {
    fn key(&self, i: usize) -> &[u8] {
        let from = match i {
            0 => 0,
            _ => self.ends[i - 1] as usize,
        };
        &self.bytes[from..self.ends[i] as usize]
    }

    fn len(&self) -> usize {
        self.ends.len()
    }

    /// Bytes kept for it.
    fn size(&self) -> usize {
        self.bytes.len() + 2 * self.ends.len()
    }

    /// Whether `key` lies between its first and last key (then the leaf is the one
    /// that would hold it: leaves split the key space in order).
    fn covers(&self, key: &[u8]) -> bool {
        self.len() > 0 && self.key(0) <= key && key <= self.key(self.len() - 1)
    }

    fn contains(&self, key: &[u8]) -> bool {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.key(mid).cmp(key) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return true,
            }
        }
        false
    }
}

/// Leaf keys of one snapshot, by page number, shared by a session's threads.
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
    pages: HashMap<u64, Arc<LeafKeys>>,
    bytes: usize,
}

impl Leaves {
    /// Keeping at most `max` bytes of keys.
    pub(crate) fn bounded(max: usize) -> Leaves {
        Leaves {
            state: Mutex::default(),
            max,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, meta: &Meta, pgno: u64) -> Option<Arc<LeafKeys>> {
        let st = self.lock();
        match st.meta.as_ref() == Some(meta) {
            true => st.pages.get(&pgno).cloned(),
            false => None,
        }
    }

    fn put(&self, meta: &Meta, pgno: u64, keys: Arc<LeafKeys>) {
        let mut st = self.lock();
        if st.meta.as_ref() != Some(meta) {
            st.pages.clear();
            st.bytes = 0;
            st.meta = Some(*meta);
        }
        while st.bytes + keys.size() > self.max {
            let Some(&any) = st.pages.keys().next() else {
                break;
            };
            if let Some(gone) = st.pages.remove(&any) {
                st.bytes -= gone.size();
            }
        }
        if keys.size() > self.max {
            return;
        }
        st.bytes += keys.size();
        if let Some(old) = st.pages.insert(pgno, keys) {
            st.bytes -= old.size();
        }
    }

    /// Bytes kept (tests).
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

/// Lookups through one snapshot: whether the block tree holds each key asked, best
/// asked in ascending order (a key inside the previous key's leaf is answered from it).
pub(crate) struct Lookup<'v> {
    view: View<'v>,
    kept: &'v Leaves,
    leaf: Option<Arc<LeafKeys>>,
}

impl<'v> View<'v> {
    /// Lookups of keys in the block tree, leaf keys kept in `kept`.
    pub(crate) fn lookup(self, kept: &'v Leaves) -> Lookup<'v> {
        Lookup {
            view: self,
            kept,
            leaf: None,
        }
    }
}

impl Lookup<'_> {
    /// Whether the block tree holds a value under `key`.
    pub(crate) fn holds(&mut self, key: &[u8]) -> Result<bool, Error> {
        if let Some(leaf) = self.leaf.as_ref().filter(|l| l.covers(key)) {
            return Ok(leaf.contains(key));
        }
        let leaf = self.leaf_keys(key)?;
        let held = leaf.as_ref().is_some_and(|l| l.contains(key));
        self.leaf = leaf;
        Ok(held)
    }

    /// The keys of the leaf that would hold `key` (`None`: an empty tree).
    fn leaf_keys(&self, key: &[u8]) -> Result<Option<Arc<LeafKeys>>, Error> {
        let v = &self.view;
        let tree = v.meta.main;
        if tree.root == NO_PAGE {
            return Ok(None);
        }
        let pgno = v.leaf_pgno(tree, key)?;
        if let Some(keys) = self.kept.get(&v.meta, pgno) {
            return Ok(Some(keys));
        }
        let page = v.page(pgno, true, Keys::Bytes, true)?;
        let mut keys = LeafKeys {
            bytes: Vec::with_capacity(page.bytes.len()),
            ends: Vec::with_capacity(page.nodes.len()),
        };
        for n in page
            .nodes
            .iter()
            .filter(|n| matches!(n.to, To::Inline(_) | To::Overflow { .. }))
        {
            keys.bytes.extend_from_slice(page.key(n));
            keys.ends.push(keys.bytes.len() as u16);
        }
        keys.bytes.shrink_to_fit();
        let keys = Arc::new(keys);
        self.kept.put(&v.meta, pgno, keys.clone());
        Ok(Some(keys))
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
    use narfs_core::Cid;

    use super::Leaves;
    use crate::Store;

    fn cids(from: u32, to: u32) -> Vec<(Cid, Vec<u8>)> {
        (from..to)
            .map(|i| {
                let b = format!("leaf block {i}").into_bytes();
                (cid_for(RAW, HashAlg::Sha2_256, &b), b)
            })
            .collect()
    }

    fn put(store: &Store, blocks: &[(Cid, Vec<u8>)]) {
        let mut sink = store.sink().unwrap();
        for (c, b) in blocks {
            sink.put(c, b).unwrap();
        }
        sink.finish(None).unwrap();
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
