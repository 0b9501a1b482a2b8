//! Tests of HAMT sharding (module `hamt`).
//!
//! Reference CIDs come from `ipfs-unixfs-importer` 17.1.1 (npm, Node 20), run outside the
//! repository as
//! `importer(files, new MemoryBlockstore(), opts)` with `files` = `{ path: 'd/<name>',
//! content: utf8(<content>) }` for the entries built by [`entries`] below, and `opts` =
//! `{ cidVersion: 1, rawLeaves: true }` (kubo-v1: links-bytes) or
//! `{ profile: 'unixfs-v1-2025' }` (block-bytes); the expected CID and size are those of
//! the `d` entry the importer yields.

use super::*;
use narfs_core::block::{MemoryStore, NullSink, RAW};
use narfs_core::dagpb::{PBLink, PBNode};
use narfs_core::unixfs::{DataType, UnixFsData};

use crate::layout::Profile;

const KUBO: ShardRule = ShardRule::LinkBytes(SHARD_THRESHOLD);
const V1_2025: ShardRule = ShardRule::BlockBytes(SHARD_THRESHOLD);

#[test]
fn profiles_use_these_rules() {
    assert_eq!(Profile::KuboV1.layout().shard, KUBO);
    assert_eq!(Profile::UnixfsV1_2025.layout().shard, V1_2025);
}

/// `n` raw-leaf files `file-00000` .. (the first name extended by `extra` 'x'), each with
/// content `content of entry <i>\n`.
fn entries(n: usize, extra: usize) -> Vec<DirEntry> {
    (0..n)
        .map(|i| {
            let mut name = format!("file-{i:05}");
            if i == 0 {
                name.push_str(&"x".repeat(extra));
            }
            let content = format!("content of entry {i}\n");
            DirEntry {
                name,
                cid: cid_for(RAW, HashAlg::Sha2_256, content.as_bytes()),
                tsize: content.len() as u64,
            }
        })
        .collect()
}

fn flat_dir(entries: &[DirEntry]) -> (Cid, u64, usize) {
    let node = PBNode {
        links: entries
            .iter()
            .map(|e| PBLink {
                hash: e.cid,
                name: Some(e.name.clone()),
                tsize: Some(e.tsize),
            })
            .collect(),
        data: Some(UnixFsData::directory().encode()),
    };
    let bytes = node.encode();
    let tsize = bytes.len() as u64 + entries.iter().map(|e| e.tsize).sum::<u64>();
    (
        cid_for(DAG_PB, HashAlg::Sha2_256, &bytes),
        tsize,
        bytes.len(),
    )
}

fn shard<E: ShardEntry>(entries: &[E]) -> (HamtRoot, MemoryStore) {
    let mut store = MemoryStore::new();
    let root = build_hamt(entries, HashAlg::Sha2_256, &mut store).unwrap();
    (root, store)
}

#[test]
fn ten_thousand_entries_match_js_importer() {
    let e = entries(10_000, 0);
    assert!(should_shard(KUBO, &e));
    assert!(should_shard(V1_2025, &e));
    let (root, store) = shard(&e);
    // Same under both profiles (the importer gives the same root for both).
    assert_eq!(
        root.cid.to_string(),
        "bafybeifi6zrcmzt3wzqbw2saptttfsuyo54aq5b6mucruz2bk7f4g3wgzq"
    );
    assert_eq!(root.tsize, 855_741);
    // The importer wrote 10,931 blocks: 10,000 leaves + 931 shard nodes.
    assert_eq!((root.blocks, store.len()), (931, 931));

    // The root is a full 256-slot shard: bitfield of 32 0xff bytes.
    let node = PBNode::decode(store.get_ref(&root.cid).unwrap()).unwrap();
    assert_eq!(node.links.len(), 256);
    let data = UnixFsData::decode(node.data.as_deref().unwrap()).unwrap();
    assert_eq!(data, UnixFsData::hamt_shard(&[0xff; 32], 256));
    assert_eq!(data.data_type, DataType::HamtShard);
    assert_eq!(store.get_ref(&root.cid).unwrap().len(), 12_075);
}

#[test]
fn five_thousand_entries_split_the_profiles() {
    let e = entries(5_000, 0);
    // kubo-v1: 5000 × (10 + 36) = 230,000 ≤ 256 KiB → flat.
    assert_eq!(estimate(KUBO, &e), 230_000);
    assert!(!should_shard(KUBO, &e));
    let (cid, tsize, len) = flat_dir(&e);
    assert_eq!(
        cid.to_string(),
        "bafybeiewd5b7k32r6xjtqxuxzvi4mivwpu6mjkvqrljwhfaxjosp4jxcmm"
    );
    assert_eq!((tsize, len), (378_894, 270_004));
    // unixfs-v1-2025: the flat block would be 270,004 bytes > 256 KiB → shard.
    assert_eq!(estimate(V1_2025, &e), 270_004);
    assert!(should_shard(V1_2025, &e));
    let (root, store) = shard(&e);
    assert_eq!(
        root.cid.to_string(),
        "bafybeih253e6xanemgmqhre6cmax26nhpxzvi2lijzqwtohzrce2vyus3a"
    );
    assert_eq!(root.tsize, 425_110);
    assert_eq!(store.len(), 5_425 - 5_000);
}

#[test]
fn threshold_is_strictly_greater() {
    // links-bytes exactly 262,144: 5698 × 46 + 36. The importer keeps it flat.
    let eq = entries(5_698, 36);
    assert_eq!(estimate(KUBO, &eq), SHARD_THRESHOLD);
    assert!(!should_shard(KUBO, &eq));
    assert_eq!(
        flat_dir(&eq).0.to_string(),
        "bafybeib6ycosof7pcj2a7xgxb7o7oafn6zofzjjd436d7qvdgfpsrrh4x4"
    );
    // One byte more: sharded.
    let plus = entries(5_698, 37);
    assert!(should_shard(KUBO, &plus));
    let (root, _) = shard(&plus);
    assert_eq!(
        root.cid.to_string(),
        "bafybeiads6tt3fthyacmue5w3locbzj2egypvzngc33k3yyzr2m3tzpxiu"
    );
    assert_eq!(root.tsize, 484_774);

    // block-bytes: a flat block of exactly 262,144 bytes stays flat.
    let eq = entries(4_854, 24);
    assert_eq!(estimate(V1_2025, &eq), SHARD_THRESHOLD);
    assert!(!should_shard(V1_2025, &eq));
    let (cid, tsize, len) = flat_dir(&eq);
    assert_eq!(
        cid.to_string(),
        "bafybeifoaf6yccypihg62bylqgaa73dypoj3hpzlhwsr6vbr54cfvh6tbu"
    );
    assert_eq!((tsize, len as u64), (367_822, SHARD_THRESHOLD));
    let plus = entries(4_854, 25);
    assert!(should_shard(V1_2025, &plus));
    let (root, _) = shard(&plus);
    assert_eq!(
        root.cid.to_string(),
        "bafybeib77i54remfanhfa374ygbj5lfzq7lkjzw5232qnamqbagdlqfhl4"
    );
    assert_eq!(root.tsize, 412_713);
}

#[test]
fn flat_block_len_is_exact() {
    for n in [0, 1, 3, 200] {
        let e = entries(n, 130); // a name longer than 127 bytes: 2-byte length varints
        assert_eq!(flat_block_len(&e), flat_dir(&e).2 as u64, "{n}");
        // The directory builder's links estimate the same.
        let links: Vec<(String, Sub)> = e
            .iter()
            .map(|d| {
                (
                    d.name.clone(),
                    Sub {
                        cid: d.cid,
                        tsize: d.tsize,
                        filesize: 0,
                    },
                )
            })
            .collect();
        for rule in [KUBO, V1_2025] {
            assert_eq!(should_shard(rule, &links), should_shard(rule, &e));
            assert_eq!(estimate(rule, &links), estimate(rule, &e));
        }
    }
}

#[test]
fn small_shard_structure() {
    // Three entries land in three different slots of a single shard node.
    let e = entries(3, 0);
    let (root, store) = shard(&e);
    assert_eq!(root.blocks, 1);
    let bytes = store.get_ref(&root.cid).unwrap();
    let node = PBNode::decode(bytes).unwrap();
    let mut slots = Vec::new();
    for (link, entry) in node.links.iter().zip({
        let mut sorted = e.clone();
        sorted.sort_by_key(|x| hamt_hash(x.name.as_bytes()));
        sorted
    }) {
        let name = link.name.as_deref().unwrap();
        let slot = usize::from_str_radix(&name[..2], 16).unwrap();
        assert_eq!(slot, usize::from(hamt_hash(entry.name.as_bytes())[0]));
        assert_eq!(&name[2..], entry.name);
        assert_eq!((link.hash, link.tsize), (entry.cid, Some(entry.tsize)));
        slots.push(slot);
    }
    let data = UnixFsData::decode(node.data.as_deref().unwrap()).unwrap();
    let bitfield = data.data.unwrap();
    let mut expected = [0u8; 32];
    for s in &slots {
        expected[31 - s / 8] |= 1 << (s % 8);
    }
    let first = expected.iter().position(|&b| b != 0).unwrap();
    assert_eq!(bitfield, expected[first..]);
    let sum: u64 = e.iter().map(|x| x.tsize).sum();
    assert_eq!(root.tsize, bytes.len() as u64 + sum);
}

#[test]
fn rejects_unsorted_and_duplicate_names() {
    let mut e = entries(3, 0);
    e.swap(0, 1);
    assert!(matches!(
        build_hamt(&e, HashAlg::Sha2_256, &mut NullSink::default()),
        Err(HamtError::NotSorted { index: 1, .. })
    ));
    let mut e = entries(2, 0);
    e[1].name = e[0].name.clone();
    assert!(matches!(
        build_hamt(&e, HashAlg::Sha2_256, &mut NullSink::default()),
        Err(HamtError::NotSorted { .. })
    ));
}

#[test]
fn empty_and_blake3() {
    let (root, _) = shard::<DirEntry>(&[]);
    // An empty shard has no bitfield bytes at all: Data = 08 05 28 22 30 80 02.
    let mut null = NullSink::default();
    let again = build_hamt::<DirEntry>(&[], HashAlg::Sha2_256, &mut null).unwrap();
    assert_eq!((root.cid, null.blocks), (again.cid, 1));
    let e = entries(50, 0);
    let b3 = build_hamt(&e, HashAlg::Blake3, &mut NullSink::default()).unwrap();
    assert_eq!(b3.cid.hash().code(), 0x1e);
    assert_eq!(b3.cid.codec(), DAG_PB);
}

#[test]
fn directory_builder_entry_point() {
    let e = entries(10_000, 0);
    let links: Vec<(String, Sub)> = e
        .iter()
        .map(|d| {
            (
                d.name.clone(),
                Sub {
                    cid: d.cid,
                    tsize: d.tsize,
                    filesize: 0,
                },
            )
        })
        .collect();
    let mut store = MemoryStore::new();
    let mut counts = Counts::default();
    let sub = build(links, &Profile::KuboV1.layout(), &mut store, &mut counts).unwrap();
    assert_eq!(
        sub.cid.to_string(),
        "bafybeifi6zrcmzt3wzqbw2saptttfsuyo54aq5b6mucruz2bk7f4g3wgzq"
    );
    assert_eq!((sub.tsize, counts.blocks), (855_741, 931));
    assert_eq!(counts.bytes, store.total_bytes());
    let unsorted: Vec<(String, Sub)> = vec![("b".into(), sub), ("a".into(), sub)];
    assert!(matches!(
        build(unsorted, &Profile::KuboV1.layout(), &mut store, &mut counts),
        Err(StoreError::Backend(_))
    ));
}
