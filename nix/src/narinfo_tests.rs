//! Tests of narinfo parsing and rendering, on narinfos as Nix 2.8 writes them.

use super::*;

/// A narinfo as Nix 2.8 writes it (shared with the other crate's tests).
const REAL: &str = include_str!("../testdata/refs.narinfo");

#[test]
fn parses_what_nix_writes() {
    let n = NarInfo::parse(REAL.as_bytes()).unwrap();
    assert_eq!(
        n.store_path,
        "/nix/store/nk9m6a5mswl5hr0hil41ph7m8fs7gfij-refs"
    );
    assert_eq!(n.hash_part(), "nk9m6a5mswl5hr0hil41ph7m8fs7gfij");
    assert_eq!(n.compression, "xz");
    assert_eq!(n.nar_size, 208);
    assert_eq!(
        n.nar_hash_string(),
        "sha256:180vkbqc2971cv2bgkxg1qxn9njc584gb8p00qs2yahnqkp7xb2y"
    );
    assert_eq!(n.references.len(), 2);
    assert_eq!(n.sigs.len(), 1);
    assert_eq!(
        n.ca.as_deref(),
        Some("text:sha256:1rq3g6aqp0k3xzzkm2nyyiglwq4rmf70m7v180rkbmwf6s7jn838")
    );
    assert_eq!(n.deriver, None);
}

#[test]
fn hash_formats_agree() {
    let digest: [u8; 32] = std::array::from_fn(|i| (i as u8).wrapping_mul(37) ^ 0xa5);
    let b32 = format!("sha256:{}", base32::encode(&digest));
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(parse_sha256(&b32), Some(digest));
    assert_eq!(parse_sha256(&format!("sha256:{hex}")), Some(digest));
    // base64 of the digest, computed independently of the decoder under test.
    let b64 = {
        const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut s = String::new();
        for c in digest.chunks(3) {
            let n = c.iter().fold(0u32, |n, &b| n << 8 | b as u32) << (8 * (3 - c.len()));
            for k in 0..=c.len() {
                s.push(A[(n >> (18 - 6 * k) & 63) as usize] as char);
            }
        }
        s + "="
    };
    assert_eq!(parse_sha256(&format!("sha256:{b64}")), Some(digest));
    assert_eq!(parse_sha256(&format!("sha256-{b64}")), Some(digest));
    // Wrong lengths, characters, algorithms.
    assert_eq!(parse_sha256(&b32[..b32.len() - 1]), None);
    assert_eq!(parse_sha256(&b32.replace("sha256", "sha512")), None);
    assert_eq!(parse_sha256(&format!("sha256:{}", "e".repeat(52))), None);
    assert_eq!(parse_sha256(&format!("sha256:{}", "g".repeat(64))), None);
    // A first base32 digit above 1 would overflow 256 bits.
    assert_eq!(parse_sha256(&format!("sha256:z{}", &b32[8..])), None);
}

#[test]
fn refuses_bad_fields() {
    let with = |from: &str, to: &str| NarInfo::parse(REAL.replace(from, to).as_bytes());
    for (from, to) in [
        ("/nix/store/nk9m", "/nix/store/../m"),
        ("/nix/store/nk9m", "/etc/store/nk9m"),
        ("-refs\n", "-a/b\n"),
        ("-refs\n", "-.hidden\n"),
        ("plb9s5kdm4mcb731b6m7yccfckx96zzn-f", "../../etc/passwd"),
        ("NarSize: 208", "NarSize: -1"),
        ("sha256:180v", "md5:180v"),
        ("Sig: test-key-1:", "Sig: nocolon"),
    ] {
        assert!(
            matches!(with(from, to), Err(NarInfoError::Bad { .. })),
            "{from} -> {to}"
        );
    }
    assert_eq!(
        with("NarSize: 208\n", ""),
        Err(NarInfoError::Missing("NarSize"))
    );
    assert_eq!(
        with("NarSize: 208\n", "NarSize: 208\nNarSize: 209\n"),
        Err(NarInfoError::Duplicate("NarSize"))
    );
    assert_eq!(
        with("FileSize: 204", "FileSize 204"),
        Err(NarInfoError::BadLine(5))
    );
    assert_eq!(
        NarInfo::parse(&vec![b'a'; MAX_NARINFO + 1]),
        Err(NarInfoError::TooLarge)
    );
    assert_eq!(NarInfo::parse(b"\xff: x"), Err(NarInfoError::NotUtf8));
}

#[test]
fn defaults_as_nix_reads_them() {
    let n = NarInfo::parse(
        REAL.replace("Compression: xz\n", "")
            .replace("References: plb9s5kdm4mcb731b6m7yccfckx96zzn-f y016k334c9sxqbmicvs7bbqy1gx1ilxg-d\n", "")
            .as_bytes(),
    )
    .unwrap();
    assert_eq!(n.compression, "bzip2");
    assert!(n.references.is_empty());
    let d = NarInfo::parse(
        format!("{REAL}Deriver: ffffffffffffffffffffffffffffffff-x.drv\n").as_bytes(),
    )
    .unwrap();
    assert_eq!(
        d.deriver.as_deref(),
        Some("ffffffffffffffffffffffffffffffff-x.drv")
    );
}

#[test]
fn renders_what_it_parses() {
    let n = NarInfo::parse(REAL.as_bytes()).unwrap();
    let text = n.render();
    // Equal but for what render does not write: the text read, FileSize.
    let again = NarInfo::parse(text.as_bytes()).unwrap();
    assert_eq!(again.text, text);
    assert_eq!(again.nars[0].file_size, None);
    let read_back = NarInfo {
        text: n.text.clone(),
        nars: n.nars.clone(),
        ..again
    };
    assert_eq!(read_back, n);
    // The fields Nix needs, in Nix's order; FileHash/FileSize are not kept.
    let keys: Vec<&str> = text
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, _)| k)
        .collect();
    assert_eq!(
        keys,
        [
            "StorePath",
            "URL",
            "Compression",
            "NarHash",
            "NarSize",
            "References",
            "Sig",
            "CA"
        ]
    );
    let guix = REAL.replace("/nix/store/", "/gnu/store/");
    assert!(matches!(
        NarInfo::parse(guix.as_bytes()),
        Err(NarInfoError::Bad {
            field: "StorePath",
            ..
        })
    ));
    let g = NarInfo::parse_in(StoreDir::Guix, guix.as_bytes()).unwrap();
    assert_eq!(g.hash_part(), "nk9m6a5mswl5hr0hil41ph7m8fs7gfij");
}

const GUIX: &str = include_str!(
    "../testdata/guix-publish/lzip/k9pad896kygyvpxli7f20bkl9813p9y4-hello.txt.narinfo"
);

#[test]
fn parses_a_guix_narinfo_with_a_group_per_compression() {
    use crate::narinfo::{decode_rank, NarFile};
    let n = NarInfo::parse_in(StoreDir::Guix, GUIX.as_bytes()).unwrap();
    assert_eq!(
        n.nars,
        [
            NarFile {
                url: "nar/lzip/k9pad896kygyvpxli7f20bkl9813p9y4-hello.txt".into(),
                compression: "lzip".into(),
                file_size: Some(99),
            },
            NarFile {
                url: "nar/zstd/k9pad896kygyvpxli7f20bkl9813p9y4-hello.txt".into(),
                compression: "zstd".into(),
                file_size: Some(98),
            },
        ]
    );
    assert_eq!(
        (n.url.as_str(), n.compression.as_str()),
        (n.nars[1].url.as_str(), "zstd")
    );
    assert_eq!(n.nar_size, 120);
    assert!(
        n.references.is_empty(),
        "`References: ` with nothing after it"
    );
    assert_eq!(n.text, GUIX);
    assert!(n.signature.is_some());
    // Two groups are Guix's: a Nix narinfo with two URLs is refused.
    let nix = GUIX.replace("/gnu/store/", "/nix/store/");
    assert_eq!(
        NarInfo::parse(nix.as_bytes()),
        Err(NarInfoError::Duplicate("URL"))
    );
    // A group without its URL, and a second Signature, are refused.
    let no_url = GUIX.replacen("URL: nar/zstd", "X: nar/zstd", 1);
    assert_eq!(
        NarInfo::parse_in(StoreDir::Guix, no_url.as_bytes()),
        Err(NarInfoError::Missing("URL"))
    );
    let two_sigs = format!("{GUIX}Signature: 1;x;y\n");
    assert_eq!(
        NarInfo::parse_in(StoreDir::Guix, two_sigs.as_bytes()),
        Err(NarInfoError::Duplicate("Signature"))
    );
    // The fastest first, unknown ones never.
    let ranks: Vec<_> = ["none", "zstd", "gzip", "xz", "lzip", "bzip2"]
        .iter()
        .map(|c| decode_rank(c).unwrap())
        .collect();
    assert!(ranks.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(decode_rank("brotli"), None);
}

#[test]
fn parse_any_reads_each_dialect_by_its_store_path() {
    let g = NarInfo::parse_any(GUIX.as_bytes()).unwrap();
    assert_eq!(
        g,
        NarInfo::parse_in(StoreDir::Guix, GUIX.as_bytes()).unwrap()
    );
    let nix = include_str!("../testdata/refs.narinfo");
    let n = NarInfo::parse_any(nix.as_bytes()).unwrap();
    assert_eq!(n, NarInfo::parse(nix.as_bytes()).unwrap());
    // A Guix narinfo keeps Guix's rules (several groups), a Nix one Nix's.
    assert_eq!(g.nars.len(), 2);
    let two = format!("{nix}URL: nar/x.nar\n");
    assert_eq!(
        NarInfo::parse_any(two.as_bytes()),
        Err(NarInfoError::Duplicate("URL"))
    );
    // No StorePath, or one in no store narfs knows: refused as by parse.
    let other = GUIX.replace("/gnu/store/", "/opt/store/");
    assert!(matches!(
        NarInfo::parse_any(other.as_bytes()),
        Err(NarInfoError::Bad {
            field: "StorePath",
            ..
        })
    ));
    assert!(NarInfo::parse_any(b"URL: x\n").is_err());
}

#[test]
fn guix_signed_part_ends_with_the_signature_line() {
    use crate::narinfo::guix_signed_part;
    let signed = guix_signed_part(GUIX).unwrap();
    let sig = GUIX.find("Signature: ").unwrap();
    assert_eq!(&signed[..sig], &GUIX[..sig]);
    assert!(signed[sig..].starts_with("Signature: 1;"));
    assert!(signed.ends_with('\n') && !signed[sig..signed.len() - 1].contains('\n'));
    assert!(GUIX[signed.len()..].starts_with("URL: "));
    // Where Guix cuts: at the first "Signature:", even inside another line.
    let odd = "StorePath: x\nX-Note: Signature: here\nSignature: 1;h;s\n";
    assert_eq!(
        guix_signed_part(odd),
        Some("StorePath: x\nX-Note: Signature: here\n")
    );
    assert_eq!(
        guix_signed_part("StorePath: x\nSignature: 1;h;s"),
        Some("StorePath: x\nSignature: 1;h;s")
    );
    assert_eq!(guix_signed_part("StorePath: x\n"), None);
}
