//! Fuzz target: structured roundtrip. An arbitrary tree is written as a NAR with
//! `NarWriter`, encoded with an arbitrary small layout (fixed or FastCDC chunks of a
//! few hundred bytes, 2..8 links per file node, HAMT thresholds low enough that small
//! directories shard), decoded back, and must give the same NAR byte for byte.
//!
//! Oracle: encode succeeds (or, for a name that is not UTF-8, asks for the fallback),
//! reports the NAR's size and sha256, every block it stored verifies against its CID,
//! and the decoded NAR equals the original.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Result, Unstructured};
use libfuzzer_sys::fuzz_target;
use narfs_core::block::{verify, HashAlg, MemoryStore};
use narfs_core::nar::{check_name, NarWriter};
use narfs_decoder::{decode_nar, Limits};
use narfs_encoder::chunker::Chunker;
use narfs_encoder::{encode, Layout, ShardRule};
use sha2::{Digest, Sha256};

#[derive(Debug)]
enum Tree {
    File { executable: bool, data: Vec<u8> },
    Symlink(Vec<u8>),
    Dir(BTreeMap<Vec<u8>, Tree>),
}

const MAX_DEPTH: usize = 6;

fn file_data(u: &mut Unstructured) -> Result<Vec<u8>> {
    Ok(match u.int_in_range(0..=3)? {
        // Literal bytes.
        0 => u.arbitrary::<Vec<u8>>()?,
        // Pseudo-random bytes of a chosen length: content-defined cuts land anywhere.
        1 | 2 => {
            let len = u.int_in_range(0..=6000usize)?;
            narfs_core::noise::bytes(u.arbitrary::<u64>()?, len)
        }
        // A repeated byte: identical chunks, so repeated blocks.
        _ => vec![u.arbitrary::<u8>()?; u.int_in_range(0..=3000usize)?],
    })
}

fn entry_name(u: &mut Unstructured) -> Result<Vec<u8>> {
    const ALPHABET: &[u8] = b"abcdefgh.-_09AZ";
    if u.ratio(1, 16)? {
        // Anything, including non-UTF-8; invalid names are skipped by the caller.
        return u.arbitrary::<Vec<u8>>();
    }
    let len = u.int_in_range(1..=8)?;
    (0..len)
        .map(|_| Ok(ALPHABET[u.choose_index(ALPHABET.len())?]))
        .collect()
}

fn tree(u: &mut Unstructured, depth: usize) -> Result<Tree> {
    let kind = if depth >= MAX_DEPTH {
        u.int_in_range(0..=1)?
    } else {
        u.int_in_range(0..=2)?
    };
    Ok(match kind {
        0 => Tree::File {
            executable: u.arbitrary()?,
            data: file_data(u)?,
        },
        1 => {
            let mut target: Vec<u8> = u.arbitrary()?;
            target.retain(|&b| b != 0);
            if target.is_empty() {
                target.push(b'x');
            }
            Tree::Symlink(target)
        }
        _ => {
            let mut entries = BTreeMap::new();
            let n = u.int_in_range(0..=40)?;
            for _ in 0..n {
                let name = entry_name(u)?;
                if check_name(&name).is_ok() {
                    entries.insert(name, tree(u, depth + 1)?);
                }
            }
            Tree::Dir(entries)
        }
    })
}

fn write(nar: &mut NarWriter<Vec<u8>>, name: &[u8], t: &Tree) {
    match t {
        Tree::File { executable, data } => nar
            .file(name, *executable, data.len() as u64, &mut data.as_slice())
            .unwrap(),
        Tree::Symlink(target) => nar.symlink(name, target).unwrap(),
        Tree::Dir(entries) => {
            nar.directory(name).unwrap();
            for (n, child) in entries {
                write(nar, n, child);
            }
            nar.end_directory().unwrap();
        }
    }
}

fn utf8_names(t: &Tree) -> bool {
    match t {
        Tree::Dir(entries) => entries
            .iter()
            .all(|(n, c)| std::str::from_utf8(n).is_ok() && utf8_names(c)),
        _ => true,
    }
}

fn layout(u: &mut Unstructured) -> Result<Layout> {
    let chunker = if u.arbitrary()? {
        Chunker::Fixed(u.int_in_range(1..=700)?)
    } else {
        let avg = [256, 512, 1024][u.choose_index(3)?];
        Chunker::FastCdc {
            min: 64.max(avg / 4),
            avg,
            max: 1024.max(avg * 4),
        }
    };
    let threshold = u.int_in_range(0..=3000)?;
    Ok(Layout {
        chunker,
        hash: if u.arbitrary()? {
            HashAlg::Blake3
        } else {
            HashAlg::Sha2_256
        },
        max_links: u.int_in_range(2..=8)?,
        shard: if u.arbitrary()? {
            ShardRule::LinkBytes(threshold)
        } else {
            ShardRule::BlockBytes(threshold)
        },
    })
}

struct Case {
    layout: Layout,
    tree: Tree,
}

impl std::fmt::Debug for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}\n{:?}", self.layout, self.tree)
    }
}

impl<'a> Arbitrary<'a> for Case {
    fn arbitrary(u: &mut Unstructured<'a>) -> Result<Self> {
        Ok(Case {
            layout: layout(u)?,
            tree: tree(u, 0)?,
        })
    }
}

fuzz_target!(|case: Case| {
    let mut nar = NarWriter::new(Vec::new());
    write(&mut nar, b"", &case.tree);
    let nar = nar.finish().unwrap();
    let mut store = MemoryStore::new();
    let encoded = match encode(nar.as_slice(), &case.layout, &mut store, None) {
        Ok(e) => e,
        Err(e) if e.wants_fallback() && !utf8_names(&case.tree) => return,
        Err(e) => panic!("encode failed: {e}"),
    };
    assert!(utf8_names(&case.tree), "a non-UTF-8 name was encoded");
    assert_eq!(encoded.nar_size, nar.len() as u64);
    assert_eq!(encoded.nar_sha256, <[u8; 32]>::from(Sha256::digest(&nar)));
    for (cid, data) in store.iter() {
        verify(cid, data).expect("stored block verifies");
    }
    let out = decode_nar(&store, &encoded.root, Vec::new(), &Limits::default())
        .unwrap_or_else(|e| panic!("decode failed: {e}"));
    assert!(out == nar, "roundtrip differs");
});
