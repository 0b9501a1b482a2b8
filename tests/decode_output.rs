//! `narfs decode` to a named file (written directly, in aligned pieces, under a
//! temporary name) and to a pipe: byte-exact across several pieces and an unaligned
//! tail, and a block found bad after pieces were already written leaves no file.

mod common;

use common::*;

/// Bytes per output piece of a decode to a file (`narfs_core::direct::PIECE`).
const PIECE: usize = 4 << 20;

#[test]
fn a_file_of_several_pieces_is_exact_and_a_bad_block_late_leaves_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    // Two whole pieces and more, then an unaligned tail; small files around it.
    let big = bytes(7, 2 * PIECE + 300_000 + 12_345);
    write(&tree.join("big"), &big, false);
    write(&tree.join("a"), b"small", false);
    write(&tree.join("z"), &bytes(8, 5000), true);
    let car = tmp.path().join("t.car");
    let root =
        String::from_utf8(run(narfs().args(["encode", "--car"]).arg(&car).arg(&tree)).stdout)
            .unwrap()
            .trim()
            .to_string();
    let nar = run(narfs().args(["nar", "dump"]).arg(&tree)).stdout;
    let out = tmp.path().join("out").join("t.nar");
    std::fs::create_dir(out.parent().unwrap()).unwrap();
    run(narfs()
        .args(["decode", "--car"])
        .arg(&car)
        .arg(&root)
        .arg("-o")
        .arg(&out));
    assert!(
        std::fs::read(&out).unwrap() == nar,
        "decode -o FILE differs"
    );
    let piped = run(narfs().args(["decode", "--car"]).arg(&car).arg(&root)).stdout;
    assert!(piped == nar, "decode to a pipe differs");

    // A byte of "big" past the second piece, flipped in the CAR: two pieces have gone
    // to the temporary file when its leaf fails verification.
    let needle = &big[2 * PIECE + 200_000..2 * PIECE + 200_064];
    let mut car_bytes = std::fs::read(&car).unwrap();
    let at = car_bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("the leaf's bytes are in the CAR");
    car_bytes[at] ^= 1;
    let bad = tmp.path().join("bad.car");
    std::fs::write(&bad, &car_bytes).unwrap();
    let failed = tmp.path().join("out").join("bad.nar");
    let res = narfs()
        .args(["decode", "--car"])
        .arg(&bad)
        .arg(&root)
        .arg("-o")
        .arg(&failed)
        .output()
        .unwrap();
    assert!(!res.status.success(), "a tampered leaf decoded");
    let err = String::from_utf8_lossy(&res.stderr);
    assert!(
        err.contains("big"),
        "the error does not name the file: {err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "not one line: {err}");
    // Neither the output nor its temporary file is left.
    let left: Vec<_> = std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        left,
        vec![std::ffi::OsString::from("t.nar")],
        "left behind: {left:?}"
    );
}

/// Into a pipe, leaves are gathered whole into `writev`s between the copied headers:
/// the bytes are exact for a slow reader taking a little at a time, from a CAR and
/// from the store with the NarHash stream (hashed on the writer's thread), also into a
/// FIFO named with `-o`; a reader that goes away ends the decode promptly, with no
/// message (a closed stdout, as for `nar dump | head`).
#[test]
fn a_pipe_gets_gathered_leaves_exactly_and_a_gone_reader_ends_the_decode() {
    use std::io::Read;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let tree = tmp.path().join("t");
    std::fs::create_dir(&tree).unwrap();
    // Leaves of 256 KiB (taken whole), a tail leaf, and files under 16 KiB (copied).
    write(&tree.join("big"), &bytes(3, 5 * 262_144 + 9_999), false);
    for i in 0..40 {
        write(
            &tree.join(format!("s{i:02}")),
            &bytes(i, 100 * i as usize),
            i % 3 == 0,
        );
    }
    write(&tree.join("mid"), &bytes(99, 40_000), true);
    let nar = run(narfs().args(["nar", "dump"]).arg(&tree)).stdout;
    let car = tmp.path().join("t.car");
    let store = tmp.path().join("store");
    let root = String::from_utf8(
        run(narfs_in(&store)
            .args(["encode", "--name", "t", "--store"])
            .arg(&store)
            .arg("--car")
            .arg(&car)
            .arg(&tree))
        .stdout,
    )
    .unwrap()
    .trim()
    .to_string();

    let slow_read = |cmd: &mut std::process::Command| -> Vec<u8> {
        let mut child = cmd.stdout(Stdio::piped()).spawn().unwrap();
        let mut out = child.stdout.take().unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4000];
        loop {
            let n = out.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
            if got.len() < 300_000 {
                std::thread::sleep(std::time::Duration::from_micros(200));
            }
        }
        assert!(child.wait().unwrap().success());
        got
    };
    let from_car = slow_read(narfs().args(["decode", "--car"]).arg(&car).arg(&root));
    assert!(from_car == nar, "decode --car to a pipe differs");
    let from_store = slow_read(
        narfs_in(&store)
            .args(["decode", "--check-nar-hash", "--store"])
            .arg(&store)
            .arg("t"),
    );
    assert!(
        from_store == nar,
        "decode --store --check-nar-hash to a pipe differs"
    );
    let fifo = tmp.path().join("fifo");
    let reader = read_fifo(&fifo);
    run(narfs()
        .args(["decode", "--car"])
        .arg(&car)
        .arg(&root)
        .arg("-o")
        .arg(&fifo));
    assert!(reader.join().unwrap() == nar, "decode -o FIFO differs");

    let mut child = narfs()
        .args(["decode", "--car"])
        .arg(&car)
        .arg(&root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut head = [0u8; 1000];
    child.stdout.take().unwrap().read_exact(&mut head).unwrap();
    assert_eq!(head[..], nar[..1000]);
    // The reader is gone (its end dropped above): the next write fails.
    let done = child.wait_with_output().unwrap();
    assert!(done.status.success(), "{:?}", done.status);
    assert!(
        done.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
}
