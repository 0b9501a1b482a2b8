//! Adversarial inputs for the NAR reader and block verification: lying lengths, huge
//! names, deep nesting, huge directories, bad CIDs, wrong blocks. Each must give its
//! specific error quickly, never a panic or an allocation the size of a claim. (CAR
//! files: `adversarial_car.rs`; DAG decoding: `adversarial_dag.rs`; restoring:
//! `adversarial_restore.rs`.)

#[path = "adversarial/util.rs"]
mod util;

use std::io::{self, Read};
use std::time::{Duration, Instant};

use multihash::Multihash;
use narfs_core::block::{cid_for, verify, BlockError, BlockSink, HashAlg, MemoryStore, RAW};
use narfs_core::nar::{Event, Limits, NarError, NarReader};
use narfs_core::Cid;
use narfs_decoder::Problem;
use narfs_encoder::{encode, EncodeError, Layout};
use util::{decode_err, dir, dir_head, nar_of, raw, tok};

/// Reads every event (and every file's contents) until the end or the first error.
fn read_all<R: Read>(input: R, limits: Limits) -> Result<u64, NarError> {
    let mut reader = NarReader::with_limits(input, limits);
    let mut events = 0u64;
    while let Some(event) = reader.next()? {
        if let Event::File { mut contents, .. } = event {
            io::copy(&mut contents, &mut io::sink()).map_err(|e| contents.error(e))?;
        }
        events += 1;
    }
    Ok(events)
}

fn read_err(nar: &[u8]) -> NarError {
    read_all(nar, Limits::default()).expect_err("a hostile NAR must be refused")
}

const HUGE: u64 = 1 << 63;

#[test]
fn nar_length_of_2_pow_63() {
    // As the magic's length.
    let mut nar = HUGE.to_le_bytes().to_vec();
    nar.extend_from_slice(b"nix-archive-1\0\0\0");
    assert!(matches!(read_err(&nar), NarError::BadMagic));

    // As a token's length.
    let mut nar = nar_of(&[b"nix-archive-1"]);
    nar.extend_from_slice(&HUGE.to_le_bytes());
    let e = read_err(&nar);
    assert!(
        matches!(&e, NarError::UnexpectedToken { offset: 24, found, .. } if found.contains(&HUGE.to_string())),
        "{e}"
    );

    // As a name, a symlink target, and file contents.
    let mut nar = dir_head();
    for t in [&b"entry"[..], b"(", b"name"] {
        tok(&mut nar, t);
    }
    nar.extend_from_slice(&HUGE.to_le_bytes());
    let e = read_err(&nar);
    assert!(
        matches!(
            e,
            NarError::TooLong {
                what: "an entry name",
                len: HUGE,
                max: 4096,
                ..
            }
        ),
        "{e}"
    );

    let mut nar = nar_of(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target"]);
    nar.extend_from_slice(&HUGE.to_le_bytes());
    let e = read_err(&nar);
    assert!(
        matches!(
            e,
            NarError::TooLong {
                what: "a symlink target",
                len: HUGE,
                ..
            }
        ),
        "{e}"
    );

    let mut nar = nar_of(&[b"nix-archive-1", b"(", b"type", b"regular", b"contents"]);
    nar.extend_from_slice(&HUGE.to_le_bytes());
    nar.extend_from_slice(b"a few bytes");
    let e = read_err(&nar);
    assert!(
        matches!(
            e,
            NarError::Truncated {
                what: "file contents",
                offset: 107
            }
        ),
        "{e}"
    );
    // The encoder says the same, without trying to buffer the file.
    let e = encode(
        nar.as_slice(),
        &Layout::default(),
        &mut MemoryStore::new(),
        None,
    )
    .expect_err("truncated");
    assert!(
        matches!(
            e,
            EncodeError::Nar(NarError::Truncated {
                what: "file contents",
                ..
            })
        ),
        "{e}"
    );
}

#[test]
fn lengths_just_past_the_input_even_with_huge_limits() {
    // With the limits raised to the maximum, a length is still never trusted beyond
    // the bytes that actually arrive.
    let open = Limits {
        max_name_len: u64::MAX,
        max_target_len: u64::MAX,
        max_depth: 16,
    };
    let mut base = dir_head();
    for t in [&b"entry"[..], b"(", b"name"] {
        tok(&mut base, t);
    }
    for claim in [HUGE, 41, 40] {
        let mut nar = base.clone();
        nar.extend_from_slice(&claim.to_le_bytes());
        nar.extend_from_slice(&[b'a'; 40]); // 40 bytes remain, no padding, no more
        let at = nar.len() as u64 - 40;
        let e = read_all(nar.as_slice(), open).expect_err("truncated");
        match claim {
            40 => assert!(
                matches!(
                    e,
                    NarError::Truncated {
                        what: "a string length",
                        ..
                    }
                ),
                "{e}"
            ),
            _ => assert!(
                matches!(e, NarError::Truncated { what: "an entry name", offset } if offset == at),
                "{e}"
            ),
        }
    }
    let mut nar = nar_of(&[b"nix-archive-1", b"(", b"type", b"symlink", b"target"]);
    nar.extend_from_slice(&HUGE.to_le_bytes());
    nar.extend_from_slice(b"/short");
    let e = read_all(nar.as_slice(), open).expect_err("truncated");
    assert!(
        matches!(
            e,
            NarError::Truncated {
                what: "a symlink target",
                ..
            }
        ),
        "{e}"
    );
}

#[test]
fn names_of_one_mib() {
    let mut nar = dir_head();
    for t in [&b"entry"[..], b"(", b"name"] {
        tok(&mut nar, t);
    }
    let at = nar.len() as u64;
    tok(&mut nar, &vec![b'n'; 1 << 20]);
    let e = read_err(&nar);
    assert!(
        matches!(e, NarError::TooLong { offset, what: "an entry name", len: 1_048_576, max: 4096 } if offset == at),
        "{e}"
    );
    // The message stays short.
    assert!(e.to_string().len() < 200);
    let target = nar_of(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"symlink",
        b"target",
        &vec![b't'; 1 << 20],
        b")",
    ]);
    assert!(matches!(
        read_err(&target),
        NarError::TooLong {
            what: "a symlink target",
            ..
        }
    ));
}

/// A NAR generated on the fly, never held in memory: `head` once, `body(i)` for
/// i in 0..n, then `tail(n)`.
struct Generated<F: FnMut(u64, &mut Vec<u8>)> {
    n: u64,
    i: u64,
    step: F,
    buf: Vec<u8>,
    at: usize,
}

impl<F: FnMut(u64, &mut Vec<u8>)> Read for Generated<F> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.buf.len() {
            if self.i > self.n + 1 {
                return Ok(0);
            }
            self.buf.clear();
            self.at = 0;
            (self.step)(self.i, &mut self.buf);
            self.i += 1;
        }
        let k = out.len().min(self.buf.len() - self.at);
        out[..k].copy_from_slice(&self.buf[self.at..self.at + k]);
        self.at += k;
        Ok(k)
    }
}

/// Step 0 is the head, steps 1..=n the items, step n+1 the tail.
fn generated<F: FnMut(u64, &mut Vec<u8>)>(n: u64, step: F) -> Generated<F> {
    Generated {
        n,
        i: 0,
        step,
        buf: Vec::new(),
        at: 0,
    }
}

#[test]
fn nesting_100_000_levels_in_a_nar() {
    const LEVELS: u64 = 100_000;
    let nested = || {
        generated(LEVELS, |i, out| {
            if i == 0 {
                out.extend_from_slice(&dir_head());
            } else if i <= LEVELS {
                for t in [&b"entry"[..], b"(", b"name", b"d", b"node", b"(", b"type"] {
                    tok(out, t);
                }
                tok(out, b"directory");
            } else {
                for _ in 0..=LEVELS {
                    tok(out, b")");
                    tok(out, b")");
                }
            }
        })
    };
    let e = read_all(nested(), Limits::default()).expect_err("too deep");
    assert!(matches!(e, NarError::TooDeep { max: 4096, .. }), "{e}");
    let e =
        encode(nested(), &Layout::default(), &mut MemoryStore::new(), None).expect_err("too deep");
    assert!(
        matches!(e, EncodeError::Nar(NarError::TooDeep { max: 4096, .. })),
        "{e}"
    );
}

#[test]
fn a_directory_of_1_000_000_entries_streams_in_linear_time() {
    fn entries(n: u64) -> impl Read {
        generated(n, move |i, out| {
            if i == 0 {
                out.extend_from_slice(&dir_head());
            } else if i <= n {
                for t in [&b"entry"[..], b"(", b"name"] {
                    tok(out, t);
                }
                tok(out, format!("{:08}", i).as_bytes());
                for t in [&b"node"[..], b"(", b"type", b"regular", b"contents"] {
                    tok(out, t);
                }
                out.extend_from_slice(&0u64.to_le_bytes());
                tok(out, b")");
                tok(out, b")");
            } else {
                tok(out, b")");
            }
        })
    }
    let time = |n| {
        let start = Instant::now();
        assert_eq!(read_all(entries(n), Limits::default()).unwrap(), n + 2);
        start.elapsed()
    };
    let small = time(100_000);
    let big = time(1_000_000);
    eprintln!("100,000 entries: {small:?}; 1,000,000 entries: {big:?}");
    // Ten times the entries may take at most about ten times as long (a quadratic
    // reader would take a hundred times), with slack for a noisy machine.
    assert!(
        big < small * 30 + Duration::from_secs(2),
        "{small:?} -> {big:?}"
    );
    assert!(big < Duration::from_secs(60), "{big:?}");
}

#[test]
fn identity_unknown_codec_and_unknown_hash_cids() {
    let identity = Cid::new_v1(RAW, Multihash::wrap(0x00, b"inline bytes").unwrap());
    assert_eq!(
        verify(&identity, b"inline bytes"),
        Err(BlockError::UnsupportedHash {
            cid: identity,
            code: 0
        })
    );
    let dag_cbor = Cid::new_v1(0x71, HashAlg::Sha2_256.multihash(b"x"));
    assert!(matches!(
        verify(&dag_cbor, b"x"),
        Err(BlockError::UnsupportedCodec { codec: 0x71, .. })
    ));
    // sha2-512 and a made-up code.
    for code in [0x13, 0x3a_5a] {
        let cid = Cid::new_v1(RAW, Multihash::wrap(code, &[7; 32]).unwrap());
        assert!(
            matches!(verify(&cid, b"x"), Err(BlockError::UnsupportedHash { code: c, .. }) if c == code)
        );
    }

    // In a DAG, the same errors name the CID and the path; a store that holds the
    // "block" under its identity CID changes nothing.
    for bad in [identity, dag_cbor] {
        let mut store = MemoryStore::new();
        store.put(&bad, b"inline bytes").unwrap();
        let inner = dir(&mut store, &[("f", bad)]);
        let root = dir(&mut store, &[("sub", inner)]);
        let e = decode_err(&store, &root);
        assert_eq!(e.path, "sub/f");
        assert_eq!(*e.cid, bad);
        assert!(matches!(*e.problem, Problem::Block(_)), "{e}");
        assert!(e.to_string().contains(&bad.to_string()), "{e}");
    }
}

#[test]
fn a_block_served_for_the_wrong_cid() {
    let mut store = MemoryStore::new();
    let good = raw(&mut store, b"the real contents");
    let root = dir(&mut store, &[("file", good)]);
    store.insert_unchecked(good, b"something else".to_vec());
    let e = decode_err(&store, &root);
    assert_eq!((&*e.cid, e.path.as_str()), (&good, "file"));
    let expected = cid_for(RAW, HashAlg::Sha2_256, b"something else");
    assert!(
        matches!(&*e.problem, Problem::Block(BlockError::HashMismatch { actual, .. }) if **actual == expected),
        "{e}"
    );
    // The root itself, swapped for another valid block.
    let other = raw(&mut store, b"other");
    let data = store.get_ref(&other).unwrap().to_vec();
    store.insert_unchecked(root, data);
    let e = decode_err(&store, &root);
    assert!(e.path.is_empty());
    assert!(matches!(
        *e.problem,
        Problem::Block(BlockError::HashMismatch { .. })
    ));
}

/// A CID whose codec varint has 10 bytes and stray high bits: the varint reader drops
/// them, so these bytes and the canonical ones (same length) would name one CID.
fn non_canonical_cid() -> Vec<u8> {
    let mut cid = vec![0x01];
    cid.extend_from_slice(&[0xff; 9]);
    cid.push(0x03); // canonical: 0x01
    cid.extend_from_slice(&[0x12, 0x20]);
    cid.extend_from_slice(&[0xab; 32]);
    cid
}

/// Found by the `dagpb_unixfs` fuzz target: a link whose Hash is a non-canonically
/// encoded CID was accepted, and re-encoded to other bytes.
#[test]
fn regression_non_canonical_cid_in_a_dag_pb_link() {
    use narfs_core::dagpb::{DagPbError, PBNode};
    let found = "EhAKDgEUEgqN/QX/BQH/KAAAEhAKDgH/7/r////K//8K/34AEhAKDgH/////////CggD/34A";
    let found = base64_decode(found);
    assert!(matches!(
        PBNode::decode(&found),
        Err(DagPbError::BadCid { link: 1, .. })
    ));
    let cid = non_canonical_cid();
    let mut block = vec![0x12, (cid.len() + 2) as u8, 0x0a, cid.len() as u8];
    block.extend_from_slice(&cid);
    let e = PBNode::decode(&block).unwrap_err();
    assert!(
        matches!(&e, DagPbError::BadCid { link: 0, offset: 4, reason } if reason == "CID not canonically encoded"),
        "{e}"
    );
}

fn base64_decode(s: &str) -> Vec<u8> {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        acc = (acc << 6) | A.iter().position(|&a| a == c).unwrap() as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}
