//! Unit tests of the root records in the table: many items through one session, the
//! indexes (name, CID, store-path hash), name replacement, removal, trees deep enough
//! to have branch pages, the migration of `roots/*.json`, a damaged record.

use std::sync::mpsc;

use narfs_core::block::{cid_for, BlockSink, HashAlg, RAW};

use super::*;

/// A store path whose hash part is made of `i`'s digits in nix base32's alphabet.
fn store_path(dir: &str, i: usize) -> String {
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    let hash: String = (0..32)
        .map(|k| alphabet[(i >> (k % 12)) % 32] as char)
        .collect();
    let hash = format!("{:0>8}{}", i % 100_000_000, &hash[8..]);
    format!("{dir}/{hash}-item{i}")
}

fn hash_part(p: &str) -> &str {
    let base = p.rsplit('/').next().unwrap();
    &base[..32]
}

fn item(i: usize, dir: &str) -> (Cid, RootRecord) {
    let cid = cid_for(RAW, HashAlg::Sha2_256, format!("item {i}").as_bytes());
    let path = store_path(dir, i);
    let rec = RootRecord::new(&cid, narfs_core::Encoding::UnixFs, &[i as u8; 32], i as u64)
        .with_name(Some(path.clone()))
        .with_narinfo(NarInfoMeta {
            store_path: path,
            references: vec![format!("ref{i}")],
            ..NarInfoMeta::default()
        });
    (cid, rec)
}

#[test]
fn many_items_share_one_session_and_are_found_by_every_index() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let session = store.session().unwrap();
    let (tx, rx) = mpsc::channel();
    let n = 3000;
    for i in 0..n {
        let (cid, rec) = item(
            i,
            if i % 3 == 0 {
                "/gnu/store"
            } else {
                "/nix/store"
            },
        );
        let mut sink = session.sink();
        sink.put(&cid, format!("item {i}").as_bytes()).unwrap();
        let tx = tx.clone();
        sink.finish_then(
            Some(rec),
            Box::new(move |r| {
                tx.send((i, r.map(|w| w.new_blocks))).unwrap();
            }),
        )
        .unwrap();
    }
    session.close().unwrap();
    drop(tx);
    let mut done: Vec<_> = rx.iter().collect();
    done.sort_by_key(|d| d.0);
    assert_eq!(done.len(), n);
    assert!(
        done.iter().all(|(_, r)| matches!(r, Ok(1))),
        "each item stored its block"
    );

    let again = Store::open(dir.path()).unwrap();
    assert_eq!(again.roots().unwrap().len(), n);
    for i in [0, 1, 2, 1234, n - 1] {
        let (cid, rec) = item(
            i,
            if i % 3 == 0 {
                "/gnu/store"
            } else {
                "/nix/store"
            },
        );
        let name = rec.name.clone().unwrap();
        let found = again.find_roots(&name).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            (found[0].root.as_str(), found[0].new_blocks),
            (rec.root.as_str(), 1)
        );
        assert_eq!(again.find_roots(&cid.to_string()).unwrap().len(), 1);
        let by_hash = again.find_by_path_hash(hash_part(&name)).unwrap();
        assert_eq!(by_hash.len(), 1);
        assert_eq!(by_hash[0].narinfo, rec.narinfo);
    }
    assert!(again.find_roots("/nix/store/none").unwrap().is_empty());
    assert!(again.find_by_path_hash(&"z".repeat(32)).unwrap().is_empty());
    assert_eq!(
        again.narinfo_counts().unwrap(),
        NarInfoCounts {
            nix: 2000,
            guix: 1000
        }
    );
    let report = again.verify().unwrap();
    assert_eq!((report.roots, report.problems.len()), (n as u64, 0));
}

#[test]
fn a_name_names_one_root_and_removal_clears_the_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let (a, rec) = item(1, "/nix/store");
    let name = rec.name.clone().unwrap();
    store.record_root(&rec).unwrap();
    // The same name for another root replaces the record.
    let b = cid_for(RAW, HashAlg::Sha2_256, b"other");
    let mut moved = rec.clone();
    moved.root = b.to_string();
    store.record_root(&moved).unwrap();
    assert_eq!(store.find_roots(&name).unwrap()[0].root, b.to_string());
    assert!(store.find_roots(&a.to_string()).unwrap().is_empty());
    assert_eq!(store.find_by_path_hash(hash_part(&name)).unwrap().len(), 1);
    assert_eq!(store.narinfo_counts().unwrap().nix, 1);
    // The same root under another name, and without one: three records of `b`.
    store
        .record_root(&moved.clone().with_name(Some("x".into())))
        .unwrap();
    store.record_root(&moved.clone().with_name(None)).unwrap();
    assert_eq!(store.find_roots(&b.to_string()).unwrap().len(), 3);
    assert_eq!(store.remove_roots(&b.to_string()).unwrap().len(), 3);
    assert!(store.roots().unwrap().is_empty());
    assert!(store.find_roots(&name).unwrap().is_empty());
    assert!(store
        .find_by_path_hash(hash_part(&name))
        .unwrap()
        .is_empty());
    assert_eq!(store.narinfo_counts().unwrap(), NarInfoCounts::default());
}

#[test]
fn json_records_of_an_older_store_move_into_the_table() {
    let dir = tempfile::tempdir().unwrap();
    let roots = dir.path().join("roots");
    std::fs::create_dir_all(&roots).unwrap();
    let mut recs = Vec::new();
    for i in 0..5 {
        let (_, rec) = item(i, "/nix/store");
        let json = serde_json::to_vec_pretty(&rec).unwrap();
        std::fs::write(roots.join(format!("r{i}.json")), json).unwrap();
        recs.push(rec);
    }
    std::fs::write(roots.join("bad.json"), b"{not json").unwrap();
    let store = Store::open(dir.path()).unwrap();
    let mut got = store.roots().unwrap();
    got.sort_by_key(|a| a.nar_size);
    assert_eq!(got, recs);
    let left: Vec<_> = std::fs::read_dir(&roots)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(left, ["bad.json.bad"]);
    // Opening again migrates nothing more and loses nothing.
    assert_eq!(Store::open(dir.path()).unwrap().roots().unwrap().len(), 5);
}

#[test]
fn a_dropped_item_records_nothing_but_its_session_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let session = store.session().unwrap();
    let (a, rec_a) = item(1, "/nix/store");
    let mut s = session.sink();
    s.put(&a, b"item 1").unwrap();
    drop(s);
    let (b, rec_b) = item(2, "/nix/store");
    let mut s = session.sink();
    s.put(&b, b"item 2").unwrap();
    let w = s.finish(Some(rec_b)).unwrap();
    assert_eq!(w.new_blocks, 1);
    session.close().unwrap();
    let names: Vec<_> = store.roots().unwrap().into_iter().map(|r| r.name).collect();
    assert_eq!(names, [rec_a.name.map(|_| store_path("/nix/store", 2))]);
}
