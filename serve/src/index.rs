//! The in-memory index of the store's root records: store-path hash → imported root
//! (for `/<hash>.narinfo`) and root CID → record (for `/nar/<cid>.nar`). Rebuilt when
//! the store's [`RootsVersion`] changes, or cannot be told.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use narfs_store::{RootRecord, RootsVersion, Store};

use narfs_nix::store_path::hash_part;

/// One consistent view of the records.
#[derive(Default)]
pub struct Snapshot {
    by_hash: HashMap<String, Arc<RootRecord>>,
    by_cid: HashMap<String, Arc<RootRecord>>,
}

impl Snapshot {
    fn build(records: Vec<RootRecord>) -> Snapshot {
        let mut s = Snapshot::default();
        for rec in records.into_iter().map(Arc::new) {
            if let Some(h) = rec.narinfo.as_ref().and_then(|m| hash_part(&m.store_path)) {
                s.by_hash.insert(h.to_string(), rec.clone());
            }
            s.by_cid.insert(rec.root.clone(), rec);
        }
        s
    }

    /// The imported root of the store path with this hash part.
    pub fn by_hash(&self, hash: &str) -> Option<&Arc<RootRecord>> {
        self.by_hash.get(hash)
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
