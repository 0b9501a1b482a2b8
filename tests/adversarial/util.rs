//! Helpers shared by the adversarial test files: raw NAR tokens, hand-made DAG
//! blocks put in a `MemoryStore`, and decoding with small limits.
#![allow(dead_code)]

use narfs_core::block::{cid_for, BlockSink, HashAlg, MemoryStore, DAG_PB, RAW};
use narfs_core::dagpb::{PBLink, PBNode};
use narfs_core::unixfs::UnixFsData;
use narfs_core::Cid;
use narfs_decoder::{decode_nar, DecodeError, Limits, Problem};

/// One NAR string: length, bytes, zero padding.
pub fn tok(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// A NAR made of these tokens.
pub fn nar_of(tokens: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for t in tokens {
        tok(&mut out, t);
    }
    out
}

/// `nix-archive-1 ( type directory`: the start of a NAR whose root is a directory.
pub fn dir_head() -> Vec<u8> {
    nar_of(&[b"nix-archive-1", b"(", b"type", b"directory"])
}

/// Puts a raw leaf and returns its CID.
pub fn raw(store: &mut MemoryStore, data: &[u8]) -> Cid {
    let cid = cid_for(RAW, HashAlg::Sha2_256, data);
    store.put(&cid, data).unwrap();
    cid
}

/// Puts a dag-pb node and returns its CID.
pub fn node(store: &mut MemoryStore, links: Vec<PBLink>, data: &UnixFsData) -> Cid {
    let bytes = PBNode {
        links,
        data: Some(data.encode()),
    }
    .encode();
    let cid = cid_for(DAG_PB, HashAlg::Sha2_256, &bytes);
    store.put(&cid, &bytes).unwrap();
    cid
}

pub fn link(name: &str, hash: Cid) -> PBLink {
    PBLink {
        hash,
        name: Some(name.to_string()),
        tsize: Some(0),
    }
}

/// A plain directory node with these (name, CID) entries, in the order given.
pub fn dir(store: &mut MemoryStore, entries: &[(&str, Cid)]) -> Cid {
    let links = entries.iter().map(|(n, c)| link(n, *c)).collect();
    node(store, links, &UnixFsData::directory())
}

/// A `File` node over these children with their claimed sizes.
pub fn file_node(store: &mut MemoryStore, children: &[(Cid, u64)]) -> Cid {
    let links = children.iter().map(|(c, _)| link("", *c)).collect();
    let sizes = children.iter().map(|&(_, s)| s).collect();
    node(store, links, &UnixFsData::file(sizes, None))
}

pub fn symlink(store: &mut MemoryStore, target: &[u8]) -> Cid {
    node(store, Vec::new(), &UnixFsData::symlink(target))
}

/// Decodes with the given output limit and the default depth limits.
pub fn decode(store: &MemoryStore, root: &Cid, max_output: u64) -> Result<Vec<u8>, DecodeError> {
    let limits = Limits {
        max_output,
        ..Limits::default()
    };
    decode_nar(store, root, Vec::new(), &limits)
}

/// The decode error of a DAG that must fail.
pub fn decode_err(store: &MemoryStore, root: &Cid) -> DecodeError {
    match decode(store, root, 1 << 30) {
        Ok(nar) => panic!("decoded {} bytes, expected an error", nar.len()),
        Err(e) => e,
    }
}

/// The message of a `Problem::Malformed`, or a panic naming what came instead.
pub fn malformed(e: &DecodeError) -> &str {
    match &*e.problem {
        Problem::Malformed(m) => m,
        other => panic!("expected a malformed-DAG error, got {other:?} ({e})"),
    }
}
