use std::io::Write;

use narfs_core::block::MemoryStore;
use narfs_core::nar::NarWriter;
use narfs_core::{Cid, Encoding};
use narfs_encoder::{encode_or_fallback, Profile};
use narfs_nix::base32 as nixbase32;
use sha2::{Digest, Sha256};

use super::*;

/// A NAR of a directory holding a 300 KiB incompressible file (several leaves; its
/// fallback's compressed file is larger than the NAR) and a symlink.
fn nar(seed: u8) -> Vec<u8> {
    let body = narfs_core::noise::bytes(seed as u64, 300 * 1024);
    let mut w = NarWriter::new(Vec::new());
    w.directory(b"").unwrap();
    w.file(b"data", false, body.len() as u64, &mut &body[..])
        .unwrap();
    w.symlink(b"link", b"data").unwrap();
    w.end_directory().unwrap();
    w.finish().unwrap()
}

fn expect_of(nar: &[u8]) -> Expect {
    Expect {
        nar_sha256: Sha256::digest(nar).into(),
        nar_size: nar.len() as u64,
        stream_hash: true,
    }
}

/// Two NARs encoded into one store, as `encoding` (the fallback when `fallback`).
fn store_of(fallback: bool) -> (MemoryStore, [(Cid, Vec<u8>); 2], Encoding) {
    let mut store = MemoryStore::new();
    let mut roots = Vec::new();
    let mut encoding = Encoding::UnixFs;
    for seed in [1, 2] {
        let n = nar(seed);
        let (e, s) = encode_or_fallback(
            || Ok::<_, narfs_encoder::EncodeError>(&n[..]),
            &Profile::KuboV1.layout(),
            || Ok(std::mem::take(&mut store)),
            fallback,
            None,
        )
        .unwrap();
        store = s;
        encoding = e.encoding;
        roots.push((e.root, n));
    }
    let roots: [(Cid, Vec<u8>); 2] = roots.try_into().unwrap();
    (store, roots, encoding)
}

fn run(s: &MemoryStore, root: &Cid, enc: Encoding, expect: &Expect) -> (Vec<u8>, Option<Problem>) {
    let mut out = Vec::new();
    let err = decode_checked(s, root, enc, expect, &mut out, &Limits::default())
        .err()
        .map(|e| *e.problem);
    (out, err)
}

#[test]
fn a_true_record_decodes_byte_exact() {
    for fallback in [false, true] {
        let (s, [(root, nar), _], enc) = store_of(fallback);
        assert_eq!(enc == Encoding::ZstdNar, fallback);
        let (out, err) = run(&s, &root, enc, &expect_of(&nar));
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, nar);
        check(&s, &root, enc, &expect_of(&nar), &Limits::default()).unwrap();
    }
}

#[test]
fn lying_records_never_give_the_recorded_size() {
    for fallback in [false, true] {
        let (s, [(root, nar), (other, other_nar)], enc) = store_of(fallback);
        let good = expect_of(&nar);
        let mut hash = good;
        hash.nar_sha256[0] ^= 1;
        let short = Expect {
            nar_size: good.nar_size - 16,
            ..good
        };
        let long = Expect {
            nar_size: good.nar_size + 16,
            ..good
        };
        // The other NAR has the same length: only the hash tells them apart.
        assert_eq!(other_nar.len(), nar.len());
        let cases: [(&str, &Cid, Expect); 4] = [
            ("hash changed", &root, hash),
            ("size 16 short", &root, short),
            ("size 16 long", &root, long),
            ("root of another NAR", &other, good),
        ];
        for (what, cid, expect) in cases {
            let (out, err) = run(&s, cid, enc, &expect);
            let err = err.unwrap_or_else(|| panic!("{what} (fallback {fallback}): no error"));
            assert!(
                (out.len() as u64) < expect.nar_size,
                "{what}: {} bytes out of a recorded {}",
                out.len(),
                expect.nar_size
            );
            let right = match what {
                // Refused at the write past NarSize, or (when a write ends exactly
                // there) because those first bytes do not hash to NarHash.
                "size 16 short" => matches!(
                    err,
                    Problem::NarHashMismatch { .. } | Problem::LongerThanRecorded(_)
                ),
                "size 16 long" => {
                    matches!(err, Problem::ShorterThanRecorded { got, .. } if got == good.nar_size)
                }
                _ => matches!(err, Problem::NarHashMismatch { .. }),
            };
            assert!(right, "{what} (fallback {fallback}): {err}");
            assert!(check(&s, cid, enc, &expect, &Limits::default()).is_err());
        }
    }
}

/// A sealed record (`stream_hash` false): the bytes are not hashed, but its NarSize
/// still bounds and completes the output, and `check` (what `verify` runs) still
/// hashes them.
#[test]
fn without_the_hash_stream_the_size_still_holds() {
    for fallback in [false, true] {
        let (s, [(root, nar), _], enc) = store_of(fallback);
        let good = expect_of(&nar).with_stream_hash(false);
        let (out, err) = run(&s, &root, enc, &good);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(out, nar);
        for delta in [-16i64, 16] {
            let lie = Expect {
                nar_size: good.nar_size.checked_add_signed(delta).unwrap(),
                ..good
            };
            let (out, err) = run(&s, &root, enc, &lie);
            let err = err.unwrap_or_else(|| panic!("size {delta:+}: no error"));
            assert!((out.len() as u64) < lie.nar_size, "size {delta:+}: {err}");
            assert!(
                matches!(
                    err,
                    Problem::LongerThanRecorded(_) | Problem::ShorterThanRecorded { .. }
                ),
                "size {delta:+}: {err}"
            );
        }
        let mut hash = good;
        hash.nar_sha256[0] ^= 1;
        let e = check(&s, &root, enc, &hash, &Limits::default()).unwrap_err();
        assert!(matches!(*e.problem, Problem::NarHashMismatch { .. }), "{e}");
    }
}

#[test]
fn the_last_byte_waits_for_finish() {
    let nar = nar(3);
    let mut w = Checked::new(Vec::new(), expect_of(&nar));
    w.write_all(&nar).unwrap();
    assert_eq!(w.inner.len(), nar.len() - 1, "held back until finish");
    assert_eq!(w.finish().unwrap(), nar);

    let mut bad = expect_of(&nar);
    bad.nar_sha256[31] ^= 0x80;
    let mut w = Checked::new(Vec::new(), bad);
    w.write_all(&nar[..100]).unwrap();
    assert_eq!(w.inner.len(), 99, "the last byte so far waits");
    let e = w.write_all(&nar[100..]).unwrap_err();
    assert!(matches!(
        mismatch(&e),
        Some(Problem::NarHashMismatch { .. })
    ));
    assert_eq!(
        w.inner.len(),
        99,
        "nothing of the completing write went out"
    );

    // A whole NAR whose record claims more: all but its last byte, then an error.
    let mut long = expect_of(&nar);
    long.nar_size += 16;
    let mut w = Checked::new(Vec::new(), long);
    w.write_all(&nar).unwrap();
    assert_eq!(w.inner.len(), nar.len() - 1);
    assert!(matches!(
        w.finish(),
        Err(Problem::ShorterThanRecorded { .. })
    ));
    assert!(matches!(
        Checked::new(Vec::new(), expect_of(&nar)).finish(),
        Err(Problem::ShorterThanRecorded { got: 0, .. })
    ));
}

/// Gathered writes (`write_vectored`, as the writer behind the decoder makes them)
/// are checked on their total as one write: all but the last byte out, the held byte
/// first; a gathered write completing NarSize with a wrong hash sends nothing of it,
/// and one past NarSize is refused.
#[test]
fn a_gathered_write_is_checked_as_one() {
    use std::io::IoSlice;
    let nar = nar(4);
    let (a, rest) = nar.split_at(1000);
    let (b, c) = rest.split_at(70_000);
    let mut w = Checked::new(Vec::new(), expect_of(&nar));
    assert_eq!(w.write_vectored(&[IoSlice::new(a)]).unwrap(), a.len());
    let bufs = [
        IoSlice::new(b),
        IoSlice::new(&[]),
        IoSlice::new(c),
        IoSlice::new(&[]),
    ];
    assert_eq!(w.write_vectored(&bufs).unwrap(), b.len() + c.len());
    assert_eq!(w.inner.len(), nar.len() - 1, "the last byte held");
    assert_eq!(w.finish().unwrap(), nar);

    let mut bad = expect_of(&nar);
    bad.nar_sha256[0] ^= 1;
    let mut w = Checked::new(Vec::new(), bad);
    assert_eq!(w.write_vectored(&[IoSlice::new(a)]).unwrap(), a.len());
    let e = w
        .write_vectored(&[IoSlice::new(b), IoSlice::new(c)])
        .unwrap_err();
    assert!(matches!(
        mismatch(&e),
        Some(Problem::NarHashMismatch { .. })
    ));
    assert_eq!(w.inner.len(), a.len() - 1, "nothing of it went out");

    let mut w = Checked::new(Vec::new(), expect_of(&nar));
    let e = w
        .write_vectored(&[IoSlice::new(&nar), IoSlice::new(b"x")])
        .unwrap_err();
    assert!(matches!(mismatch(&e), Some(Problem::LongerThanRecorded(_))));
    assert!(w.inner.is_empty());
}

/// A block given whole is held whole (released by the next write or `finish`), under
/// the same checks: a completing block with a wrong hash sends nothing of it.
#[test]
fn a_whole_block_is_held_whole_and_checked() {
    use crate::BlockWrite as _;
    let nar = nar(5);
    let (a, rest) = nar.split_at(1000);
    let (b, c) = rest.split_at(100_000);
    let mut w = Checked::new(Vec::new(), expect_of(&nar));
    w.write_all(a).unwrap();
    w.write_block(b.to_vec()).unwrap();
    assert_eq!(
        w.inner.len(),
        a.len(),
        "the block is held, the byte before it not"
    );
    w.write_all(c).unwrap();
    assert_eq!(w.inner.len(), nar.len() - 1);
    assert_eq!(w.finish().unwrap(), nar);

    let mut w = Checked::new(Vec::new(), expect_of(&nar));
    w.write_all(&nar[..nar.len() - 5000]).unwrap();
    w.write_block(nar[nar.len() - 5000..].to_vec()).unwrap();
    assert_eq!(
        w.finish().unwrap(),
        nar,
        "a held last block goes out at finish"
    );

    let mut bad = expect_of(&nar);
    bad.nar_sha256[5] ^= 1;
    let mut w = Checked::new(Vec::new(), bad);
    w.write_all(&nar[..1000]).unwrap();
    let e = w.write_block(nar[1000..].to_vec()).unwrap_err();
    assert!(matches!(
        mismatch(&e),
        Some(Problem::NarHashMismatch { .. })
    ));
    assert_eq!(w.inner.len(), 999, "nothing of it went out");
}

#[test]
fn from_record_reads_narfs_nar_hash() {
    let nar = nar(4);
    let e = expect_of(&nar);
    let text = format!("sha256:{}", nixbase32::encode(&e.nar_sha256));
    assert_eq!(Expect::from_record(&text, e.nar_size).unwrap(), e);
    for bad in [
        text.replace("sha256:", "sha512:"),
        text[..text.len() - 1].to_string(),
        format!("{text}0"),
        String::new(),
    ] {
        assert!(Expect::from_record(&bad, e.nar_size).is_err(), "{bad:?}");
    }
}
