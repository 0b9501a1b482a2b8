//! `narfs encode`/`decode` on the command line: the JSON report, NarHash as Nix
//! computes it, directory input, stdin, the compressed fallback, and clean failures.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};

use common::*;

/// The report, without what depends on the store's earlier contents.
fn json(out: &[u8]) -> serde_json::Value {
    let mut v: serde_json::Value =
        serde_json::from_slice(out).expect("encode --json prints one JSON object");
    if let Some(o) = v.as_object_mut() {
        o.retain(|k, _| !k.starts_with("new_"));
    }
    v
}

#[test]
fn directory_stdin_and_file_inputs_agree_and_nar_hash_is_nixs() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let nar = tmp.path().join("t.nar");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
    let from_dir = json(&run(narfs().args(["encode", "--json"]).arg(&tree)).stdout);
    let from_file = json(&run(narfs().args(["encode", "--json"]).arg(&nar)).stdout);
    let mut child = narfs()
        .args(["encode", "--json", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&std::fs::read(&nar).unwrap())
        .unwrap();
    let from_stdin = json(&child.wait_with_output().unwrap().stdout);
    assert_eq!(from_dir, from_file);
    assert_eq!(from_file, from_stdin);
    assert_eq!(
        from_file["nar_size"],
        std::fs::metadata(&nar).unwrap().len()
    );
    assert_eq!(from_file["compression"], "none");
    if have("nix-hash") {
        let nix = run(Command::new("nix-hash")
            .args(["--type", "sha256", "--base32"])
            .arg(&tree))
        .stdout;
        let nix = String::from_utf8(nix).unwrap();
        assert_eq!(from_file["nar_hash"], format!("sha256:{}", nix.trim()));
    }
}

#[test]
fn non_utf8_names_take_the_fallback_and_decode_back() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), true);
    let nar = tmp.path().join("t.nar");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
    let car = tmp.path().join("t.car");
    let out = run(narfs()
        .args(["encode", "--json", "--car"])
        .arg(&car)
        .arg(&nar));
    let v = json(&out.stdout);
    assert_eq!(v["compression"], "zstd");
    let why = String::from_utf8_lossy(&out.stderr);
    assert!(
        why.contains("not valid UTF-8") && why.contains("latin1-"),
        "the reason is not given: {why}"
    );
    assert!(v["fallback_reason"].as_str().unwrap().contains("UTF-8"));
    let cid = v["root"].as_str().unwrap();
    let decoded = run(narfs()
        .args(["decode", "--fallback", "--car"])
        .arg(&car)
        .arg(cid))
    .stdout;
    assert!(
        decoded == std::fs::read(&nar).unwrap(),
        "fallback roundtrip differs"
    );
    // Asked for explicitly, on a NAR that would fit a tree.
    std::fs::remove_file(&car).unwrap();
    let utf8 = tmp.path().join("u.nar");
    std::fs::write(
        &utf8,
        run(narfs().args(["nar", "dump"]).arg(tree.join("sub"))).stdout,
    )
    .unwrap();
    let v = json(
        &run(narfs()
            .args(["encode", "--json", "--fallback", "--car"])
            .arg(&car)
            .arg(&utf8))
        .stdout,
    );
    assert_eq!(v["compression"], "zstd");
    let decoded = run(narfs()
        .args(["decode", "--fallback", "--car"])
        .arg(&car)
        .arg(v["root"].as_str().unwrap()))
    .stdout;
    assert!(decoded == std::fs::read(&utf8).unwrap());
}

#[test]
fn bad_input_fails_cleanly_and_leaves_no_car() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let nar = run(narfs().args(["nar", "dump"]).arg(&tree)).stdout;
    let cut = tmp.path().join("cut.nar");
    std::fs::write(&cut, &nar[..nar.len() / 2]).unwrap();
    let car = tmp.path().join("out.car");
    let out = narfs()
        .args(["encode", "--car"])
        .arg(&car)
        .arg(&cut)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("truncated") && err.contains("byte"), "{err}");
    assert!(!car.exists(), "a half-written CAR was left behind");
    let leftovers: Vec<_> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "temporary files left behind: {leftovers:?}"
    );

    // A directory input with a FIFO in it: the dump error is the one reported.
    assert!(Command::new("mkfifo")
        .arg(tree.join("pipe"))
        .status()
        .unwrap()
        .success());
    let out = narfs().args(["encode"]).arg(&tree).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FIFO"), "{err}");

    // Decoding an unknown CID from a CAR names it.
    let good = tmp.path().join("good.car");
    let nar_file = tmp.path().join("t.nar");
    std::fs::write(&nar_file, &nar).unwrap();
    run(narfs().args(["encode", "--car"]).arg(&good).arg(&nar_file));
    // The CID of a file that is not in the CAR.
    let other = tmp.path().join("other");
    std::fs::create_dir(&other).unwrap();
    write(&other.join("f"), b"not in the CAR", false);
    let missing = String::from_utf8(run(narfs().arg("encode").arg(&other)).stdout).unwrap();
    let missing = missing.trim();
    let out = narfs()
        .args(["decode", "--car"])
        .arg(&good)
        .arg(missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(missing) && err.contains("not found"), "{err}");
}

/// Outputs that are FIFOs or devices (`--car /dev/stdout`, `-o /dev/null`) are written
/// through, never replaced by a renamed temporary file.
#[test]
fn fifo_outputs_are_written_through_not_replaced() {
    use std::os::unix::fs::FileTypeExt;
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let nar = tmp.path().join("t.nar");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
    // encode --car FIFO
    let car_fifo = tmp.path().join("car.fifo");
    let reader = read_fifo(&car_fifo);
    let cid = run(narfs().args(["encode", "--car"]).arg(&car_fifo).arg(&nar)).stdout;
    let car_bytes = reader.join().unwrap();
    assert!(std::fs::metadata(&car_fifo).unwrap().file_type().is_fifo());
    let car = tmp.path().join("t.car");
    std::fs::write(&car, &car_bytes).unwrap();
    let cid = String::from_utf8(cid).unwrap();
    // decode -o FIFO
    let nar_fifo = tmp.path().join("nar.fifo");
    let reader = read_fifo(&nar_fifo);
    run(narfs()
        .args(["decode", "--car"])
        .arg(&car)
        .arg("-o")
        .arg(&nar_fifo)
        .arg(cid.trim()));
    assert!(reader.join().unwrap() == std::fs::read(&nar).unwrap());
    assert!(std::fs::metadata(&nar_fifo).unwrap().file_type().is_fifo());
}

/// Inputs that cannot seek (a named pipe, `/dev/stdin` on a pipe) encode to the same
/// root as the file, the fallback included (which reads the input a second time);
/// `nar dump -o FIFO` and `decode -o /dev/stdout` write through.
#[test]
fn fifo_inputs_encode_like_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let write_fifo = |fifo: &std::path::Path, data: Vec<u8>| {
        assert!(Command::new("mkfifo").arg(fifo).status().unwrap().success());
        let fifo = fifo.to_path_buf();
        std::thread::spawn(move || std::fs::write(fifo, data).unwrap())
    };
    for (i, non_utf8) in [false, true].into_iter().enumerate() {
        let dir = tmp.path().join(format!("t{i}"));
        std::fs::create_dir(&dir).unwrap();
        let tree = awkward_tree(&dir, non_utf8);
        // nar dump -o FIFO
        let dump_fifo = dir.join("dump.fifo");
        let reader = read_fifo(&dump_fifo);
        run(narfs()
            .args(["nar", "dump", "-o"])
            .arg(&dump_fifo)
            .arg(&tree));
        let nar = reader.join().unwrap();
        let file = dir.join("t.nar");
        std::fs::write(&file, &nar).unwrap();
        let from_file = json(&run(narfs().args(["encode", "--json"]).arg(&file)).stdout);
        assert_eq!(
            from_file["compression"],
            if non_utf8 { "zstd" } else { "none" },
            "{from_file}"
        );

        let fifo = dir.join("in.fifo");
        let writer = write_fifo(&fifo, nar.clone());
        let out = narfs()
            .args(["encode", "--json"])
            .arg(&fifo)
            .output()
            .unwrap();
        writer.join().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(json(&out.stdout), from_file, "mkfifo, non_utf8 {non_utf8}");

        let mut child = narfs()
            .args(["encode", "--json", "/dev/stdin"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&nar).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(
            json(&out.stdout),
            from_file,
            "/dev/stdin, non_utf8 {non_utf8}"
        );

        // decode -o /dev/stdout gives the NAR back.
        let root = from_file["root"].as_str().unwrap();
        let out = run(narfs().args(["decode", "-o", "/dev/stdout", root])).stdout;
        assert!(out == nar, "decode -o /dev/stdout, non_utf8 {non_utf8}");
    }
}

/// `--car` into a pipe from a NAR file or stdin is written in a second pass, as the
/// blocks come (nothing spooled: it works with no usable $TMPDIR), and is byte for
/// byte the CAR a regular file gets and the one spooled from a directory, tree and
/// fallback alike.
#[test]
fn a_car_into_a_pipe_streams_in_two_passes_and_equals_the_spooled_one() {
    let tmp = tempfile::tempdir().unwrap();
    let no_tmp = tmp.path().join("no-such-dir");
    // The CAR `encode --car FIFO input` writes, and its stdout.
    let fifo_car = |name: &str, input: &std::path::Path, tmpdir: bool, stdin: Option<Vec<u8>>| {
        let fifo = tmp.path().join(name);
        let reader = read_fifo(&fifo);
        let mut cmd = narfs();
        if !tmpdir {
            cmd.env("TMPDIR", &no_tmp);
        }
        let mut child = cmd
            .args(["encode", "--car"])
            .arg(&fifo)
            .arg(input)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        if let Some(nar) = stdin {
            input.write_all(&nar).unwrap();
        }
        drop(input);
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{name}: {out:?}");
        (
            reader.join().unwrap(),
            String::from_utf8(out.stdout).unwrap(),
        )
    };
    for (i, non_utf8) in [false, true].into_iter().enumerate() {
        let dir = tmp.path().join(format!("t{i}"));
        std::fs::create_dir(&dir).unwrap();
        let tree = awkward_tree(&dir, non_utf8);
        let nar = dir.join("t.nar");
        run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
        let file = dir.join("t.car");
        let root = run(narfs().args(["encode", "--car"]).arg(&file).arg(&nar)).stdout;
        let want = std::fs::read(&file).unwrap();

        let (two_pass, r) = fifo_car(&format!("file{i}.fifo"), &nar, false, None);
        assert!(two_pass == want, "from the file, non_utf8 {non_utf8}");
        assert_eq!(r.as_bytes(), root);
        let nar_bytes = std::fs::read(&nar).unwrap();
        let stdin = std::path::Path::new("-");
        let (from_stdin, r) = fifo_car(&format!("stdin{i}.fifo"), stdin, true, Some(nar_bytes));
        assert!(from_stdin == want, "from stdin, non_utf8 {non_utf8}");
        assert_eq!(r.as_bytes(), root);
        if !non_utf8 {
            // A directory is spooled: the same bytes, and it needs $TMPDIR.
            let (spooled, _) = fifo_car(&format!("dir{i}.fifo"), &tree, true, None);
            assert!(spooled == want, "spooled from the directory");
            let out = narfs()
                .env("TMPDIR", &no_tmp)
                .args(["encode", "--car", "/dev/stdout"])
                .arg(&tree)
                .output()
                .unwrap();
            assert!(!out.status.success(), "the spool needs $TMPDIR");
        }
    }
}

/// The report of a CAR into a pipe, whose first pass skips the NarHash, is the report
/// of a CAR file, NarHash included (the second pass computes it).
#[test]
fn a_car_into_a_pipe_reports_what_a_car_file_does() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = awkward_tree(tmp.path(), false);
    let nar = tmp.path().join("t.nar");
    run(narfs().args(["nar", "dump", "-o"]).arg(&nar).arg(&tree));
    let file = tmp.path().join("t.car");
    let want = json(
        &run(narfs()
            .args(["encode", "--json", "--car"])
            .arg(&file)
            .arg(&nar))
        .stdout,
    );
    assert_eq!(
        want["nar_hash"].as_str().map(|h| h.starts_with("sha256:")),
        Some(true),
        "{want}"
    );
    let fifo = tmp.path().join("car.fifo");
    let reader = read_fifo(&fifo);
    let got = json(
        &run(narfs()
            .args(["encode", "--json", "--car"])
            .arg(&fifo)
            .arg(&nar))
        .stdout,
    );
    let car = reader.join().unwrap();
    assert_eq!(got, want);
    assert!(
        car == std::fs::read(&file).unwrap(),
        "the streamed CAR differs"
    );
}

/// A NAR file truncated by another process while narfs encodes it from its mapping:
/// a clear one-line error and status 1 (or, if the cut came before the mapping, the
/// truncated-NAR error), never death by SIGBUS, and no CAR left under its name.
#[test]
fn a_nar_file_cut_while_encoded_fails_cleanly() {
    let tmp = tempfile::tempdir().unwrap();
    let nar = tmp.path().join("big.nar");
    // One regular file of 4 GiB of zeros, sparse: encoding it takes seconds, the
    // file takes no disk.
    let len: u64 = 4 << 30;
    let mut head = Vec::new();
    for token in [
        &b"nix-archive-1"[..],
        b"(",
        b"type",
        b"regular",
        b"contents",
    ] {
        head.extend_from_slice(&(token.len() as u64).to_le_bytes());
        head.extend_from_slice(token);
        head.resize(head.len().next_multiple_of(8), 0);
    }
    head.extend_from_slice(&len.to_le_bytes());
    let mut tail = Vec::new();
    tail.extend_from_slice(&1u64.to_le_bytes());
    tail.extend_from_slice(b")\0\0\0\0\0\0\0");
    let mut f = std::fs::File::create(&nar).unwrap();
    f.write_all(&head).unwrap();
    f.set_len(head.len() as u64 + len).unwrap();
    use std::io::{Seek, SeekFrom};
    f.seek(SeekFrom::End(0)).unwrap();
    f.write_all(&tail).unwrap();
    drop(f);

    let car = tmp.path().join("out.car");
    let child = narfs()
        .args(["encode", "--car"])
        .arg(&car)
        .arg(&nar)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(&nar)
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.code().is_some(), "killed by a signal: {out:?}");
    let err = failure(&out);
    assert!(
        err.contains("shrank") || err.contains("trunc") || err.contains("end"),
        "{err}"
    );
    assert!(!car.exists(), "a CAR left under its name");
}
