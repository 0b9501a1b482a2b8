//! Raw blocks and stores holding them, for the store's unit tests of lookups (the
//! write session's, `held`'s and the kept leaves').

use std::ops::Range;

use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
use narfs_core::Cid;

use crate::Store;

/// Raw blocks `"{tag} block {i}"` for `i` in `range`, with their CIDs.
pub(crate) fn raw_blocks(tag: &str, range: Range<u32>) -> Vec<(Cid, Vec<u8>)> {
    range
        .map(|i| {
            let b = format!("{tag} block {i}").into_bytes();
            (cid_for(RAW, HashAlg::Sha2_256, &b), b)
        })
        .collect()
}

/// A new store holding `blocks`.
pub(crate) fn store_holding(blocks: &[(Cid, Vec<u8>)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    put_all(&store, blocks);
    (dir, store)
}

/// Puts `blocks` in a session of its own; what it newly stored.
pub(crate) fn put_all(store: &Store, blocks: &[(Cid, Vec<u8>)]) -> u64 {
    let mut sink = store.sink().unwrap();
    for (c, b) in blocks {
        sink.put(c, b).unwrap();
    }
    sink.finish(None).unwrap().new_blocks
}
