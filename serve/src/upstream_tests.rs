use super::*;
use narfs_nix::signing::GuixPublicKey;

const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";
/// A narinfo `guix publish` signed, and its public key (nix/testdata/signing/).
const GUIX: &str = include_str!("../../nix/testdata/signing/guix-publish.narinfo");
const GUIX_PUB: &str = include_str!("../../nix/testdata/signing/guix.pub");

/// A Nix narinfo as the publisher's `narfs serve` answers it.
fn upstream() -> String {
    let real = include_str!("../../nix/testdata/refs.narinfo");
    format!("{real}IPFS-CID: {CID}\nIPFS-Encoding: none\n")
}

/// The Guix one, as the publisher's `narfs serve` answers it: the signed text, then
/// its own location and the IPFS fields.
fn guix_upstream() -> String {
    let signed = narfs_nix::narinfo::guix_signed_part(GUIX).unwrap();
    format!(
        "{signed}URL: nar/{CID}.nar\nCompression: none\nFileSize: 136\nIPFS-CID: {CID}\nIPFS-Encoding: zstd\n"
    )
}

fn hash_of(text: &str) -> String {
    NarInfo::parse_any(text.as_bytes())
        .unwrap()
        .hash_part()
        .to_string()
}

/// Every line but the location's.
fn kept(t: &str) -> Vec<String> {
    t.lines()
        .filter(|l| !is_location(key(l)))
        .map(str::to_string)
        .collect()
}

#[test]
fn keeps_every_line_but_the_location() {
    let up = upstream();
    let info = NarInfo::parse(up.as_bytes()).unwrap();
    let r = rewrite(up.as_bytes(), info.hash_part()).unwrap();
    assert_eq!(r.cid.to_string(), CID);
    assert_eq!(r.encoding, Encoding::UnixFs);
    assert_eq!(
        (r.expect.nar_sha256, r.expect.nar_size),
        (info.nar_hash, info.nar_size)
    );
    let back = NarInfo::parse(r.text.as_bytes()).unwrap();
    assert_eq!(back.url, format!("nar/{CID}.nar"));
    assert_eq!(back.compression, "none");
    assert_eq!(back.nars[0].file_size, Some(info.nar_size));
    assert!(!r.text.contains("FileHash:"));
    // Every other line, byte for byte, in order.
    assert_eq!(kept(&r.text), kept(&up));
    assert!(kept(&up).iter().any(|l| l.starts_with("Sig: ")));
    // The location sits where the upstream's was: right after StorePath.
    assert!(r.text.lines().nth(1).unwrap().starts_with("URL: nar/"));
}

#[test]
fn a_guix_narinfo_keeps_its_signed_text_and_signature() {
    let up = guix_upstream();
    let hash = hash_of(&up);
    let r = rewrite(up.as_bytes(), &hash).unwrap();
    let signed = narfs_nix::narinfo::guix_signed_part(GUIX).unwrap();
    assert!(r.text.starts_with(signed), "{}", r.text);
    assert_eq!(
        &r.text[signed.len()..],
        format!("URL: nar/{CID}.nar\nCompression: none\nFileSize: 136\nIPFS-CID: {CID}\nIPFS-Encoding: zstd\n")
    );
    assert_eq!((r.encoding, r.expect.nar_size), (Encoding::ZstdNar, 136));
    GuixPublicKey::parse(GUIX_PUB.as_bytes())
        .unwrap()
        .verify_narinfo(&r.text)
        .unwrap();
    assert_eq!(r.meta.text.as_deref(), Some(up.as_str()));

    // As `guix publish` itself writes it (several groups below the signature, the IPFS
    // fields wherever they are): one location right below the signature.
    let more = format!(
        "{signed}URL: nar/lzip/x\nCompression: lzip\nFileSize: 99\nIPFS-CID: {CID}\nURL: nar/zstd/x\nCompression: zstd\nFileSize: 98\nIPFS-Encoding: none\n"
    );
    let r = rewrite(more.as_bytes(), &hash).unwrap();
    assert_eq!(
        &r.text[signed.len()..],
        format!("URL: nar/{CID}.nar\nCompression: none\nFileSize: 136\nIPFS-CID: {CID}\nIPFS-Encoding: none\n")
    );
    let back = NarInfo::parse_any(r.text.as_bytes()).unwrap();
    assert_eq!(back.nars.len(), 1);
    GuixPublicKey::parse(GUIX_PUB.as_bytes())
        .unwrap()
        .verify_narinfo(&r.text)
        .unwrap();
}

#[test]
fn a_guix_signature_over_a_location_is_refused() {
    let signed = narfs_nix::narinfo::guix_signed_part(GUIX).unwrap();
    let sig = GUIX.find("Signature: ").unwrap();
    let up = format!(
        "{}URL: nar/x\n{}Compression: none\nIPFS-CID: {CID}\nIPFS-Encoding: none\n",
        &GUIX[..sig],
        &signed[sig..]
    );
    let e = rewrite(up.as_bytes(), &hash_of(&up)).unwrap_err();
    assert!(
        matches!(&e, RewriteError::SignedLocation(k) if k == "URL"),
        "{e}"
    );
    // Unsigned, a Guix narinfo is rewritten as a Nix one (Guix will refuse it).
    let unsigned = up.replace("Signature: ", "X-Was: ");
    let r = rewrite(unsigned.as_bytes(), &hash_of(&unsigned)).unwrap();
    let back = NarInfo::parse_any(r.text.as_bytes()).unwrap();
    assert_eq!((back.nars.len(), back.url), (1, format!("nar/{CID}.nar")));
}

#[test]
fn the_encoding_must_be_said_once_and_known() {
    let up = upstream();
    let hash = hash_of(&up);
    let with = |line: &str| up.replace("IPFS-Encoding: none\n", line);
    let r = rewrite(with("IPFS-Encoding: zstd\n").as_bytes(), &hash).unwrap();
    assert_eq!(r.encoding, Encoding::ZstdNar);
    let e = rewrite(with("").as_bytes(), &hash).unwrap_err();
    assert!(matches!(e, RewriteError::NoEncoding), "{e}");
    assert!(e.to_string().contains("IPFS-Encoding"), "{e}");
    for bad in [
        "IPFS-Encoding: xz\n",
        "IPFS-Encoding: \n",
        "IPFS-Encoding: tree\n",
    ] {
        let e = rewrite(with(bad).as_bytes(), &hash).unwrap_err();
        assert!(matches!(e, RewriteError::BadEncoding(_)), "{bad}: {e}");
    }
    let e = rewrite(
        with("IPFS-Encoding: none\nIPFS-Encoding: zstd\n").as_bytes(),
        &hash,
    )
    .unwrap_err();
    assert!(matches!(e, RewriteError::Duplicate("IPFS-Encoding")), "{e}");
}

#[test]
fn refuses_what_cannot_be_proxied() {
    let up = upstream();
    let hash = hash_of(&up);
    let no_cid = up.replace(&format!("IPFS-CID: {CID}\n"), "");
    assert!(matches!(
        rewrite(no_cid.as_bytes(), &hash),
        Err(RewriteError::NoCid)
    ));
    let bad = up.replace(CID, "not-a-cid");
    assert!(matches!(
        rewrite(bad.as_bytes(), &hash),
        Err(RewriteError::BadCid(_))
    ));
    let twice = format!("{up}IPFS-CID: {CID}\n");
    assert!(matches!(
        rewrite(twice.as_bytes(), &hash),
        Err(RewriteError::Duplicate("IPFS-CID"))
    ));
    let other = "00000000000000000000000000000000";
    assert!(matches!(
        rewrite(up.as_bytes(), other),
        Err(RewriteError::OtherPath(_))
    ));
    assert!(matches!(
        rewrite(b"garbage", &hash),
        Err(RewriteError::Parse(_))
    ));
}
