//! What `encode --json` prints of an encoding: one object, its keys in alphabetical
//! order (the order they have always had), the store's counts filled in by whoever
//! stored the blocks.

use serde::Serialize;

use crate::encode::Encoded;
use crate::layout::Layout;

/// The report of one encoding.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EncodeReport {
    /// Bytes of the blocks produced, repeats included.
    pub block_bytes: u64,
    /// Blocks produced, repeats included.
    pub blocks: u64,
    /// The chunker, by name.
    pub chunker: String,
    /// `none` for a UnixFS tree, `zstd` for the fallback.
    pub compression: &'static str,
    /// Cumulative DAG size of the root.
    pub dag_size: u64,
    /// Why the fallback was taken, when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_reason: Option<String>,
    /// The hash function of the CIDs.
    pub hash: &'static str,
    /// Nix's `NarHash`: `sha256:<nix base32>`.
    pub nar_hash: String,
    /// The NAR's size.
    pub nar_size: u64,
    /// Blocks the store did not hold before (when a store was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_blocks: Option<u64>,
    /// Their bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_bytes: Option<u64>,
    /// Their bytes as stored (compressed).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub new_stored_bytes: Option<u64>,
    /// The profile, by name.
    pub profile: String,
    /// The root CID.
    pub root: String,
}

impl EncodeReport {
    /// The report of `e`, made with `layout` under the profile named `profile`.
    pub fn new(e: &Encoded, layout: &Layout, profile: &str) -> EncodeReport {
        EncodeReport {
            block_bytes: e.counts.bytes,
            blocks: e.counts.blocks,
            chunker: layout.chunker.to_string(),
            compression: e.encoding.name(),
            dag_size: e.tsize,
            fallback_reason: e.fallback_reason.clone(),
            hash: layout.hash.name(),
            nar_hash: narfs_nix::narinfo::nar_hash_string(&e.nar_sha256),
            nar_size: e.nar_size,
            new_blocks: None,
            new_bytes: None,
            new_stored_bytes: None,
            profile: profile.to_string(),
            root: e.root.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::NullSink;

    #[test]
    fn keys_in_alphabetical_order_and_counts_only_when_set() {
        let layout = crate::Profile::KuboV1.layout();
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("f"), b"hi").unwrap();
        let mut nar = Vec::new();
        narfs_core::nar::dump_path(&tmp.path().join("f"), &mut nar).unwrap();
        let e = crate::encode(&nar[..], &layout, &mut NullSink::default(), None).unwrap();
        let mut r = EncodeReport::new(&e, &layout, "kubo-v1");
        let keys = |r: &EncodeReport| -> Vec<String> {
            let v = serde_json::to_value(r).unwrap();
            let keys: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
            // serde_json's map sorts: compare with the serialised order instead.
            let text = serde_json::to_string(r).unwrap();
            let mut pos: Vec<(usize, String)> = keys
                .into_iter()
                .map(|k| (text.find(&format!("\"{k}\":")).unwrap(), k))
                .collect();
            pos.sort();
            pos.into_iter().map(|(_, k)| k).collect()
        };
        let k = keys(&r);
        assert!(k.windows(2).all(|w| w[0] < w[1]), "{k:?}");
        assert!(!k.contains(&"new_blocks".to_string()));
        r.new_blocks = Some(1);
        assert!(keys(&r).contains(&"new_blocks".to_string()));
        assert_eq!(
            r.nar_hash,
            narfs_nix::narinfo::nar_hash_string(&e.nar_sha256)
        );
    }
}
