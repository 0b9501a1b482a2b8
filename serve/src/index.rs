//! The server's view of the store's root records: store-path hash → imported root
//! (for `/<hash>.narinfo`), root CID → record (for `/nar/<cid>.nar`) and the cache's
//! `StoreDir:`. Each answer is a lookup in the store's record indexes (B-tree descents
//! by checked `pread`, O(log N)), so nothing is rebuilt or held per record: a store of
//! 100,000 roots answers as fast as one of ten, and a record added while serving is
//! seen by the next request.

use std::sync::Arc;

use narfs_core::Cid;
use narfs_nix::StoreDir;
use narfs_store::{RootRecord, Store};

/// Lookups into one store's records.
pub struct Snapshot {
    store: Store,
}

impl Snapshot {
    /// The imported root of the store path with this hash part (a record with a
    /// narinfo; of several, the first in the table's order).
    pub fn by_hash(&self, hash: &str) -> Result<Option<Arc<RootRecord>>, narfs_store::Error> {
        let found = self.store.find_by_path_hash(hash)?;
        Ok(found.into_iter().next().map(Arc::new))
    }

    /// The `StoreDir:` of `/nix-cache-info`: `/gnu/store` when every item with a
    /// narinfo is a Guix one, else `/nix/store`. A mixed store says `/nix/store`
    /// because only Nix reads it (it refuses a cache of another store dir; Guix never
    /// asks), and each narinfo is answered in its own dialect whatever this says.
    pub fn store_dir(&self) -> Result<StoreDir, narfs_store::Error> {
        let n = self.store.narinfo_counts()?;
        Ok(if n.guix > 0 && n.nix == 0 {
            StoreDir::Guix
        } else {
            StoreDir::Nix
        })
    }

    /// A record of this root CID.
    pub fn by_cid(&self, cid: &Cid) -> Result<Option<Arc<RootRecord>>, narfs_store::Error> {
        let found = self.store.find_by_cid(cid)?;
        Ok(found.into_iter().next().map(Arc::new))
    }
}

pub struct Index {
    snapshot: Arc<Snapshot>,
}

impl Index {
    pub fn new(store: Store) -> Index {
        Index {
            snapshot: Arc::new(Snapshot { store }),
        }
    }

    /// The lookups (cheap: nothing is read until asked).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, narfs_store::Error> {
        Ok(self.snapshot.clone())
    }
}
