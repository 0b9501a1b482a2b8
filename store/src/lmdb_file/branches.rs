//! The branch pages lookups went through, kept checked, for one snapshot.
//!
//! Every lookup walks from a tree's root to a leaf, reading and checking each page on
//! the way ([`View::page`]): in a decode from a packed store those checks of the same
//! few branch pages, over and over, took ~9% of the CPU (`perf`). A branch page of a
//! snapshot never changes while that snapshot is the newest (LMDB copies a page on
//! write; it reuses a page only once no reader can see it, and then a newer meta page
//! names the snapshot), so a page checked once is kept here, under the meta page of
//! its snapshot; a lookup through another snapshot clears the cache. Only checked
//! pages are kept, so damage is found as before the first time a page is read, and a
//! page damaged on disk after that is read from here as it was: never the damaged
//! bytes. Bounded: [`MAX_PAGES`] pages (a store of a million blocks has ~200 branch
//! pages); when full, it starts again empty.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::page::Page;
use super::Meta;

/// Most branch pages kept (each 4 KiB and its nodes: ~2–3 MiB at most).
pub(super) const MAX_PAGES: usize = 256;

/// Checked branch pages of one snapshot, by page number.
#[derive(Default)]
pub(super) struct Branches(Mutex<State>);

#[derive(Default)]
struct State {
    meta: Option<Meta>,
    pages: HashMap<u64, Arc<Page>>,
}

impl std::fmt::Debug for Branches {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("Branches")
            .field("pages", &st.pages.len())
            .finish_non_exhaustive()
    }
}

impl Branches {
    /// Branch page `pgno` of the snapshot `meta`, if kept.
    pub(super) fn get(&self, meta: &Meta, pgno: u64) -> Option<Arc<Page>> {
        let st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if st.meta.as_ref() != Some(meta) {
            return None;
        }
        st.pages.get(&pgno).cloned()
    }

    /// Keeps branch page `pgno` of the snapshot `meta`, checked by the caller.
    pub(super) fn put(&self, meta: &Meta, pgno: u64, page: Arc<Page>) {
        let mut st = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if st.meta.as_ref() != Some(meta) || st.pages.len() >= MAX_PAGES {
            st.pages.clear();
            st.meta = Some(*meta);
        }
        st.pages.insert(pgno, page);
    }

    /// Pages kept (tests).
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.0.lock().unwrap().pages.len()
    }
}

#[cfg(test)]
mod tests {
    use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
    use narfs_core::Cid;

    use crate::Store;

    /// Puts blocks `from..to` (small: many per leaf page) into `store`.
    fn put(store: &Store, from: u32, to: u32) -> Vec<(Cid, Vec<u8>)> {
        let mut sink = store.sink().unwrap();
        let blocks: Vec<_> = (from..to)
            .map(|i| {
                let b = format!("block {i}").into_bytes();
                let c = cid_for(RAW, HashAlg::Sha2_256, &b);
                sink.put(&c, &b).unwrap();
                (c, b)
            })
            .collect();
        sink.finish(None).unwrap();
        blocks
    }

    #[test]
    fn lookups_keep_branch_pages_and_see_every_new_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        // Enough keys for branch pages above the leaves.
        let mut blocks = put(&store, 0, 3000);
        for (c, b) in &blocks {
            assert_eq!(store.get_block(c).unwrap().as_ref(), Some(b));
        }
        let kept = store.blocks.branches_kept();
        assert!((1..=super::MAX_PAGES).contains(&kept), "{kept}");
        // A later write moves the tree's pages: lookups go by the new snapshot's,
        // and find the old blocks and the new.
        blocks.extend(put(&store, 3000, 6000));
        for (c, b) in &blocks {
            assert_eq!(store.get_block(c).unwrap().as_ref(), Some(b), "{c}");
        }
        let absent = cid_for(RAW, HashAlg::Sha2_256, b"not stored");
        assert_eq!(store.get_block(&absent).unwrap(), None);
    }
}
