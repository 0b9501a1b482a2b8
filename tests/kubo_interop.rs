//! narfs against the real Kubo (`ipfs`, built by .ci/kubo.sh), the reference peer:
//! `ipfs add -r --cid-version=1 --only-hash` gives exactly narfs's CID for every entry
//! of generated and real trees under both profiles; Kubo imports narfs's CARs (both
//! profiles, both hashes, the zstd fallback) and gives back the same files as
//! `nix-store --restore` of the NAR; narfs imports Kubo's CARs and decodes them to
//! what `nix-store --dump` gives. Executables: see `executables_against_preserve_mode`.

mod common;
mod kubo_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use kubo_support::*;
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::UnixFsData as Data;

const PROFILES: [&str; 2] = ["kubo-v1", "unixfs-v1-2025"];

/// Kubo's repo for a narfs profile: `kubo-v1` is Kubo's default import settings with
/// `--cid-version=1`; `unixfs-v1-2025` is `ipfs config profile apply unixfs-v1-2025`.
fn kubo_for(profile: &str) -> Kubo {
    Kubo::init((profile == "unixfs-v1-2025").then_some("unixfs-v1-2025"))
}

/// Every entry's CID from Kubo equals narfs's, and the entry sets are the same. For
/// a generated tree (`vector`: its name), Kubo's CIDs are also the checked-in
/// vectors (tests/vectors/; with `NARFS_BLESS_VECTORS=1` they are written instead).
fn assert_same_cids(kubo: &Kubo, dir: &Path, profile: &str, vector: Option<&str>) {
    let tmp = tempfile::tempdir().unwrap();
    let ours = encode_entries(dir, profile, &tmp.path().join("t.car"), &[]);
    let theirs = kubo.add(dir, &["--only-hash", "--cid-version=1"]);
    if let Some(tree) = vector {
        vectors::check(profile, tree, &theirs, "Kubo");
    }
    assert_eq!(
        theirs.get(""),
        ours.get(""),
        "root CID of {} differs from Kubo's under {profile}",
        dir.display()
    );
    for (path, cid) in &theirs {
        assert_eq!(
            ours.get(path),
            Some(cid),
            "{}: CID of {path:?} differs from Kubo's under {profile}",
            dir.display()
        );
    }
    assert_eq!(
        ours.len(),
        theirs.len(),
        "entry counts differ under {profile}"
    );
}

#[test]
fn generated_trees_match_kubo_under_both_profiles() {
    if !have_ipfs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let built: Vec<(&str, PathBuf)> = ["sizes", "links", "deep", "hamt-5000"]
        .into_iter()
        .map(|n| (n, trees::build(n, tmp.path())))
        .collect();
    for profile in PROFILES {
        let kubo = kubo_for(profile);
        for (name, dir) in &built {
            assert_same_cids(&kubo, dir, profile, Some(name));
        }
    }
}

#[test]
fn a_100000_entry_directory_matches_kubo_under_both_profiles() {
    if !have_ipfs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = trees::hamt_100000(tmp.path());
    for profile in PROFILES {
        assert_same_cids(&kubo_for(profile), &dir, profile, Some("hamt-100000"));
    }
}

/// Real trees narfs has never seen (those without executables).
#[test]
fn real_system_trees_match_kubo_under_both_profiles() {
    if !have_ipfs() {
        return;
    }
    let kubos: Vec<Kubo> = PROFILES.iter().map(|p| kubo_for(p)).collect();
    let mut checked = 0;
    for dir in [
        "/usr/share/zoneinfo",
        "/usr/share/perl5",
        "/usr/lib/python3/dist-packages",
        "/usr/share/perl",
    ] {
        let dir = Path::new(dir);
        if !dir.is_dir() || has_executables(dir) {
            eprintln!(
                "(not comparing {}: missing or has executables)",
                dir.display()
            );
            continue;
        }
        for (kubo, profile) in kubos.iter().zip(PROFILES) {
            assert_same_cids(kubo, dir, profile, None);
        }
        checked += 1;
    }
    assert!(
        checked >= 2,
        "fewer than two system trees to compare on this machine"
    );
}

fn has_executables(dir: &Path) -> bool {
    let out = run(Command::new("find")
        .arg(dir)
        .args(["-type", "f", "-perm", "/111", "-print", "-quit"]));
    !out.stdout.is_empty()
}

/// The UnixFS Data of a block Kubo holds.
fn unixfs_of(kubo: &Kubo, cid: &str) -> (Data, PBNode) {
    let block = run(kubo.ipfs().args(["block", "get", cid])).stdout;
    let node = PBNode::decode(&block).unwrap();
    let data = Data::decode(node.data.as_deref().unwrap()).unwrap();
    (data, node)
}

/// `ipfs add --preserve-mode` against narfs, for a tree with executables. narfs keeps
/// one bit of mode, as the NAR does: an executable is a `File` node with mode 0755 over
/// the raw leaves a plain file of the same bytes has; nothing else carries a mode.
/// Kubo's `--preserve-mode` stores every file's and directory's permission bits
/// (0644 files and 0755 directories too, never symlinks) and, since a raw leaf cannot
/// carry a mode, turns raw leaves off: chunks become dag-pb `File` leaves, and a
/// one-chunk file's bytes sit inline in its node. What agrees: a symlink's CID, and a
/// multi-chunk executable's top node has the same UnixFS Data (type, filesize,
/// blocksizes, mode 0755) over leaves holding the same bytes.
#[test]
fn executables_against_preserve_mode() {
    if !have_ipfs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path().join("exe");
    std::fs::create_dir_all(t.join("bin")).unwrap();
    write(&t.join("bin/small"), b"#!/bin/sh\necho hi\n", true);
    write(&t.join("bin/big"), &bytes(5, 600_000), true);
    write(&t.join("plain"), b"data\n", false);
    symlink(b"bin/small", &t.join("link"));
    for d in [&t, &t.join("bin")] {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let ours = encode_entries(&t, "kubo-v1", &tmp.path().join("t.car"), &[]);
    let kubo = Kubo::init(None);
    let plain = kubo.add(&t, &["--cid-version=1"]);
    // Without --preserve-mode Kubo ignores modes: it agrees on everything but the
    // executables and the directories above them.
    for path in ["plain", "link"] {
        assert_eq!(plain[path], ours[path], "{path}");
    }
    for path in ["bin/small", "bin/big", "bin", ""] {
        assert_ne!(plain[path], ours[path], "{path}");
    }
    // (--only-hash with --preserve-mode fails on symlinks in Kubo 0.43.1, so add.)
    let moded = kubo.add(&t, &["--cid-version=1", "--preserve-mode"]);
    assert_eq!(moded["link"], ours["link"]);
    assert_ne!(moded["plain"], ours["plain"]);
    let (data, node) = unixfs_of(&kubo, &moded["plain"]);
    assert_eq!(
        (data.mode, node.links.len()),
        (Some(0o644), 0),
        "plain: mode 0644, inline"
    );
    let (data, node) = unixfs_of(&kubo, &moded["bin/small"]);
    assert_eq!(data.mode, Some(0o755));
    assert!(node.links.is_empty() && data.data.as_deref() == Some(&b"#!/bin/sh\necho hi\n"[..]));
    assert_eq!(unixfs_of(&kubo, &moded["bin"]).0.mode, Some(0o755));
    // The big executable: same top Data; Kubo's leaves are dag-pb around our raw leaves.
    run(kubo
        .ipfs()
        .args(["dag", "import", "--pin-roots=false"])
        .arg(tmp.path().join("t.car")));
    let (kd, kn) = unixfs_of(&kubo, &moded["bin/big"]);
    let (nd, nn) = unixfs_of(&kubo, &ours["bin/big"]);
    assert_eq!(kd, nd, "top UnixFS Data differs");
    assert_eq!(nd.mode, Some(0o755));
    assert_eq!(kn.links.len(), nn.links.len());
    for (k, n) in kn.links.iter().zip(&nn.links) {
        assert_eq!(n.hash.codec(), 0x55, "narfs's leaves are raw");
        assert_eq!(k.hash.codec(), 0x70, "Kubo's moded leaves are dag-pb");
        let (leaf, _) = unixfs_of(&kubo, &k.hash.to_string());
        let raw = run(kubo.ipfs().args(["block", "get", &n.hash.to_string()])).stdout;
        assert!(leaf.data.as_deref() == Some(&raw[..]), "leaf bytes differ");
        assert_eq!(leaf.mode, None);
    }
}

/// Kubo imports narfs's CARs and gives back, with `ipfs get`, the tree Nix restores
/// from the NAR: same files, bytes, symlinks and (Kubo applies a UnixFS mode when it
/// writes a file) executable bits; `ipfs cat` of a file CID gives its bytes.
#[test]
fn kubo_imports_narfs_cars_and_gives_back_the_tree() {
    if !have_ipfs() || !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let nar = run(narfs().args(["nar", "dump"]).arg(&tree)).stdout;
    let expected = tmp.path().join("nix");
    nix_restore(&nar, &expected);
    let expected = listing(&expected);
    let mut kubo = Kubo::init(None);
    kubo.start();
    let mut n = 0;
    for profile in PROFILES {
        for hash in ["sha2-256", "blake3"] {
            n += 1;
            let car = tmp.path().join(format!("{n}.car"));
            let entries = encode_entries(&tree, profile, &car, &["--hash", hash]);
            let out = run(kubo.ipfs().args(["dag", "import", "--pin-roots"]).arg(&car));
            let report = String::from_utf8_lossy(&out.stdout);
            assert!(report.contains(&entries[""]), "{profile}/{hash}: {report}");
            let got = tmp.path().join(format!("get-{n}"));
            run(kubo.ipfs().args(["get", "-o"]).arg(&got).arg(&entries[""]));
            assert_eq!(
                listing(&got),
                expected,
                "{profile}/{hash}: ipfs get differs from nix-store --restore"
            );
            let cat = run(kubo.ipfs().args(["cat", &entries["sub/deeper/two-chunks"]])).stdout;
            assert!(cat == std::fs::read(tree.join("sub/deeper/two-chunks")).unwrap());
        }
    }
    // The fallback: one UnixFS file holding the zstd-compressed NAR.
    let car = tmp.path().join("fallback.car");
    let out = run(narfs()
        .args(["encode", "--json", "--fallback", "--car"])
        .arg(&car)
        .arg(&tree));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let root = v["root"].as_str().unwrap();
    run(kubo.ipfs().args(["dag", "import", "--pin-roots"]).arg(&car));
    let compressed = run(kubo.ipfs().args(["cat", root])).stdout;
    assert!(
        zstd::decode_all(&compressed[..]).unwrap() == nar,
        "fallback NAR differs"
    );
}

/// narfs imports what Kubo exports: `ipfs add -r` (CIDv0 defaults, CIDv1, and the
/// 2025 profile), `ipfs dag export`, `narfs car import`, and `narfs decode` gives
/// exactly `nix-store --dump` of the directory.
#[test]
fn narfs_decodes_kubo_cars_to_nix_store_dump() {
    if !have_ipfs() || !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dirs = [
        trees::links(tmp.path()),
        trees::sizes(tmp.path()),
        trees::hamt_5000(tmp.path()),
    ];
    for (profile, args) in [
        (None, &[][..]),
        (None, &["--cid-version=1"][..]),
        (Some("unixfs-v1-2025"), &[][..]),
    ] {
        let kubo = Kubo::init(profile);
        for dir in &dirs {
            let root = kubo.add(dir, args)[""].clone();
            let car = tmp.path().join("kubo.car");
            let out = run(kubo.ipfs().args(["dag", "export", &root]));
            std::fs::write(&car, &out.stdout).unwrap();
            let store = tempfile::tempdir().unwrap();
            let imported = run(narfs()
                .args(["car", "import", "--store"])
                .arg(store.path())
                .arg(&car));
            assert_eq!(String::from_utf8(imported.stdout).unwrap().trim(), root);
            let ours = run(narfs()
                .args(["decode", "--store"])
                .arg(store.path())
                .arg(&root))
            .stdout;
            let nix = run(Command::new("nix-store").arg("--dump").arg(dir)).stdout;
            assert!(
                ours == nix,
                "{} ({profile:?} {args:?}): decoded NAR differs",
                dir.display()
            );
        }
    }
}
