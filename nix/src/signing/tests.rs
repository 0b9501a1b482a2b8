//! Against what the real tools made (nix/testdata/signing/): a key of `nix-store
//! --generate-binary-cache-key` and a narinfo `nix copy --to file://…?secret-key=`
//! signed with it; the key `guix archive --generate-key` made and a narinfo `guix
//! publish` (Guix 1.5.0) signed with it.

use super::*;
use crate::NarInfo;

const NIX_SEC: &str = include_str!("../../testdata/signing/nix.sec");
const NIX_PUB: &str = include_str!("../../testdata/signing/nix.pub");
const NIX_NARINFO: &str = include_str!("../../testdata/signing/nix-refs.narinfo");
const GUIX_SEC: &str = include_str!("../../testdata/signing/guix.sec");
const GUIX_PUB: &str = include_str!("../../testdata/signing/guix.pub");
const GUIX_NARINFO: &str = include_str!("../../testdata/signing/guix-publish.narinfo");

fn nix_fingerprint(info: &NarInfo) -> String {
    fingerprint(
        &info.store_path,
        &info.nar_hash_string(),
        info.nar_size,
        &info.references,
    )
}

#[test]
fn nix_signature_is_the_one_nix_made() {
    let info = NarInfo::parse(NIX_NARINFO.as_bytes()).unwrap();
    assert_eq!(info.references.len(), 2, "the vector has references");
    let fp = nix_fingerprint(&info);
    assert!(fp.starts_with("1;/nix/store/bvzqcc6rx924ajj3hah51miz9vrm59qv-narfs-refs;sha256:"));
    assert!(fp.ends_with(";216;/nix/store/6vkk5d0036c030cizbmmddr01gn13skk-narfs-f,/nix/store/jc3jv21hqrvbswyi1jsh1mi8z336d4a9-narfs-g"));
    let SecretKey::Nix(key) = SecretKey::parse(NIX_SEC.as_bytes()).unwrap() else {
        panic!("a Nix key")
    };
    assert_eq!(key.public().to_string(), NIX_PUB.trim());
    // Ed25519 is deterministic: the very Sig Nix wrote.
    assert_eq!(key.sign(&fp), info.sigs[0]);
    let public = NixPublicKey::parse(NIX_PUB).unwrap();
    assert!(public.verify(&fp, &info.sigs[0]));
    // Another size, another reference list, another key name: refused.
    let other = fingerprint(
        &info.store_path,
        &info.nar_hash_string(),
        217,
        &info.references,
    );
    assert!(!public.verify(&other, &info.sigs[0]));
    assert!(!public.verify(
        &nix_fingerprint(&NarInfo {
            references: vec![],
            ..info.clone()
        }),
        &info.sigs[0]
    ));
    let renamed = info.sigs[0].replacen("narfs-test-1:", "narfs-test-2:", 1);
    assert!(!public.verify(&fp, &renamed));
}

#[test]
fn nix_keys_that_are_not_keys() {
    let (name, b64) = NIX_SEC.trim().split_once(':').unwrap();
    for bad in [
        "",
        "nokey",
        ":AAAA",
        "k:!!",
        &format!("{name}:{}", &b64[..40]),
    ] {
        assert_eq!(
            NixSecretKey::parse(bad).unwrap_err(),
            SignError::NixKeyFormat,
            "{bad}"
        );
    }
    // A secret whose public half is another key's.
    use base64::Engine as _;
    let mut bytes = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap();
    bytes[40] ^= 1;
    let damaged = format!(
        "{name}:{}",
        base64::engine::general_purpose::STANDARD.encode(&bytes)
    );
    assert_eq!(
        NixSecretKey::parse(&damaged).unwrap_err(),
        SignError::KeyMismatch
    );
}

#[test]
fn guix_publish_signature_verifies() {
    let public = GuixPublicKey::parse(GUIX_PUB.as_bytes()).unwrap();
    public.verify_narinfo(GUIX_NARINFO).unwrap();
    // The lines below the signature are not signed: rewriting them keeps it valid.
    let at = GUIX_NARINFO.find("URL:").unwrap();
    let rewritten = format!("{}URL: nar/x.nar\nCompression: none\n", &GUIX_NARINFO[..at]);
    public.verify_narinfo(&rewritten).unwrap();
    // One byte changed above it: another hash.
    let tampered = GUIX_NARINFO.replacen("NarSize: 136", "NarSize: 137", 1);
    assert_eq!(
        public.verify_narinfo(&tampered),
        Err(SignError::HashMismatch)
    );
    // Another key (a file without q: d alone makes the key).
    let other = GuixSecretKey::parse(b"(private-key (ecc (curve Ed25519) (d #0123#)))").unwrap();
    assert_eq!(
        other.public().verify_narinfo(GUIX_NARINFO),
        Err(SignError::Unauthorized)
    );
    // The real key whose q is not its d's.
    let wrong_q = GUIX_SEC.replacen("(q #82", "(q #83", 1);
    assert!(SecretKey::parse(wrong_q.as_bytes()).is_err());
    // The signature's s changed: the equation fails.
    let b64 = GUIX_NARINFO
        .split(';')
        .nth(2)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    use base64::Engine as _;
    let e = base64::engine::general_purpose::STANDARD;
    let sexp = String::from_utf8(e.decode(b64).unwrap())
        .unwrap()
        .replacen("(s #0C", "(s #0D", 1);
    let forged = GUIX_NARINFO.replacen(b64, &e.encode(sexp), 1);
    assert_eq!(public.verify_narinfo(&forged), Err(SignError::Invalid));
    assert_eq!(
        public.verify_narinfo("StorePath: x\n"),
        Err(SignError::Unsigned)
    );
    assert_eq!(
        public.verify_narinfo("StorePath: x\nSignature: 2;h;AAAA\n"),
        Err(SignError::SignatureFormat)
    );
}

#[test]
fn guix_signature_is_the_one_guix_made() {
    let SecretKey::Guix(key) = SecretKey::parse(GUIX_SEC.as_bytes()).unwrap() else {
        panic!("a Guix key")
    };
    assert_eq!(
        key.public(),
        &GuixPublicKey::parse(GUIX_PUB.as_bytes()).unwrap()
    );
    assert_eq!(key.public().to_sexp(), GUIX_PUB);
    let at = GUIX_NARINFO.find("Signature: ").unwrap();
    let line = GUIX_NARINFO[at..].lines().next().unwrap();
    let host = line.split(';').nth(1).unwrap();
    // RFC 6979 makes libgcrypt deterministic: the very line guix publish wrote.
    assert_eq!(
        format!("Signature: {}", key.signature(&GUIX_NARINFO[..at], host)),
        line
    );
    // And what narfs signs, narfs verifies.
    let text = "StorePath: /gnu/store/kh2bisbfa00gqgc83c5x0bk4pzqhj65a-x\nNarHash: sha256:0w8jqbkkdwcpzsmg3sd3yin7j1g85k0709zacgg45fgqg3r85655\nNarSize: 1\nReferences: \n";
    let signed = format!("{text}Signature: {}\n", key.signature(text, "narfs"));
    key.public().verify_narinfo(&signed).unwrap();
}

#[test]
fn guix_keys_that_are_not_keys() {
    for bad in [
        &b"(private-key (ecc (curve Ed448) (d #01#)))"[..],
        b"(private-key (ecc (curve Ed25519) (flags eddsa) (d #01#)))",
        b"(private-key (ecc (curve Ed25519)))",
        b"(private-key (ecc (curve Ed25519) (d #00#)))",
        b"(private-key (ecc (curve Ed25519) (d #1000000000000000000000000000000014DEF9DEA2F79CD65812631A5CF5D3ED#)))",
        b"(private-key (ecc (curve Ed25519) (d #010000000000000000000000000000000000000000000000000000000000000000#)))",
        b"(public-key (ecc (curve Ed25519) (q #01#)))",
        b"(private-key",
    ] {
        assert!(SecretKey::parse(bad).is_err(), "{}", String::from_utf8_lossy(bad));
    }
    assert!(GuixPublicKey::parse(b"(public-key (ecc (curve Ed25519) (q #01#)))").is_err());
}

#[test]
fn generated_keys_read_back_and_sign() {
    // Nix: the file text reads back as the same key, which signs what its public verifies.
    let key = NixSecretKey::generate("narfs-gen-1").unwrap();
    let text = key.to_file_text();
    assert!(text.starts_with("narfs-gen-1:") && !text.ends_with('\n'));
    let SecretKey::Nix(back) = SecretKey::parse(text.as_bytes()).unwrap() else {
        panic!("a Nix key")
    };
    assert_eq!(back.public(), key.public());
    let public = NixPublicKey::parse(&key.public().to_string()).unwrap();
    assert!(public.verify("1;x", &back.sign("1;x")));
    // Two keys are two secrets.
    let other = NixSecretKey::generate("narfs-gen-1").unwrap();
    assert_ne!(other.public(), key.public());
    for bad in ["", "a:b", "a b", "a\n"] {
        assert!(matches!(
            NixSecretKey::generate(bad),
            Err(SignError::KeyName)
        ));
    }
    // The real key's file text is the file Nix wrote.
    let SecretKey::Nix(real) = SecretKey::parse(NIX_SEC.as_bytes()).unwrap() else {
        panic!("a Nix key")
    };
    assert_eq!(&*real.to_file_text(), NIX_SEC.trim());

    // Guix: the same, and the real key prints as the file libgcrypt wrote.
    let key = GuixSecretKey::generate().unwrap();
    let SecretKey::Guix(back) = SecretKey::parse(key.to_sexp().as_bytes()).unwrap() else {
        panic!("a Guix key")
    };
    assert_eq!(back.public(), key.public());
    let public = GuixPublicKey::parse(key.public().to_sexp().as_bytes()).unwrap();
    let above = "StorePath: /gnu/store/x\n";
    let narinfo = format!("{above}Signature: {}\n", back.signature(above, "h"));
    public.verify_narinfo(&narinfo).unwrap();
    assert_ne!(GuixSecretKey::generate().unwrap().public(), key.public());
    let real = GuixSecretKey::parse(GUIX_SEC.as_bytes()).unwrap();
    assert_eq!(&*real.to_sexp(), GUIX_SEC);
}
