//! The in-memory index of the store's root records: store-path hash → imported root
//! (for `/<hash>.narinfo`) and root CID → record (for `/nar/<cid>.nar`). Rebuilt when
//! the `roots/` directory changes (its mtime moves with every record added or
//! removed, since records are renamed into it); while that mtime is very recent it is
//! not trusted, as two changes within one timestamp tick would look like one.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use narfs_store::{RootRecord, Store};

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

/// How long after a change the directory's mtime is not trusted to tell the next one.
const SETTLE: Duration = Duration::from_secs(2);

pub struct Index {
    store: Store,
    roots_dir: PathBuf,
    state: Mutex<(Option<SystemTime>, Arc<Snapshot>)>,
}

impl Index {
    pub fn new(store: Store) -> Index {
        let roots_dir = store.dir().join("roots");
        Index {
            store,
            roots_dir,
            state: Mutex::new((None, Arc::default())),
        }
    }

    /// The current records (blocking: may re-read the `roots/` directory).
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, narfs_store::Error> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mtime = std::fs::metadata(&self.roots_dir)
            .and_then(|m| m.modified())
            .ok();
        let settled = mtime
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > SETTLE);
        if state.0.is_none() || state.0 != mtime || !settled {
            let snap = Arc::new(Snapshot::build(self.store.roots()?));
            *state = (if settled { mtime } else { None }, snap);
        }
        Ok(state.1.clone())
    }
}
