//! Peak memory while streaming: a NAR holding one 4 GiB file parses, and one holding
//! a 1 GiB file encodes, in under 64 MiB. Alone in their test binary, so that the
//! children's peak RSS (the largest of any child) is theirs.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::narfs;

fn put(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len().next_multiple_of(8), 0);
}

/// A NAR of one file of `size` bytes: its head (up to the contents) and tail.
fn one_file_nar(size: u64) -> (Vec<u8>, Vec<u8>) {
    let mut head = Vec::new();
    for t in [
        &b"nix-archive-1"[..],
        b"(",
        b"type",
        b"regular",
        b"contents",
    ] {
        put(&mut head, t);
    }
    head.extend_from_slice(&size.to_le_bytes());
    let mut tail = Vec::new();
    put(&mut tail, b")");
    (head, tail)
}

/// Runs narfs with `args`, feeding it the NAR of one `size`-byte file on stdin, and
/// returns its stdout; the child's peak RSS is then among the children's.
fn feed(args: &[&str], size: u64) -> String {
    let (head, tail) = one_file_nar(size);
    let mut child = narfs()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&head).unwrap();
        // Not all alike, so that a block store could not dedup them away.
        let mut block = vec![0xA5u8; 1 << 20];
        for i in 0..(size >> 20) {
            block[..8].copy_from_slice(&i.to_le_bytes());
            stdin.write_all(&block).unwrap();
        }
        stdin.write_all(&tail).unwrap();
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn children_peak_kib() -> i64 {
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    usage.ru_maxrss
}

#[test]
fn a_1gib_file_encodes_in_bounded_memory() {
    // --car /dev/null: every block built and counted, none kept.
    const SIZE: u64 = 1 << 30;
    let out = feed(&["encode", "--json", "--car", "/dev/null", "-"], SIZE);
    let (head, tail) = one_file_nar(SIZE);
    let nar_size = head.len() as u64 + SIZE + tail.len() as u64;
    assert!(out.contains(&format!("\"nar_size\":{nar_size}")), "{out}");
    let peak_kib = children_peak_kib();
    eprintln!("peak RSS of children after `narfs encode` of a 1 GiB file: {peak_kib} KiB");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
}

#[test]
fn a_4gib_file_parses_in_bounded_memory() {
    const SIZE: u64 = 4 << 30;
    let out = feed(&["nar", "ls", "-"], SIZE);
    assert!(out.contains(&SIZE.to_string()), "{out}");
    let peak_kib = children_peak_kib();
    eprintln!("peak RSS of children after `narfs nar ls` over a 4 GiB file: {peak_kib} KiB");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
}
