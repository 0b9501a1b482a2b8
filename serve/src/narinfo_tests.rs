use super::*;
use narfs_nix::signing::{GuixPublicKey, NixPublicKey};

/// A narinfo as Nix 2.8 writes it (shared with the other crate's tests).
const REAL: &str = include_str!("../../nix/testdata/refs.narinfo");
/// A narinfo `guix publish` signed, and its key pair (nix/testdata/signing/).
const GUIX: &str = include_str!("../../nix/testdata/signing/guix-publish.narinfo");
const GUIX_SEC: &str = include_str!("../../nix/testdata/signing/guix.sec");
const GUIX_PUB: &str = include_str!("../../nix/testdata/signing/guix.pub");
const NIX_SEC: &str = include_str!("../../nix/testdata/signing/nix.sec");
const NIX_PUB: &str = include_str!("../../nix/testdata/signing/nix.pub");

const ROOT: &str = "bafkreihdwdcefgh4dqkjv67uzcmw7ojee6xedzdetojuzjevtenxquvyku";

fn record(n: &NarInfo, meta: NarInfoMeta) -> RootRecord {
    RootRecord {
        root: ROOT.into(),
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
        narinfo: Some(meta),
        sealed: false,
    }
}

fn keys() -> Keys {
    let mut k = Keys::default();
    assert!(k.add(SecretKey::parse(NIX_SEC.as_bytes()).unwrap()));
    assert!(k.add(SecretKey::parse(GUIX_SEC.as_bytes()).unwrap()));
    assert!(
        !k.add(SecretKey::parse(NIX_SEC.as_bytes()).unwrap()),
        "one key per dialect"
    );
    k
}

#[test]
fn renders_for_nix() {
    let n = NarInfo::parse(REAL.as_bytes()).unwrap();
    let rec = record(&n, NarInfoMeta::from(&n));
    let text = render(
        &rec,
        &NarInfoMeta::from(&n),
        &Keys::default(),
        NarCompression::None,
    )
    .unwrap();
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
    assert!(text.ends_with(&format!("\nIPFS-CID: {}\nIPFS-Encoding: none\n", rec.root)));
    // The zstd fallback says so: a proxy cannot tell it from the blocks.
    let zstd = RootRecord {
        encoding: narfs_core::Encoding::ZstdNar,
        ..rec.clone()
    };
    let text = render(
        &zstd,
        &NarInfoMeta::from(&n),
        &Keys::default(),
        NarCompression::None,
    )
    .unwrap();
    let said = text.lines().find_map(|l| l.strip_prefix("IPFS-Encoding: "));
    assert_eq!(
        said.map(str::parse),
        Some(Ok(narfs_core::Encoding::ZstdNar))
    );
    // A record written before narinfo fields existed still loads.
    let mut old = serde_json::to_value(&rec).unwrap();
    old.as_object_mut().unwrap().remove("narinfo");
    let old: RootRecord = serde_json::from_value(old).unwrap();
    assert_eq!(old.narinfo, None);
}

#[test]
fn nix_items_keep_their_sigs_and_get_ours() {
    let n = NarInfo::parse(REAL.as_bytes()).unwrap();
    let meta = NarInfoMeta::from(&n);
    let text = render(
        &record(&n, meta.clone()),
        &meta,
        &keys(),
        NarCompression::None,
    )
    .unwrap();
    let back = NarInfo::parse(text.as_bytes()).unwrap();
    assert_eq!(back.sigs.len(), 2, "{text}");
    assert_eq!(back.sigs[0], n.sigs[0], "the original first");
    let fp = fingerprint(
        &n.store_path,
        &n.nar_hash_string(),
        n.nar_size,
        &n.references,
    );
    assert!(NixPublicKey::parse(NIX_PUB)
        .unwrap()
        .verify(&fp, &back.sigs[1]));
    // A record our key already signed is not signed twice.
    let again = NarInfoMeta {
        sigs: back.sigs.clone(),
        ..meta
    };
    let text = render(
        &record(&n, again.clone()),
        &again,
        &keys(),
        NarCompression::None,
    )
    .unwrap();
    assert_eq!(NarInfo::parse(text.as_bytes()).unwrap().sigs, back.sigs);
}

#[test]
fn guix_items_keep_their_signed_text() {
    let n = NarInfo::parse_in(StoreDir::Guix, GUIX.as_bytes()).unwrap();
    let meta = NarInfoMeta::from(&n);
    assert!(meta.text.is_some(), "import keeps a Guix narinfo's text");
    for keys in [Keys::default(), keys()] {
        let text = render(
            &record(&n, meta.clone()),
            &meta,
            &keys,
            NarCompression::None,
        )
        .unwrap();
        let sig_end = GUIX.find("URL:").unwrap();
        assert_eq!(
            &text[..sig_end],
            &GUIX[..sig_end],
            "byte for byte through Signature:"
        );
        assert_eq!(
            &text[sig_end..],
            format!(
                "URL: nar/{ROOT}.nar\nCompression: none\nFileSize: {}\nIPFS-CID: {ROOT}\nIPFS-Encoding: none\n",
                n.nar_size
            )
        );
        GuixPublicKey::parse(GUIX_PUB.as_bytes())
            .unwrap()
            .verify_narinfo(&text)
            .unwrap();
        let back = NarInfo::parse_in(StoreDir::Guix, text.as_bytes()).unwrap();
        assert_eq!((back.nars.len(), back.compression.as_str()), (1, "none"));
    }
}

#[test]
fn guix_items_narfs_encoded_are_signed_by_its_key() {
    let n = NarInfo::parse_in(StoreDir::Guix, GUIX.as_bytes()).unwrap();
    let meta = NarInfoMeta {
        store_path: n.store_path.clone(),
        references: vec!["kh2bisbfa00gqgc83c5x0bk4pzqhj65a-sigvec.txt".into()],
        deriver: None,
        sigs: vec![],
        ca: None,
        text: None,
    };
    let rec = record(&n, meta.clone());
    let unsigned = render(&rec, &meta, &Keys::default(), NarCompression::None).unwrap();
    assert!(!unsigned.contains("Signature:"), "{unsigned}");
    let signed = render(&rec, &meta, &keys(), NarCompression::None).unwrap();
    let public = GuixPublicKey::parse(GUIX_PUB.as_bytes()).unwrap();
    public.verify_narinfo(&signed).unwrap();
    assert_eq!(
        public.verify_narinfo(&unsigned),
        Err(narfs_nix::signing::SignError::Unsigned)
    );
    let back = NarInfo::parse_in(StoreDir::Guix, signed.as_bytes()).unwrap();
    assert_eq!((back.nar_hash, back.nar_size), (n.nar_hash, n.nar_size));
    assert_eq!(back.references, meta.references);
    assert!(signed.starts_with(&format!(
        "StorePath: {}\nNarHash: {}\nNarSize: {}\nReferences: kh2",
        n.store_path,
        n.nar_hash_string(),
        n.nar_size
    )));
}

#[test]
fn compressed_nars_in_both_dialects() {
    let n = NarInfo::parse(REAL.as_bytes()).unwrap();
    let meta = NarInfoMeta::from(&n);
    let rec = record(&n, meta.clone());
    for (c, url, name) in [
        (NarCompression::Zstd, ".nar.zst", "zstd"),
        (NarCompression::Xz, ".nar.xz", "xz"),
    ] {
        let text = render(&rec, &meta, &keys(), c).unwrap();
        let back = NarInfo::parse(text.as_bytes()).unwrap();
        assert_eq!(back.url, format!("nar/{}{url}", rec.root));
        assert_eq!(back.compression, name);
        assert!(!text.contains("FileSize"), "{text}");
        assert_eq!(back.sigs.len(), 2, "signed as the plain one: {text}");
    }
    // Guix: the signed text byte for byte, the zstd NAR first, the plain one for a
    // Guix without zstd; no xz (Guix reads none).
    let n = NarInfo::parse_in(StoreDir::Guix, GUIX.as_bytes()).unwrap();
    let meta = NarInfoMeta::from(&n);
    let rec = record(&n, meta.clone());
    let sig_end = GUIX.find("URL:").unwrap();
    let text = render(&rec, &meta, &keys(), NarCompression::Zstd).unwrap();
    assert_eq!(&text[..sig_end], &GUIX[..sig_end]);
    assert_eq!(
        &text[sig_end..],
        format!(
            "URL: nar/{ROOT}.nar.zst\nCompression: zstd\nURL: nar/{ROOT}.nar\n\
             Compression: none\nIPFS-CID: {ROOT}\nIPFS-Encoding: none\n"
        )
    );
    GuixPublicKey::parse(GUIX_PUB.as_bytes())
        .unwrap()
        .verify_narinfo(&text)
        .unwrap();
    let back = NarInfo::parse_in(StoreDir::Guix, text.as_bytes()).unwrap();
    assert_eq!(back.nars.len(), 2);
    let xz = render(&rec, &meta, &keys(), NarCompression::Xz).unwrap();
    let plain = render(&rec, &meta, &keys(), NarCompression::None).unwrap();
    assert_eq!(xz, plain);
}
