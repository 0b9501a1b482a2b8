//! A damaged block table (`blocks/data.mdb`): bytes flipped at many offsets (every
//! 4093rd byte, and the page number, type and bounds fields of every page header) and
//! the file cut at many lengths. `store verify`, `store stats` and `decode` must then
//! never die by a signal: they exit 0 with the right bytes, or non-zero with one line
//! of error. And a running `narfs serve` whose file is damaged under it fails the
//! requests that need the damage, stays up, and keeps serving what is intact.

mod common;

use common::corpus;
mod serve_support;

use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

const PAGE: u64 = 4096;
/// Two corpus NARs that share no file: a page of one is no page of the other.
const NARS: [(&str, &str); 2] = [("a", "attrs-24.3.0.nar"), ("t", "tzdata-2024.2.nar")];

fn narfs(store: &Path) -> Command {
    let mut c = common::narfs();
    c.env("NARFS_STORE", store);
    c
}

/// A store holding both NARs; returns the data file's length.
fn build(store: &Path) -> u64 {
    for (name, nar) in NARS {
        common::run(
            narfs(store)
                .args(["encode", "--name", name])
                .arg(corpus(nar)),
        );
    }
    std::fs::metadata(store.join("blocks/data.mdb"))
        .unwrap()
        .len()
}

fn copy_store(from: &Path, to: &Path) {
    for sub in ["", "blocks"] {
        std::fs::create_dir_all(to.join(sub)).unwrap();
        for e in std::fs::read_dir(from.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.file_type().unwrap().is_file() {
                std::fs::copy(e.path(), to.join(sub).join(e.file_name())).unwrap();
            }
        }
    }
}

fn flip(file: &Path, at: u64) {
    let mut bytes = std::fs::read(file).unwrap();
    bytes[at as usize] ^= 0xff;
    std::fs::write(file, bytes).unwrap();
}

/// Runs the read commands on a damaged store; `case` says what damage, for messages.
/// Returns how many runs exited 0.
fn check(store: &Path, case: &str, decode: (&str, &[u8])) -> usize {
    let mut ok = 0;
    let runs: [&[&str]; 3] = [
        &["store", "verify"],
        &["store", "stats"],
        &["decode", decode.0],
    ];
    for args in runs {
        let out = narfs(store).args(args).output().unwrap();
        let what = format!("{case}: narfs {}", args.join(" "));
        assert_eq!(
            out.status.signal(),
            None,
            "{what} died by a signal; stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.success() {
            ok += 1;
            if args[0] == "decode" {
                assert!(out.stdout == decode.1, "{what}: exit 0 with wrong bytes");
            }
        } else {
            assert_eq!(
                stderr.trim_end().lines().count(),
                1,
                "{what}: not one line of error: {stderr}"
            );
            assert!(stderr.starts_with("narfs: "), "{what}: {stderr}");
        }
    }
    ok
}

#[test]
fn flipped_bytes_and_truncations_never_kill_a_command() {
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let len = build(&base);
    let nars: Vec<Vec<u8>> = NARS
        .iter()
        .map(|(_, n)| std::fs::read(corpus(n)).unwrap())
        .collect();
    // Before any damage: all three commands succeed.
    assert_eq!(check(&base, "undamaged", (NARS[0].0, &nars[0])), 3);

    enum Damage {
        Flip(u64),
        Cut(u64),
    }
    let mut cases: Vec<Damage> = (0..len).step_by(4093).map(Damage::Flip).collect();
    for page in 0..len / PAGE {
        // Page number, type (flags), free-space bounds lower and upper.
        for field in [0, 10, 12, 14] {
            cases.push(Damage::Flip(page * PAGE + field));
        }
    }
    let cuts = [0, 100, PAGE, 2 * PAGE - 1, 2 * PAGE, 3 * PAGE];
    cases.extend(cuts.into_iter().map(Damage::Cut));
    cases.extend((1..16).map(|k| Damage::Cut(len * k / 16)));
    cases.extend([len - PAGE, len - 1].map(Damage::Cut));

    let next = AtomicUsize::new(0);
    let exit0 = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(damage) = cases.get(i) else { break };
                let store = dir.path().join(format!("case{i}"));
                copy_store(&base, &store);
                let data = store.join("blocks/data.mdb");
                let case = match *damage {
                    Damage::Flip(at) => {
                        flip(&data, at);
                        format!("byte {at} flipped")
                    }
                    Damage::Cut(at) => {
                        let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
                        f.set_len(at).unwrap();
                        format!("cut to {at} bytes")
                    }
                };
                let k = i % NARS.len();
                let n = check(&store, &case, (NARS[k].0, &nars[k]));
                exit0.fetch_add(n, Ordering::Relaxed);
                std::fs::remove_dir_all(&store).unwrap();
            });
        }
    });
    let runs = cases.len() * 3;
    let exit0 = exit0.into_inner();
    eprintln!(
        "{} damaged stores, {runs} runs: {exit0} exit 0 (right bytes), the rest one error line",
        cases.len()
    );
    // Both outcomes occur: damage the commands never read, and damage they report.
    assert!(exit0 > 0 && exit0 < runs, "{exit0} of {runs} runs exited 0");
}

/// The first page of every value stored on overflow pages, found by its header
/// (page number = its own, type = overflow).
fn overflow_pages(data: &[u8]) -> Vec<u64> {
    (2..data.len() as u64 / PAGE)
        .filter(|&p| {
            let h = &data[(p * PAGE) as usize..];
            u64::from_le_bytes(h[..8].try_into().unwrap()) == p
                && u16::from_le_bytes([h[10], h[11]]) == 0x04
        })
        .collect()
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|rest| !rest.trim_start().starts_with('Z'))
    })
}

#[test]
fn serve_survives_a_block_table_damaged_under_it() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path();
    let data = store.join("blocks/data.mdb");
    let encode = |i: usize| {
        let (name, nar) = NARS[i];
        // Each block on its own: packs a server has decompressed stay in its cache
        // (their blocks still verified), so damage under it would go unread.
        let out = common::run(
            narfs(store)
                .args(["encode", "--compression", "block", "--name", name])
                .arg(corpus(nar)),
        );
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let a = encode(0);
    let of_a = overflow_pages(&std::fs::read(&data).unwrap());
    assert!(
        !of_a.is_empty(),
        "the first NAR has blocks on overflow pages"
    );
    let t = encode(1);
    let nar = |i: usize| std::fs::read(corpus(NARS[i].1)).unwrap();
    let server = serve_support::Server::start(store);
    let addr = server.addr;
    let get = |cid: &str| serve_support::get(addr, &format!("/nar/{cid}.nar"), &[]);
    // A request the server fails: an error status, a cut body, or the connection
    // closed before any status line (the helper panics on that; caught here).
    let fails = |cid: &str| match std::panic::catch_unwind(|| get(cid)) {
        Ok(r) => r.status != 200 || !r.complete,
        Err(_) => true,
    };
    assert_eq!(get(&a).body, nar(0));
    assert_eq!(get(&t).body, nar(1));

    // Damage every overflow page header of the first NAR's blocks while it serves.
    for p in &of_a {
        flip(&data, p * PAGE);
    }
    assert!(fails(&a), "a damaged NAR was served as complete");
    assert!(alive(server.pid()), "narfs serve died on a damaged block");
    let r = get(&t);
    assert_eq!((r.status, r.complete), (200, true));
    assert!(r.body == nar(1), "the intact NAR changed");

    // Cut the file to its meta pages: nothing can be served, and nothing dies.
    let f = std::fs::OpenOptions::new().write(true).open(&data).unwrap();
    f.set_len(2 * PAGE).unwrap();
    let r = get(&t);
    assert!(
        r.status != 200 || !r.complete,
        "a NAR served from a truncated table"
    );
    assert!(
        alive(server.pid()),
        "narfs serve died on a truncated block table"
    );
    f.set_len(PAGE).unwrap();
    let r = get(&t);
    assert!(r.status != 200 || !r.complete);
    assert!(
        alive(server.pid()),
        "narfs serve died on a block table without meta pages"
    );
}
