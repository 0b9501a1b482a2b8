//! `narfs nar` against the real Nix: `nix-store --dump` must give the same bytes,
//! and `nix-store --restore` must accept ours and restore the same tree.

mod common;

use std::path::Path;

use common::*;

fn dump_both(dir: &Path) -> (Vec<u8>, Vec<u8>) {
    let ours = run(narfs().args(["nar", "dump"]).arg(dir)).stdout;
    let nix = run(std::process::Command::new("nix-store")
        .arg("--dump")
        .arg(dir))
    .stdout;
    (ours, nix)
}

fn assert_same_as_nix(dir: &Path) {
    let (ours, nix) = dump_both(dir);
    assert!(
        ours == nix,
        "narfs nar dump differs from nix-store --dump for {}",
        dir.display()
    );
    // And Nix restores our NAR to a tree it dumps identically.
    let out = tempfile::tempdir().unwrap();
    let restored = out.path().join("r");
    let mut child = std::process::Command::new("nix-store")
        .arg("--restore")
        .arg(&restored)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(&ours).unwrap();
    assert!(
        child.wait().unwrap().success(),
        "nix-store --restore refused our NAR"
    );
    let (again, _) = dump_both(&restored);
    assert!(again == ours);
}

#[test]
fn awkward_trees_match_nix() {
    if !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), true);
    assert_same_as_nix(&tree);
    // Roots that are not directories.
    assert_same_as_nix(&tree.join("hello.sh"));
    assert_same_as_nix(&tree.join("empty"));
    assert_same_as_nix(&tree.join("abs-dangling"));
}

#[test]
fn deep_and_wide_trees_match_nix() {
    if !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let deep = tmp.path().join("deep");
    let mut p = deep.clone();
    for i in 0..1000 {
        p.push(if i % 2 == 0 { "a" } else { "b" });
    }
    std::fs::create_dir_all(&p).unwrap();
    write(&p.join("leaf"), b"bottom", false);
    assert_same_as_nix(&deep);

    let wide = tmp.path().join("wide");
    std::fs::create_dir(&wide).unwrap();
    for i in 0..20_000u32 {
        // Names whose bytewise order differs from numeric order.
        write(
            &wide.join(format!("{}", i * 7919 % 20_000)),
            &i.to_le_bytes(),
            i % 3 == 0,
        );
    }
    assert_same_as_nix(&wide);
}

#[test]
fn real_system_trees_match_nix() {
    if !have("nix-store") {
        return;
    }
    for dir in [
        "/usr/share/doc/bash",
        "/usr/lib/python3",
        "/etc/ssl",
        "/usr/bin",
    ] {
        let dir = Path::new(dir);
        if dir.exists() {
            assert_same_as_nix(dir);
            let nar = tempfile::NamedTempFile::new().unwrap();
            std::fs::write(nar.path(), dump_both(dir).1).unwrap();
            run(narfs().args(["nar", "ls", "-R"]).arg(nar.path()));
        }
    }
}

#[test]
fn restore_matches_nix_restore() {
    if !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), true);
    let nar = tmp.path().join("t.nar");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
    let ours = tmp.path().join("ours");
    run(narfs().args(["nar", "restore"]).arg(&nar).arg(&ours));
    let (a, b) = dump_both(&ours);
    assert!(a == b);
    assert!(
        a == std::fs::read(&nar).unwrap(),
        "restore then dump is not the identity"
    );
}

/// `narfs nar ls --json` gives the object `nix nar ls --json` gives (same keys, same
/// `narOffset`s), recursive or not, on generated trees and the corpus NARs.
#[test]
fn nar_ls_json_matches_nix() {
    if !have("nix") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let mut nars = Vec::new();
    for root in [tree.clone(), tree.join("hello.sh"), tree.join("rel-link")] {
        let nar = tmp.path().join(format!("{}.nar", nars.len()));
        std::fs::write(&nar, dump_both(&root).1).unwrap();
        nars.push(nar);
    }
    for e in std::fs::read_dir(corpus_dir()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "nar") {
            nars.push(p);
        }
    }
    for nar in &nars {
        for recursive in [false, true] {
            let mut ours = narfs();
            ours.args(["nar", "ls", "--json"]).arg(nar);
            let mut nix = std::process::Command::new("nix");
            nix.args([
                "--extra-experimental-features",
                "nix-command",
                "nar",
                "ls",
                "--json",
            ]);
            if recursive {
                ours.arg("-R");
                nix.arg("-R");
            }
            nix.arg(nar).arg("/");
            let parse = |out: Vec<u8>| -> serde_json::Value {
                serde_json::from_slice(&out).expect("one JSON object")
            };
            assert_eq!(
                parse(run(&mut ours).stdout),
                parse(run(&mut nix).stdout),
                "nar ls --json (recursive: {recursive}) differs from nix for {}",
                nar.display()
            );
        }
    }
}
