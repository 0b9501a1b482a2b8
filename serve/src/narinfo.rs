//! The narinfo `narfs serve` answers for an imported root: the original cache's
//! fields (signatures included), the NAR uncompressed at `nar/<root>.nar`, and the
//! root CID as `IPFS-CID:`. The format itself is `narfs_nix::narinfo`'s.

use std::fmt::Write as _;

use narfs_nix::narinfo::{parse_sha256, NarInfo};
use narfs_store::{NarInfoMeta, RootRecord};

/// The narinfo of `rec`, imported with `meta`; `None` if the record's NarHash is not
/// a sha256 Nix can read (a damaged record is not served).
pub fn render(rec: &RootRecord, meta: &NarInfoMeta) -> Option<String> {
    let info = NarInfo {
        store_path: meta.store_path.clone(),
        url: format!("nar/{}.nar", rec.root),
        compression: "none".into(),
        nar_hash: parse_sha256(&rec.nar_hash)?,
        nar_size: rec.nar_size,
        references: meta.references.clone(),
        deriver: meta.deriver.clone(),
        sigs: meta.sigs.clone(),
        ca: meta.ca.clone(),
        ..NarInfo::default()
    };
    let mut s = info.render();
    let _ = writeln!(s, "IPFS-CID: {}", rec.root);
    Some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A narinfo as Nix 2.8 writes it (shared with the other crate's tests).
    const REAL: &str = include_str!("../../nix/testdata/refs.narinfo");

    #[test]
    fn renders_for_nix() {
        let n = NarInfo::parse(REAL.as_bytes()).unwrap();
        let rec = RootRecord {
            root: "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku".into(),
            name: Some(n.store_path.clone()),
            nar_hash: n.nar_hash_string(),
            nar_size: n.nar_size,
            chunker: "fixed:262144".into(),
            hash: "sha2-256".into(),
            profile: "kubo-v1".into(),
            encoding: narfs_core::Encoding::UnixFs,
            blocks: 1,
            block_bytes: 1,
            new_blocks: 0,
            new_bytes: 0,
            created: 0,
            narinfo: Some(NarInfoMeta::from(&n)),
        };
        let text = render(&rec, &NarInfoMeta::from(&n)).unwrap();
        let back = NarInfo::parse(text.as_bytes()).unwrap();
        assert_eq!(back.url, format!("nar/{}.nar", rec.root));
        assert_eq!(back.compression, "none");
        assert_eq!(
            (
                back.nar_hash,
                back.nar_size,
                &back.references,
                &back.sigs,
                &back.ca
            ),
            (n.nar_hash, n.nar_size, &n.references, &n.sigs, &n.ca)
        );
        assert!(text.contains(&format!("\nIPFS-CID: {}\n", rec.root)));
        // A record written before narinfo fields existed still loads.
        let mut old = serde_json::to_value(&rec).unwrap();
        old.as_object_mut().unwrap().remove("narinfo");
        let old: RootRecord = serde_json::from_value(old).unwrap();
        assert_eq!(old.narinfo, None);
    }
}
