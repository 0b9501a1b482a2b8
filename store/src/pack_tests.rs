//! Packs: the format (roundtrip, damage, bounds) and packs in a store (write, read,
//! old values, deletion, repack).

use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};
use proptest::prelude::*;

use super::*;
use crate::{Options, RootRecord, Store};

fn z(level: i32) -> zstd::bulk::Compressor<'static> {
    zstd::bulk::Compressor::new(level).unwrap()
}

/// `refs` packed by each codec: zstd at `level`, then LZ4.
fn each_codec(level: i32, refs: &[(Cid, &[u8])]) -> [Option<NewPack>; 2] {
    [
        encode(
            Encoder::Zstd {
                z: &mut z(level),
                level,
            },
            refs,
        ),
        encode(Encoder::Lz4 { acceleration: 1 }, refs),
    ]
}

/// Compressible but distinct small blocks.
fn texts(n: usize, salt: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!("{salt} block {i}: the quick brown fox jumps over it. ")
                .repeat(40 + i % 7)
                .into_bytes()
        })
        .collect()
}

fn with_cids(blocks: &[Vec<u8>]) -> Vec<(Cid, &[u8])> {
    blocks
        .iter()
        .map(|b| (cid_for(RAW, HashAlg::Sha2_256, b), b.as_slice()))
        .collect()
}

#[test]
fn a_pack_roundtrips_and_its_header_names_each_block() {
    let blocks = texts(20, "a");
    let refs = with_cids(&blocks);
    let [zs, lz] = each_codec(1, &refs);
    let want = [(Codec::Zstd, 1, 1), (Codec::Lz4, 2, i8::MIN)];
    for (p, (codec, version, level)) in [zs, lz].into_iter().zip(want) {
        let p = p.expect("text compresses");
        let (h, data) = unpack(&p.value).unwrap();
        assert_eq!(h, p.header);
        assert_eq!((h.codec, p.value[0], h.level), (codec, version, level));
        assert_eq!(level_of(&p.value), level);
        for ((cid, slot), (want_cid, want)) in h.slots(7).zip(&refs) {
            assert_eq!(cid, *want_cid);
            assert_eq!(slot.pack, 7);
            let at = slot.offset as usize;
            assert_eq!(&data[at..at + slot.len as usize], *want);
            assert_eq!(Slot::decode(&slot.encode()), Ok(slot));
        }
    }
}

#[test]
fn a_zstd_pack_keeps_the_first_format_byte_for_byte() {
    // Stores written before LZ4 hold exactly these values: version 1, the level.
    let blocks = texts(4, "f");
    let refs = with_cids(&blocks);
    let [p, _] = each_codec(3, &refs);
    let p = p.unwrap();
    let size: usize = blocks.iter().map(Vec::len).sum();
    assert_eq!(
        &p.value[..6],
        &[&[1u8, 3][..], &(size as u32).to_le_bytes()].concat()
    );
    let frame = &p.value[p.header.frame_at..];
    assert_eq!(
        zstd::bulk::decompress(frame, size).unwrap(),
        blocks.concat()
    );
}

#[test]
fn incompressible_blocks_make_no_pack() {
    let mut x = 1u64;
    let noise: Vec<Vec<u8>> = (0..4)
        .map(|_| {
            (0..4096)
                .map(|_| {
                    x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    (x >> 33) as u8
                })
                .collect()
        })
        .collect();
    let refs = with_cids(&noise);
    assert!(each_codec(1, &refs).iter().all(Option::is_none));
}

#[test]
fn a_damaged_pack_is_an_error_and_never_a_large_allocation() {
    let blocks = texts(8, "d");
    for p in each_codec(3, &with_cids(&blocks)) {
        damaged_pack_is_an_error(&p.unwrap());
    }
}

fn damaged_pack_is_an_error(p: &NewPack) {
    let v = &p.value;
    // Cut anywhere: an error.
    for cut in [0, 5, 12, p.header.frame_at, v.len() - 1] {
        assert!(unpack(&v[..cut]).is_err(), "cut at {cut}");
    }
    // A flipped byte in the frame: an error or (zstd may not notice in literals)
    // bytes of the declared size, which the callers' CID check then refuses.
    let mut bad = v.clone();
    let mid = p.header.frame_at + (v.len() - p.header.frame_at) / 2;
    bad[mid] ^= 0x55;
    if let Ok((_, data)) = unpack(&bad) {
        assert_eq!(data.len(), p.header.size as usize);
    }
    // A header declaring more than the limit, or a size its frame does not have.
    let mut huge = v.clone();
    huge[2..6].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(unpack(&huge).is_err());
    let mut other = v.clone();
    let n = u32::from_le_bytes(other[2..6].try_into().unwrap());
    other[2..6].copy_from_slice(&(n - 1).to_le_bytes());
    assert!(unpack(&other).is_err());
    // A payload of 20 MiB behind a header declaring a small size, in either codec.
    let zeros = vec![0u8; 20 << 20];
    let lz4_bomb = lz4::block::compress(&zeros, None, false).unwrap();
    for bomb in [zstd::bulk::compress(&zeros, 1).unwrap(), lz4_bomb] {
        let mut v2 = v[..p.header.frame_at].to_vec();
        v2.extend_from_slice(&bomb);
        assert!(unpack(&v2).is_err());
    }
    // A header that lies consistently: its last block, and so the pack, one byte
    // longer than the payload holds.
    let mut longer = v.clone();
    let last = p.header.frame_at - 4;
    let len = u32::from_le_bytes(longer[last..last + 4].try_into().unwrap());
    longer[last..last + 4].copy_from_slice(&(len + 1).to_le_bytes());
    longer[2..6].copy_from_slice(&(p.header.size + 1).to_le_bytes());
    assert!(header(&longer).is_ok());
    assert!(unpack(&longer).is_err());
    // A version no narfs wrote.
    let mut future = v.clone();
    future[0] = 3;
    let e = unpack(&future).unwrap_err();
    assert!(e.contains("unknown version"), "{e}");
    // Too many blocks: refused before any allocation.
    let mut many = v.clone();
    many[6..10].copy_from_slice(&u32::MAX.to_le_bytes());
    assert!(header(&many).is_err());
    assert!(Slot::decode(&[PACKED, 1, 2]).is_err());
}

proptest! {
    #[test]
    fn any_blocks_roundtrip(blocks in prop::collection::vec(prop::collection::vec(0u8..4, 0..3000), 2..20)) {
        let refs = with_cids(&blocks);
        for p in each_codec(1, &refs).into_iter().flatten() {
            let (h, data) = unpack(&p.value).unwrap();
            prop_assert_eq!(&h, &p.header);
            for ((_, slot), (_, want)) in h.slots(0).zip(&refs) {
                let at = slot.offset as usize;
                prop_assert_eq!(&data[at..at + slot.len as usize], *want);
            }
        }
    }

    /// Any bytes behind an LZ4 pack's header: an error or exactly the declared size
    /// (never a panic, never more).
    #[test]
    fn any_lz4_payload_decodes_within_its_size(payload in prop::collection::vec(any::<u8>(), 0..4000)) {
        let blocks = texts(6, "p");
        let p = encode(Encoder::Lz4 { acceleration: 1 }, &with_cids(&blocks)).unwrap();
        let mut v = p.value[..p.header.frame_at].to_vec();
        v.extend_from_slice(&payload);
        if let Ok((h, data)) = unpack(&v) {
            prop_assert_eq!(data.len(), h.size as usize);
        }
    }
}

/// Every LZ4 acceleration writes the same format: the pack reads back exactly, and a
/// faster one is no smaller (at liblz4's largest, text may no longer save 1/8: then
/// no pack, never a wrong one).
#[test]
fn lz4_accelerations_read_back() {
    let blocks = texts(40, "a");
    let refs = with_cids(&blocks);
    let mut last = 0;
    for acceleration in [0, 1, 8, 16, 64, 65537] {
        let Some(p) = encode(Encoder::Lz4 { acceleration }, &refs) else {
            assert!(acceleration > 16, "acceleration {acceleration} packs text");
            continue;
        };
        let (h, data) = unpack(&p.value).unwrap();
        assert_eq!((h.codec, h.level), (Codec::Lz4, i8::MIN));
        assert_eq!(data, blocks.concat(), "acceleration {acceleration}");
        assert!(p.value.len() >= last, "acceleration {acceleration}");
        last = p.value.len();
    }
}

#[test]
fn a_reused_buffer_gives_exactly_the_pack() {
    let blocks = texts(12, "r");
    for p in each_codec(1, &with_cids(&blocks)) {
        let p = p.unwrap();
        // Larger than the pack, and smaller with garbage in it: exactly the pack.
        for stale in [vec![0xAA; 2 << 20], vec![0x55; 100]] {
            let mut dctx = DCtx::create();
            let (_, data) = unpack_into(&p.value, &mut dctx, stale).unwrap();
            assert_eq!(data, blocks.concat());
        }
    }
}

/// The codecs the store tests run with, and the level each gives its packs.
const CODECS: [(Codec, i8); 2] = [(Codec::Zstd, 1), (Codec::Lz4, i8::MIN)];

fn store(dir: &std::path::Path, codec: Codec) -> Store {
    Store::open_with(
        dir,
        Options {
            pack_bytes: 16 << 10,
            zstd_level: Some(1),
            pack_codec: codec,
            ..Options::default()
        },
    )
    .unwrap()
}

/// Writes `blocks` as one item (no record) and returns their CIDs.
fn write(store: &Store, blocks: &[Vec<u8>]) -> Vec<Cid> {
    let mut sink = store.sink().unwrap();
    let cids: Vec<Cid> = blocks
        .iter()
        .map(|b| {
            let c = cid_for(RAW, HashAlg::Sha2_256, b);
            sink.put(&c, b).unwrap();
            c
        })
        .collect();
    sink.finish(None).unwrap();
    cids
}

fn packs(store: &Store) -> Vec<crate::pack_table::PackInfo> {
    let snap = store.blocks.read_txn().unwrap();
    crate::pack_table::each(snap.view()).unwrap()
}

#[test]
fn a_store_packs_small_blocks_and_reads_them_back_with_old_values() {
    for (codec, level) in CODECS {
        packs_small_blocks(codec, level);
    }
}

fn packs_small_blocks(codec: Codec, level: i8) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), codec);
    let blocks = texts(40, "s");
    let cids = write(&store, &blocks);
    let p = packs(&store);
    assert!(p.len() >= 2, "{} packs", p.len());
    assert!(p.iter().all(|p| p.live == p.blocks && p.level == level));
    assert_eq!(p.iter().map(|p| p.live).sum::<u32>(), 40);
    for (c, b) in cids.iter().zip(&blocks) {
        assert_eq!(store.get_block(c).unwrap().as_deref(), Some(b.as_slice()));
    }
    let s = store.stats().unwrap();
    assert_eq!(s.unique_blocks, 40);
    assert_eq!(s.compressed_blocks, 40);
    let total: u64 = p.iter().map(|p| p.stored).sum();
    assert!(s.stored_bytes <= total && s.stored_bytes + 40 >= total);
    assert!(store.verify().unwrap().problems.is_empty());
    // Values of the older forms, RAW and ZSTD, beside packs.
    let old = b"an old raw block".to_vec();
    let oc = cid_for(RAW, HashAlg::Sha2_256, &old);
    let mut v = vec![crate::blocks::RAW];
    v.extend_from_slice(&old);
    crate::blocks::overwrite(&store.blocks, &oc, Some(&v));
    let zc = cid_for(RAW, HashAlg::Sha2_256, &blocks[0][..100]);
    let mut v = vec![crate::blocks::ZSTD];
    v.extend_from_slice(&zstd::bulk::compress(&blocks[0][..100], 3).unwrap());
    crate::blocks::overwrite(&store.blocks, &zc, Some(&v));
    assert_eq!(store.get_block(&oc).unwrap(), Some(old));
    assert_eq!(
        store.get_block(&zc).unwrap().as_deref(),
        Some(&blocks[0][..100])
    );
    assert!(store.verify().unwrap().problems.is_empty());
}

#[test]
fn a_damaged_or_missing_pack_is_a_typed_error() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), Codec::Lz4);
    let blocks = texts(10, "x");
    let cids = write(&store, &blocks);
    let id = packs(&store)[0].id;
    let mut txn = store.blocks.write_txn().unwrap();
    let packs_tree = *store.blocks.packs();
    packs_tree
        .put(&mut txn, &key(id), b"\x02\x00garbage")
        .unwrap();
    store.blocks.commit(txn).unwrap();
    let e = store.get_block(&cids[0]).unwrap_err();
    assert!(matches!(e, crate::Error::DamagedBlock { .. }), "{e}");
    assert!(!store.verify().unwrap().problems.is_empty());
    let mut txn = store.blocks.write_txn().unwrap();
    packs_tree.delete(&mut txn, &key(id)).unwrap();
    store.blocks.commit(txn).unwrap();
    let e = store.get_block(&cids[0]).unwrap_err();
    assert!(e.to_string().contains("its pack is missing"), "{e}");
}

#[test]
fn deletion_frees_packs_and_repack_drops_dead_blocks() {
    for (codec, _) in CODECS {
        frees_and_repacks(codec);
    }
}

/// Repack reads packs of `codec` and writes zstd -19 ones.
fn frees_and_repacks(codec: Codec) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), codec);
    let keep = texts(30, "keep");
    let kept = write(&store, &keep);
    let gone = texts(30, "gone");
    let dead = write(&store, &gone);
    // Only `keep` has a root; gc needs a DAG: one dag-pb node linking the kept leaves.
    let links = kept
        .iter()
        .map(|c| narfs_core::dagpb::PBLink {
            hash: *c,
            name: None,
            tsize: None,
        })
        .collect();
    let node = narfs_core::dagpb::PBNode {
        links,
        data: Some(vec![8, 2]),
    }
    .encode();
    let root = cid_for(narfs_core::block::DAG_PB, HashAlg::Sha2_256, &node);
    let mut sink = store.sink().unwrap();
    sink.put(&root, &node).unwrap();
    let rec = RootRecord::new(&root, narfs_core::Encoding::UnixFs, &[0; 32], 1);
    sink.finish(Some(rec.with_name(Some("k".into())))).unwrap();
    let before = packs(&store);
    // Every other kept block deleted by hand and stored again raw (a partially dead
    // pack); `gone` deleted by gc (packs wholly dead).
    let mut txn = store.blocks.write_txn().unwrap();
    for c in kept.iter().step_by(2) {
        assert!(store.blocks.delete(&mut txn, c).unwrap());
    }
    store.blocks.commit(txn).unwrap();
    let mut sink = store.sink_with_zstd(None).unwrap();
    for (c, b) in kept.iter().zip(&keep).step_by(2) {
        sink.put(c, b).unwrap();
    }
    sink.finish(None).unwrap();
    let gc = store.gc().unwrap();
    assert_eq!(gc.removed_blocks, 30);
    let after = packs(&store);
    assert!(
        after.len() < before.len(),
        "{} -> {}",
        before.len(),
        after.len()
    );
    assert!(after.iter().all(|p| p.live > 0));
    assert!(after.iter().any(|p| p.live < p.blocks));
    for c in &dead {
        assert!(!store.contains(c).unwrap());
    }
    let r = store.repack(19).unwrap();
    assert!(r.packs_read > 0 && r.packs_written > 0, "{r:?}");
    assert_eq!(r.blocks_moved, 15);
    let now = packs(&store);
    assert!(now.iter().all(|p| p.level == 19 && p.live == p.blocks));
    let snap = store.blocks.read_txn().unwrap();
    for p in &now {
        let v = crate::pack_table::value(snap.view(), p.id)
            .unwrap()
            .unwrap();
        assert_eq!(header(&v).unwrap().codec, Codec::Zstd);
    }
    drop(snap);
    for (c, b) in kept.iter().zip(&keep) {
        assert_eq!(store.get_block(c).unwrap().as_deref(), Some(b.as_slice()));
    }
    assert!(store.verify().unwrap().problems.is_empty());
    // Again: nothing to do.
    let again = store.repack(19).unwrap();
    assert_eq!((again.packs_read, again.packs_kept), (0, now.len() as u64));
}

#[test]
fn verify_reads_packs_in_order_and_names_entries_no_pack_holds() {
    for (codec, _) in CODECS {
        verify_reads_packs(codec);
    }
}

fn verify_reads_packs(codec: Codec) {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path(), codec);
    let cids = write(&store, &texts(60, "v"));
    let p = packs(&store);
    assert!(p.len() >= 3, "{}", p.len());
    let r = store.verify().unwrap();
    assert_eq!(r.blocks, 60);
    assert!(r.problems.is_empty(), "{:?}", r.problems);

    // Resumed in the packs phase after the first pack: the rest are checked, and the
    // counts add up (no fallback).
    let first = p[0].live;
    let cp = format!(
        r#"{{"selection":[],"phase":"packs","after":"{}","blocks":{first},"roots":0,"problems":[],"problems_total":0,"packed":60,"packed_ok":{first}}}"#,
        crate::walk::hex(&key(p[0].id))
    );
    std::fs::write(dir.path().join(crate::verify::CHECKPOINT), cp).unwrap();
    let resumed = store
        .verify_some(
            &crate::VerifyOptions {
                resume: true,
                ..Default::default()
            },
            |_, _| Ok(()),
        )
        .unwrap();
    assert_eq!(resumed.blocks, 60);
    assert!(resumed.problems.is_empty(), "{:?}", resumed.problems);

    // An entry pointing at bytes no pack's header lists: the packs pass cannot
    // account for it, the fallback names it, once.
    let bad = Slot {
        pack: p[0].id,
        offset: 1,
        len: 10,
    };
    crate::blocks::overwrite(&store.blocks, &cids[5], Some(&bad.encode()));
    let r = store.verify().unwrap();
    assert_eq!(r.blocks, 60);
    assert_eq!(r.problems.len(), 1, "{:?}", r.problems);
    assert!(
        r.problems[0].contains(&cids[5].to_string()),
        "{:?}",
        r.problems
    );
}

#[test]
fn zstd_packs_written_before_read_beside_lz4_ones() {
    let dir = tempfile::tempdir().unwrap();
    let old = texts(30, "old");
    let old_cids = write(&store(dir.path(), Codec::Zstd), &old);
    let lz4 = store(dir.path(), Codec::Lz4);
    let new = texts(30, "new");
    let new_cids = write(&lz4, &new);
    let levels: Vec<i8> = packs(&lz4).iter().map(|p| p.level).collect();
    assert!(
        levels.contains(&1) && levels.contains(&i8::MIN),
        "{levels:?}"
    );
    for (c, b) in old_cids.iter().zip(&old).chain(new_cids.iter().zip(&new)) {
        assert_eq!(lz4.get_block(c).unwrap().as_deref(), Some(b.as_slice()));
    }
    assert!(lz4.verify().unwrap().problems.is_empty());
}
