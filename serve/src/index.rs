//! The in-memory index of the store's root records: store-path hash → imported root
//! (for `/<hash>.narinfo`) and root CID → record (for `/nar/<cid>.nar`). Rebuilt when
//! the store's [`RootsVersion`] changes, or cannot be told.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use narfs_store::{RootRecord, RootsVersion, Store};

use narfs_nix::{StoreDir, StorePath};

/// One consistent view of the records.
#[derive(Default)]
pub struct Snapshot {
    by_hash: HashMap<String, Arc<RootRecord>>,
    by_cid: HashMap<String, Arc<RootRecord>>,
    /// How many of the narinfo-bearing records are `/gnu/store` items, how many not.
    guix: usize,
    nix: usize,
}

impl Snapshot {
    fn build(records: Vec<RootRecord>) -> Snapshot {
        let mut s = Snapshot::default();
        for rec in records.into_iter().map(Arc::new) {
            if let Some(meta) = &rec.narinfo {
                // Either store dir: a Guix item is asked for by its hash too.
                if let Ok(p) = StorePath::parse(&meta.store_path) {
                    s.by_hash.insert(p.hash_part().to_string(), rec.clone());
                }
                match crate::narinfo::dialect(meta) {
                    Some(StoreDir::Guix) => s.guix += 1,
                    _ => s.nix += 1,
                }
            }
            s.by_cid.insert(rec.root.clone(), rec);
        }
        s
    }

    /// The imported root of the store path with this hash part.
    pub fn by_hash(&self, hash: &str) -> Option<&Arc<RootRecord>> {
        self.by_hash.get(hash)
    }

    /// The `StoreDir:` of `/nix-cache-info`: `/gnu/store` when every item with a
    /// narinfo is a Guix one, else `/nix/store`. A mixed store says `/nix/store`
    /// because only Nix reads it (it refuses a cache of another store dir; Guix never
    /// asks), and each narinfo is answered in its own dialect whatever this says.
    pub fn store_dir(&self) -> StoreDir {
        if self.guix > 0 && self.nix == 0 {
            StoreDir::Guix
        } else {
            StoreDir::Nix
        }
    }

    /// A record of this root CID (canonical string form).
    pub fn by_cid(&self, cid: &str) -> Option<&Arc<RootRecord>> {
        self.by_cid.get(cid)
    }
}

pub struct Index {
    store: Store,
    state: Mutex<(Option<RootsVersion>, Arc<Snapshot>)>,
}

impl Index {
    pub fn new(store: Store) -> Index {
        Index {
            store,
            state: Mutex::new((None, Arc::default())),
        }
    }

    /// The current records (blocking: may re-read the store's roots).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, narfs_store::Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let version = self.store.roots_version();
        if state.0.is_none() || state.0 != version {
            let snap = Arc::new(Snapshot::build(self.store.roots()?));
            *state = (version, snap);
        }
        Ok(state.1.clone())
    }
}
