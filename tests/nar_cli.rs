//! `narfs nar` on bad input: every truncation and every flipped structural byte is a
//! one-line error with a non-zero exit, never a panic, and `restore` leaves nothing.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::*;

fn nar_of_awkward_tree() -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), true);
    std::fs::remove_file(tree.join("sub/data.bin")).unwrap();
    std::fs::remove_file(tree.join("sub/deeper/one-chunk")).unwrap();
    std::fs::remove_file(tree.join("sub/deeper/two-chunks")).unwrap();
    run(narfs().args(["nar", "dump"]).arg(&tree)).stdout
}

fn ls_stdin(nar: &[u8]) -> std::process::Output {
    let mut child = narfs()
        .args(["nar", "ls", "-R", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(nar);
    drop(stdin);
    child.wait_with_output().unwrap()
}

fn assert_clean_failure(out: &std::process::Output, what: &str) {
    let err = common::failure(out);
    assert!(err.starts_with("narfs: "), "{what}: {err}");
}

#[test]
fn every_truncation_fails_cleanly() {
    let nar = nar_of_awkward_tree();
    assert!(ls_stdin(&nar).status.success());
    // Every offset would be ~1,500 processes; every 7th (all residues mod 8) plus the
    // last 16 covers every token and padding position class.
    let cuts: Vec<usize> = (0..nar.len())
        .step_by(7)
        .chain(nar.len() - 16..nar.len())
        .collect();
    for cut in cuts {
        let out = ls_stdin(&nar[..cut]);
        assert_clean_failure(&out, &format!("cut at {cut}"));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("byte"), "no offset in: {err}");
        // No partial output: the entries before the fault are not printed either.
        assert!(
            out.stdout.is_empty(),
            "cut at {cut}: partial listing on stdout"
        );
    }
}

#[test]
fn errors_say_their_cause_once() {
    let tmp = tempfile::tempdir().unwrap();
    for json in [false, true] {
        let mut cmd = narfs();
        cmd.args(["nar", "ls"]).arg(tmp.path());
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn every_flipped_structural_byte_fails_cleanly() {
    let nar = nar_of_awkward_tree();
    // Structural bytes: lengths, tokens and padding, i.e. everything that is not
    // file contents, a name or a target. Flip each byte of the length words and the
    // first byte of each token word in the grammar region.
    let mut checked = 0;
    for at in (0..nar.len()).step_by(8) {
        let word = &nar[at..at + 8];
        let len = u64::from_le_bytes(word.try_into().unwrap());
        let is_token = matches!(len, 1 | 4 | 5 | 6 | 7 | 8 | 9 | 10 | 13)
            && at + 16 <= nar.len()
            && [
                &b"("[..],
                b")",
                b"type",
                b"entry",
                b"name",
                b"node",
                b"regular",
                b"symlink",
                b"directory",
                b"target",
                b"contents",
                b"executable",
                b"nix-archive-1",
            ]
            .iter()
            .any(|t| t.len() as u64 == len && nar[at + 8..].starts_with(t));
        if !is_token {
            continue;
        }
        for flip in [at, at + 8] {
            let mut bad = nar.clone();
            bad[flip] ^= 0x40;
            let out = ls_stdin(&bad);
            assert_clean_failure(&out, &format!("flip at {flip}"));
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} flips");
}

#[test]
fn failed_restore_leaves_nothing_behind() {
    let nar = nar_of_awkward_tree();
    let tmp = tempfile::tempdir().unwrap();
    let dest = tmp.path().join("out");
    let bad = &nar[..nar.len() - 40];
    let mut child = narfs()
        .args(["nar", "restore", "-"])
        .arg(&dest)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bad).unwrap();
    let out = child.wait_with_output().unwrap();
    assert_clean_failure(&out, "truncated restore");
    assert_eq!(
        std::fs::read_dir(tmp.path()).unwrap().count(),
        0,
        "partial output left behind"
    );
    // An existing destination is refused and left alone.
    std::fs::create_dir(&dest).unwrap();
    write(&dest.join("keep"), b"mine", false);
    let nar_file = tmp.path().join("t.nar");
    std::fs::write(&nar_file, &nar).unwrap();
    let out = narfs()
        .args(["nar", "restore"])
        .arg(&nar_file)
        .arg(&dest)
        .output()
        .unwrap();
    assert_clean_failure(&out, "existing destination");
    assert_eq!(std::fs::read(dest.join("keep")).unwrap(), b"mine");
}

#[test]
fn dump_refuses_special_files_naming_the_path() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("d");
    std::fs::create_dir(&dir).unwrap();
    let fifo = dir.join("pipe");
    assert!(std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let out_file = tmp.path().join("out.nar");
    let out = narfs()
        .args(["nar", "dump", "-o"])
        .arg(&out_file)
        .arg(&dir)
        .output()
        .unwrap();
    assert_clean_failure(&out, "fifo");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("pipe") && err.contains("FIFO"), "{err}");
    assert!(!out_file.exists(), "half-written output left behind");
}
