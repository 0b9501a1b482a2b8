//! Peak memory while streaming: a NAR holding one 4 GiB file parses in well under
//! 64 MiB. Alone in its test binary, so that the children's peak RSS is this one.

mod common;

use std::io::Write;
use std::process::Stdio;

use common::narfs;

fn put(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.resize(out.len().next_multiple_of(8), 0);
}

#[test]
fn a_4gib_file_parses_in_bounded_memory() {
    const SIZE: u64 = 4 << 30;
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
    head.extend_from_slice(&SIZE.to_le_bytes());
    let mut tail = Vec::new();
    put(&mut tail, b")");

    let mut child = narfs()
        .args(["nar", "ls", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        stdin.write_all(&head).unwrap();
        let block = vec![0xA5u8; 1 << 20];
        for _ in 0..(SIZE >> 20) {
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
    assert!(String::from_utf8_lossy(&out.stdout).contains(&SIZE.to_string()));

    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(
        unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) },
        0
    );
    let peak_kib = usage.ru_maxrss;
    eprintln!("peak RSS of `narfs nar ls` over a 4 GiB file: {peak_kib} KiB");
    assert!(
        peak_kib < 64 * 1024,
        "peak RSS {peak_kib} KiB is over 64 MiB"
    );
}
