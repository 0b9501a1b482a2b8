//! decode(encode(nar)) == nar: for every corpus NAR and for random trees, with the
//! fixed and FastCDC chunkers and both hashes; the same file gets the same CID in any
//! NAR; and a damaged DAG fails with an error naming the CID and the path.

mod common;

use std::path::Path;

use narfs_core::block::{BlockSink, HashAlg, MemoryStore};
use narfs_core::nar::NarWriter;
use narfs_decoder::{decode_nar, Limits};
use narfs_encoder::{encode, EntryKind, Layout, Profile};
use proptest::prelude::*;

fn layouts() -> Vec<Layout> {
    let mut out = Vec::new();
    for chunker in [
        "fixed:262144",
        "fixed:1024",
        "fastcdc:256:1024:4096",
        "fastcdc:16384:65536:262144",
    ] {
        for hash in [HashAlg::Sha2_256, HashAlg::Blake3] {
            let mut l = Profile::KuboV1.layout();
            l.chunker = chunker.parse().unwrap();
            l.hash = hash;
            out.push(l);
        }
    }
    out.push(Profile::UnixfsV1_2025.layout());
    // A narrow tree, so that small files get deep balanced trees.
    let mut narrow = Profile::KuboV1.layout();
    narrow.chunker = "fixed:64".parse().unwrap();
    narrow.max_links = 3;
    out.push(narrow);
    out
}

fn roundtrip(nar: &[u8], layout: &Layout) -> narfs_core::Cid {
    let mut store = MemoryStore::new();
    let enc = encode(nar, layout, &mut store, None).unwrap();
    assert_eq!(enc.nar_size, nar.len() as u64);
    let out = decode_nar(&store, &enc.root, Vec::new(), &Limits::default()).unwrap();
    assert!(out == nar, "roundtrip differs under {layout:?}");
    enc.root
}

fn corpus() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut nars: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "nar"))
        .collect();
    nars.sort();
    assert!(nars.len() >= 10, "the bundled corpus is missing");
    nars
}

#[test]
fn every_corpus_nar_roundtrips_under_every_layout() {
    for path in corpus() {
        let nar = std::fs::read(&path).unwrap();
        for layout in layouts() {
            roundtrip(&nar, &layout);
        }
    }
}

#[test]
fn nix_restores_decoded_nars() {
    if !common::have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    for path in corpus().into_iter().step_by(3) {
        let car = tmp.path().join("x.car");
        let _ = std::fs::remove_file(&car);
        let cid = common::run(
            common::narfs()
                .args(["encode", "--chunker", "fastcdc:2048:8192:32768", "--car"])
                .arg(&car)
                .arg(&path),
        )
        .stdout;
        let cid = String::from_utf8(cid).unwrap().trim().to_string();
        let decoded = tmp.path().join("d.nar");
        common::run(
            common::narfs()
                .args(["decode", "--car"])
                .arg(&car)
                .arg("-o")
                .arg(&decoded)
                .arg(&cid),
        );
        assert!(std::fs::read(&decoded).unwrap() == std::fs::read(&path).unwrap());
        let dest = tmp
            .path()
            .join(format!("r-{}", path.file_stem().unwrap().to_string_lossy()));
        let status = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "nix-store --restore '{}' < '{}'",
                dest.display(),
                decoded.display()
            ))
            .status()
            .unwrap();
        assert!(
            status.success(),
            "nix-store --restore refused the decoded {}",
            path.display()
        );
        // And `decode --to` restores the same tree.
        let ours = tmp
            .path()
            .join(format!("o-{}", path.file_stem().unwrap().to_string_lossy()));
        common::run(
            common::narfs()
                .args(["decode", "--car"])
                .arg(&car)
                .arg("--to")
                .arg(&ours)
                .arg(&cid),
        );
        let a = common::run(
            std::process::Command::new("nix-store")
                .arg("--dump")
                .arg(&dest),
        )
        .stdout;
        let b = common::run(
            std::process::Command::new("nix-store")
                .arg("--dump")
                .arg(&ours),
        )
        .stdout;
        assert!(a == b);
    }
}

fn file_nar(name_path: &[&str], data: &[u8], executable: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = NarWriter::new(&mut out);
    w.directory(b"").unwrap();
    for d in &name_path[..name_path.len() - 1] {
        w.directory(d.as_bytes()).unwrap();
    }
    w.file(
        name_path.last().unwrap().as_bytes(),
        executable,
        data.len() as u64,
        &mut &data[..],
    )
    .unwrap();
    for _ in 0..name_path.len() {
        w.end_directory().unwrap();
    }
    w.finish().unwrap();
    out
}

#[test]
fn the_same_file_gets_the_same_cid_anywhere() {
    let data = common::bytes(9, 700_000);
    for layout in layouts() {
        let mut cids = Vec::new();
        for (path, exe) in [
            (&["a"][..], false),
            (&["x", "y", "renamed"][..], false),
            (&["deep", "er", "still", "f"][..], false),
        ] {
            let nar = file_nar(path, &data, exe);
            let mut store = MemoryStore::new();
            let mut seen = Vec::new();
            let mut obs = |p: &str, kind: EntryKind, cid: &narfs_core::Cid| {
                if kind == EntryKind::File {
                    seen.push((p.to_string(), *cid));
                }
            };
            encode(&nar[..], &layout, &mut store, Some(&mut obs)).unwrap();
            assert_eq!(seen.len(), 1);
            cids.push(seen[0].1);
        }
        assert!(
            cids.windows(2).all(|w| w[0] == w[1]),
            "{layout:?}: {cids:?}"
        );
    }
}

/// Encodes a small tree and returns the store, the root and each entry's CID.
fn sample() -> (
    MemoryStore,
    narfs_core::Cid,
    Vec<(String, EntryKind, narfs_core::Cid)>,
) {
    let tmp = tempfile::tempdir().unwrap();
    let tree = common::awkward_tree(tmp.path(), false);
    let nar = common::run(common::narfs().args(["nar", "dump"]).arg(&tree)).stdout;
    let mut store = MemoryStore::new();
    let mut entries = Vec::new();
    let mut obs = |p: &str, k: EntryKind, c: &narfs_core::Cid| entries.push((p.to_string(), k, *c));
    let enc = encode(&nar[..], &Layout::default(), &mut store, Some(&mut obs)).unwrap();
    (store, enc.root, entries)
}

#[test]
fn a_missing_block_names_its_cid_and_path() {
    let (mut store, root, entries) = sample();
    let (path, _, cid) = entries
        .iter()
        .find(|e| e.0 == "sub/deeper/two-chunks")
        .unwrap()
        .clone();
    // Remove one of the file's leaves.
    let node = narfs_core::dagpb::PBNode::decode(store.get_ref(&cid).unwrap()).unwrap();
    let leaf = node.links[1].hash;
    store.remove(&leaf).unwrap();
    let err = decode_nar(&store, &root, Vec::new(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&leaf.to_string()) && err.contains(&path) && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn a_block_that_does_not_match_its_cid_is_refused() {
    let (mut store, root, entries) = sample();
    let (path, _, cid) = entries.iter().find(|e| e.0 == "hello.sh").unwrap().clone();
    let mut bytes = store.remove(&cid).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    store.insert_unchecked(cid, bytes);
    let err = decode_nar(&store, &root, Vec::new(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&cid.to_string()) && err.contains(&path) && err.contains("hashes to"),
        "{err}"
    );
}

#[test]
fn a_malformed_node_is_refused() {
    let (mut store, root, entries) = sample();
    let (path, _, cid) = entries.iter().find(|e| e.0 == "sub").unwrap().clone();
    // Replace the directory with garbage under a CID that matches it.
    let garbage = vec![0xff, 0x01, 0x02];
    let bad = narfs_core::block::cid_for(narfs_core::block::DAG_PB, HashAlg::Sha2_256, &garbage);
    store.put(&bad, &garbage).unwrap();
    // Point the root at it: rebuild the root directory node with the bad link.
    let mut node = narfs_core::dagpb::PBNode::decode(store.get_ref(&root).unwrap()).unwrap();
    for l in &mut node.links {
        if l.hash == cid {
            l.hash = bad;
        }
    }
    let bytes = node.encode();
    let new_root = narfs_core::block::cid_for(narfs_core::block::DAG_PB, HashAlg::Sha2_256, &bytes);
    store.put(&new_root, &bytes).unwrap();
    let err = decode_nar(&store, &new_root, Vec::new(), &Limits::default())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&bad.to_string()) && err.contains(&path) && err.contains("dag-pb"),
        "{err}"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]
    #[test]
    fn random_trees_roundtrip(tree in common::arb_tree()) {
        let nar = common::tree_nar(&tree);
        for layout in layouts() {
            roundtrip(&nar, &layout);
        }
    }
}

#[test]
fn encoding_validates_the_whole_nar_even_after_the_root() {
    let mut nar = file_nar(&["a"], b"data", false);
    nar.extend_from_slice(&[0u8; 8]);
    let err = encode(&nar[..], &Layout::default(), &mut MemoryStore::new(), None).unwrap_err();
    assert!(err.to_string().contains("trailing"), "{err}");
    let cut = file_nar(&["a"], &common::bytes(3, 600_000), false);
    let err = encode(
        &cut[..cut.len() - 100],
        &Layout::default(),
        &mut MemoryStore::new(),
        None,
    )
    .unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}
