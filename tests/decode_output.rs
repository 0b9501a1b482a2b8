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
