//! Unit tests of the store: blocks written once and read back, dedup counts, roots by
//! name and CID, verify finding damage, gc keeping exactly what roots reach.

use narfs_core::block::{cid_for, BlockSink, BlockSource, HashAlg, DAG_PB, RAW};
use narfs_core::dagpb::{PBLink, PBNode};

use super::*;

pub(crate) fn record(root: &Cid, name: Option<&str>) -> RootRecord {
    RootRecord {
        root: root.to_string(),
        name: name.map(str::to_owned),
        nar_hash: "sha256:x".into(),
        nar_size: 100,
        chunker: "fixed:262144".into(),
        hash: "sha2-256".into(),
        profile: "kubo-v1".into(),
        encoding: narfs_core::Encoding::UnixFs,
        blocks: 0,
        block_bytes: 0,
        new_blocks: 0,
        new_bytes: 0,
        created: 0,
        narinfo: None,
        sealed: false,
    }
}

/// A dag-pb node linking `leaves`, with all blocks put into `sink`.
pub(crate) fn dag(sink: &mut StoreSink, leaves: &[&[u8]]) -> Cid {
    let mut links = Vec::new();
    for (i, l) in leaves.iter().enumerate() {
        let c = cid_for(RAW, HashAlg::Sha2_256, l);
        sink.put(&c, l).unwrap();
        links.push(PBLink {
            hash: c,
            name: Some(format!("f{i}")),
            tsize: Some(l.len() as u64),
        });
    }
    let node = PBNode {
        links,
        data: Some(vec![8, 1]),
    }
    .encode();
    let root = cid_for(DAG_PB, HashAlg::Sha2_256, &node);
    sink.put(&root, &node).unwrap();
    root
}

#[test]
fn write_once_read_back_and_count() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let text = b"hello hello hello hello hello hello hello hello".repeat(50);
    // Above the size whose sample decides (smaller incompressible blocks ride in packs).
    let noise = narfs_core::noise::bytes(0, 80_000);
    let mut sink = store.sink().unwrap();
    let root = dag(&mut sink, &[&text, &noise, &text]);
    let w = sink
        .finish(Some(record(&root, Some("/nix/store/a"))))
        .unwrap();
    assert_eq!(w.new_blocks, 3);
    assert_eq!(
        w.new_bytes,
        (text.len() + noise.len()) as u64 + store.get_block(&root).unwrap().unwrap().len() as u64
    );
    assert!(w.new_stored_bytes < w.new_bytes, "text compresses");
    let c = cid_for(RAW, HashAlg::Sha2_256, &text);
    assert_eq!(store.get(&c).unwrap().unwrap(), text);
    let infos = store.blocks().unwrap();
    let compressed = |bytes: &[u8]| {
        let c = cid_for(RAW, HashAlg::Sha2_256, bytes);
        infos.iter().find(|b| b.cid == c).unwrap().compressed
    };
    assert!(compressed(&text) && !compressed(&noise));

    let mut sink = store.sink().unwrap();
    assert_eq!(dag(&mut sink, &[&text, &noise, &text]), root);
    let w = sink
        .finish(Some(record(&root, Some("/nix/store/a"))))
        .unwrap();
    assert_eq!((w.new_blocks, w.new_bytes), (0, 0));
    assert_eq!(store.roots().unwrap().len(), 1);
    assert!(!dir.path().join("tmp").exists() && !dir.path().join("roots").exists());
    let report = store.verify().unwrap();
    assert_eq!(
        (report.blocks, report.roots, report.problems.len()),
        (3, 1, 0)
    );
}

#[test]
fn a_session_may_store_raw_in_a_compressing_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert!(store.options().zstd_level.is_some());
    let text = b"the same words again and again, ".repeat(4096);
    let mut sink = store.sink_with_zstd(None).unwrap();
    let c = cid_for(RAW, HashAlg::Sha2_256, &text);
    sink.put(&c, &text).unwrap();
    let w = sink.finish(None).unwrap();
    assert_eq!(w.new_stored_bytes, w.new_bytes, "stored as it came");
    let infos = store.blocks().unwrap();
    assert!(!infos.iter().find(|b| b.cid == c).unwrap().compressed);
    assert_eq!(store.get_verified(&c).unwrap().unwrap().data(), &text[..]);
}

/// A store that keeps every block uncompressed.
pub(crate) fn raw_store(dir: &std::path::Path) -> Store {
    let options = Options {
        zstd_level: None,
        ..Options::default()
    };
    Store::open_with(dir, options).unwrap()
}

#[test]
fn roots_by_name_and_cid() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    let mut sink = store.sink().unwrap();
    let a = dag(&mut sink, &[b"a"]);
    let b = dag(&mut sink, &[b"b"]);
    sink.finish(Some(record(&a, Some("x")))).unwrap();
    store
        .sink()
        .unwrap()
        .finish(Some(record(&a, Some("y"))))
        .unwrap();
    store
        .sink()
        .unwrap()
        .finish(Some(record(&b, None)))
        .unwrap();
    assert_eq!(store.roots().unwrap().len(), 3);
    assert_eq!(store.find_roots("x").unwrap()[0].root, a.to_string());
    assert_eq!(store.find_roots(&a.to_string()).unwrap().len(), 2);
    assert!(store.find_roots("nope").unwrap().is_empty());
    // Recording name x again for another root replaces the old record.
    store
        .sink()
        .unwrap()
        .finish(Some(record(&b, Some("x"))))
        .unwrap();
    assert_eq!(store.find_roots("x").unwrap().len(), 1);
    assert_eq!(store.find_roots("x").unwrap()[0].root, b.to_string());
    assert_eq!(store.remove_roots(&b.to_string()).unwrap().len(), 2);
    assert_eq!(store.roots().unwrap().len(), 1);
}

#[test]
fn verify_finds_damage_and_gc_keeps_what_roots_reach() {
    let dir = tempfile::tempdir().unwrap();
    let store = raw_store(dir.path());
    let mut sink = store.sink().unwrap();
    let a = dag(&mut sink, &[b"shared", b"only a"]);
    sink.finish(Some(record(&a, Some("a")))).unwrap();
    let mut sink = store.sink().unwrap();
    let b = dag(&mut sink, &[b"shared", b"only b"]);
    sink.finish(Some(record(&b, Some("b")))).unwrap();
    // An orphan: stored but never rooted (a killed encode).
    let mut sink = store.sink().unwrap();
    sink.put(&cid_for(RAW, HashAlg::Sha2_256, b"orphan"), b"orphan")
        .unwrap();
    sink.finish(None).unwrap();
    assert_eq!(store.blocks().unwrap().len(), 6);

    store.remove_roots("a").unwrap();
    let gc = store.gc().unwrap();
    assert_eq!((gc.kept_blocks, gc.removed_blocks), (3, 3));
    assert!(store
        .contains(&cid_for(RAW, HashAlg::Sha2_256, b"shared"))
        .unwrap());
    assert!(!store
        .contains(&cid_for(RAW, HashAlg::Sha2_256, b"only a"))
        .unwrap());
    assert!(store.verify().unwrap().problems.is_empty());

    // Damage: a block whose bytes do not match, and a missing one.
    let only_b = cid_for(RAW, HashAlg::Sha2_256, b"only b");
    blocks::overwrite(&store.blocks, &only_b, Some(b"\0tampered"));
    let shared = cid_for(RAW, HashAlg::Sha2_256, b"shared");
    blocks::overwrite(&store.blocks, &shared, None);
    let problems = store.verify().unwrap().problems;
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("not to its CID")));
    assert!(problems
        .iter()
        .any(|p| p.contains(&format!("{shared} is missing"))));
    assert!(matches!(store.gc(), Err(Error::Refused(_))));
}

#[test]
fn verify_finds_a_malformed_value() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut sink = store.sink().unwrap();
    let a = dag(&mut sink, &[b"leaf"]);
    sink.finish(Some(record(&a, Some("a")))).unwrap();
    let leaf = cid_for(RAW, HashAlg::Sha2_256, b"leaf");
    for (value, problem) in [
        (&b"\x07leaf"[..], "unknown storage tag"),
        (&b"\x01not zstd"[..], "zstd frame does not decode"),
        (&b""[..], "unknown storage tag"),
    ] {
        blocks::overwrite(&store.blocks, &leaf, Some(value));
        let problems = store.verify().unwrap().problems;
        assert!(problems.iter().any(|p| p.contains(problem)), "{problems:?}");
        assert!(store.get_block(&leaf).is_err());
    }
}

#[test]
fn the_same_directory_opened_twice_shares_one_table() {
    let dir = tempfile::tempdir().unwrap();
    let one = Store::open(dir.path()).unwrap();
    let two = Store::open(dir.path()).unwrap();
    let cid = cid_for(RAW, HashAlg::Sha2_256, b"x");
    let mut sink = one.sink().unwrap();
    sink.put(&cid, b"x").unwrap();
    sink.finish(None).unwrap();
    assert_eq!(two.get_block(&cid).unwrap().unwrap(), b"x");
    drop((one, two));
    // Closed and reopened.
    assert!(Store::open(dir.path()).unwrap().contains(&cid).unwrap());
}

#[test]
fn dropped_session_leaves_nothing_pending() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut sink = store.sink().unwrap();
    sink.put(&cid_for(RAW, HashAlg::Sha2_256, b"x"), b"x")
        .unwrap();
    drop(sink);
    assert!(store.blocks().unwrap().is_empty());
}

#[test]
fn a_store_of_block_files_is_moved_into_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let text = b"a block kept as a file by the first layout ".repeat(100);
    let (raw, zst, bad) = (
        cid_for(RAW, HashAlg::Sha2_256, b"raw file"),
        cid_for(RAW, HashAlg::Sha2_256, &text),
        cid_for(RAW, HashAlg::Sha2_256, b"bad"),
    );
    let shard = dir.path().join("blocks/AB");
    std::fs::create_dir_all(&shard).unwrap();
    std::fs::write(shard.join(raw.to_string()), b"raw file").unwrap();
    let frame = zstd::encode_all(&text[..], 1).unwrap();
    std::fs::write(shard.join(format!("{zst}.zst")), frame).unwrap();
    std::fs::write(shard.join(bad.to_string()), b"not bad").unwrap();
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get_block(&raw).unwrap().unwrap(), b"raw file");
    assert_eq!(store.get_block(&zst).unwrap().unwrap(), text);
    // A file whose bytes do not match its CID stays where it was, and is not a block.
    assert!(store.get_block(&bad).unwrap().is_none());
    assert!(shard.join(bad.to_string()).exists());
    assert!(!shard.join(raw.to_string()).exists());
}

#[test]
fn a_record_is_built_by_its_constructor() {
    let cid = cid_for(RAW, HashAlg::Sha2_256, b"x");
    let sha = [7u8; 32];
    let r = RootRecord::new(&cid, narfs_core::Encoding::ZstdNar, &sha, 42);
    assert_eq!(r.root, cid.to_string());
    assert_eq!(
        r.nar_hash,
        format!("sha256:{}", narfs_nix::base32::encode(&sha))
    );
    assert_eq!(
        (r.nar_size, r.hash.as_str(), r.chunker.as_str()),
        (42, "sha2-256", "unknown")
    );
    assert!(r.created > 0 && r.name.is_none() && r.narinfo.is_none());
    let meta = NarInfoMeta {
        store_path: "/nix/store/x".into(),
        ..NarInfoMeta::default()
    };
    let r = r
        .with_name(Some("n".into()))
        .with_layout("fixed:1024", "blake3", "p")
        .with_blocks(3, 30)
        .with_narinfo(meta.clone());
    assert_eq!(r.name.as_deref(), Some("n"));
    assert_eq!(
        (r.chunker.as_str(), r.hash.as_str(), r.profile.as_str()),
        ("fixed:1024", "blake3", "p")
    );
    assert_eq!((r.blocks, r.block_bytes, r.new_blocks), (3, 30, 0));
    assert_eq!(r.narinfo, Some(meta));
}

#[test]
fn roots_version_moves_with_every_change_only() {
    let tmp = tempfile::tempdir().unwrap();
    let store = Store::open(tmp.path().join("s")).unwrap();
    let cid = cid_for(RAW, HashAlg::Sha2_256, b"v");
    let empty = store.roots_version();
    assert!(empty.is_some());
    store.record_root(&record(&cid, Some("v"))).unwrap();
    let v = store.roots_version();
    assert!(v.is_some() && v != empty);
    assert_eq!(store.roots_version(), v, "no change, same version");
    let mut sink = store.sink().unwrap();
    sink.put(&cid_for(RAW, HashAlg::Sha2_256, b"b"), b"b")
        .unwrap();
    sink.finish(None).unwrap();
    assert_eq!(store.roots_version(), v, "blocks alone move no version");
    store.record_root(&record(&cid, Some("w"))).unwrap();
    let w = store.roots_version();
    assert!(w != v);
    store.remove_roots("w").unwrap();
    assert!(store.roots_version() != w);
}

#[test]
fn verify_with_reports_what_the_check_finds_for_complete_roots_only() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut sink = store.sink().unwrap();
    let a = dag(&mut sink, &[b"a one", b"a two"]);
    sink.finish(Some(record(&a, Some("a")))).unwrap();
    let mut sink = store.sink().unwrap();
    let b = dag(&mut sink, &[b"b one"]);
    sink.finish(Some(record(&b, Some("b")))).unwrap();

    let seen = std::sync::Mutex::new(Vec::new());
    let report = store
        .verify_with(|_, rec| {
            seen.lock().unwrap().push(rec.name.clone().unwrap());
            if rec.name.as_deref() == Some("a") {
                Err("the NAR lies".into())
            } else {
                Ok(())
            }
        })
        .unwrap();
    assert_eq!(report.problems, vec!["root a: the NAR lies".to_string()]);
    let mut seen = seen.into_inner().unwrap();
    seen.sort();
    assert_eq!(seen, ["a", "b"]);

    // A root with a missing block is reported by the walk and not checked again.
    blocks::overwrite(
        &store.blocks,
        &cid_for(RAW, HashAlg::Sha2_256, b"b one"),
        None,
    );
    let checked = std::sync::atomic::AtomicUsize::new(0);
    let report = store
        .verify_with(|_, rec| {
            assert_eq!(rec.name.as_deref(), Some("a"), "b is incomplete");
            checked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            Ok(())
        })
        .unwrap();
    assert_eq!(checked.into_inner(), 1);
    assert_eq!(report.problems.len(), 1, "{:?}", report.problems);
    assert!(report.problems[0].starts_with("root b: "));
}
