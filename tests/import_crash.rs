//! `kill -9` of a batched `narfs import` at random moments: every root the store holds
//! afterwards has its whole DAG and the NAR its record names (`narfs verify` checks the
//! DAGs and decodes each NAR against its NarHash), and every store path the import
//! reported imported (`--each`, printed once its record is durable) is recorded. A
//! resumed import then completes the cache.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use narfs_core::nar::NarWriter;
use narfs_nix::narinfo::nar_hash_string;
use sha2::{Digest, Sha256};

mod common;

use common::{narfs_in, ok, Rng};

/// A Nix file cache of `n` small uncompressed items (one to three files of up to
/// 48 KiB of fresh bytes each, so every item brings new blocks); their store paths.
fn cache(dir: &Path, n: usize, rng: &mut Rng) -> Vec<String> {
    std::fs::create_dir_all(dir.join("nar")).unwrap();
    std::fs::write(dir.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let alphabet = b"0123456789abcdfghijklmnpqrsvwxyz";
    let mut paths = Vec::new();
    for i in 0..n {
        let mut nar = Vec::new();
        let mut w = NarWriter::new(&mut nar);
        w.directory(b"").unwrap();
        for f in 0..1 + rng.next() % 3 {
            let len = (rng.next() % (48 << 10)) as usize;
            let data: Vec<u8> = (0..len / 8 + 1)
                .flat_map(|_| rng.next().to_le_bytes())
                .take(len)
                .collect();
            w.file(
                format!("f{f}").as_bytes(),
                false,
                len as u64,
                &mut &data[..],
            )
            .unwrap();
        }
        w.end_directory().unwrap();
        w.finish().unwrap();
        let hash: String = (0..32)
            .map(|_| alphabet[(rng.next() % 32) as usize] as char)
            .collect();
        let path = format!("/nix/store/{hash}-item{i}");
        std::fs::write(dir.join(format!("nar/{i}.nar")), &nar).unwrap();
        let info = format!(
            "StorePath: {path}\nURL: nar/{i}.nar\nCompression: none\nNarHash: {}\nNarSize: {}\nReferences: \n",
            nar_hash_string(&Sha256::digest(&nar).into()),
            nar.len()
        );
        std::fs::write(dir.join(format!("{hash}.narinfo")), info).unwrap();
        paths.push(path);
    }
    paths
}

/// The narinfo files `--each` reported imported in `stderr` (complete lines only: a
/// kill may cut the last one).
fn reported(stderr: &str) -> BTreeSet<String> {
    let complete = stderr.rsplit_once('\n').map_or("", |(lines, _)| lines);
    complete
        .lines()
        .filter_map(|l| l.strip_prefix("imported "))
        .map(|l| l.split_once(' ').expect("ROOT NARINFO").1.to_string())
        .collect()
}

/// The store paths recorded in `store`.
fn recorded(store: &Path) -> BTreeSet<String> {
    let ls = String::from_utf8(ok(narfs_in(store).args(["store", "ls"]))).unwrap();
    ls.lines()
        .map(|l| l.split('\t').nth(1).unwrap().to_string())
        .collect()
}

/// The store path a narinfo file of `cache` names.
fn store_path_of(narinfo: &str) -> String {
    let text = std::fs::read_to_string(narinfo).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("StorePath: "))
        .unwrap()
        .to_string()
}

#[test]
fn kill_9_during_a_batched_import_loses_no_reported_root_and_leaves_no_partial_one() {
    let dir = tempfile::tempdir().unwrap();
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    let cache_dir = dir.path().join("cache");
    let all: BTreeSet<String> = cache(&cache_dir, 150, &mut rng).into_iter().collect();
    // Commits of 64 KiB: kills land before, during and between many commits.
    let import = |store: &Path| {
        let mut c = narfs_in(store);
        c.env("NARFS_STORE_BATCH_BYTES", "65536")
            .args(["import", "--each", "--jobs", "2"])
            .arg(&cache_dir);
        c
    };
    let t = Instant::now();
    let calibration = dir.path().join("calibration");
    ok(&mut import(&calibration));
    assert_eq!(recorded(&calibration), all);
    let mut span = t.elapsed().as_millis() as u64 + 1;
    eprintln!("an unkilled import of {} items takes {span} ms", all.len());

    let mut killed_while_running = 0;
    let mut round = 0;
    let mut last = None;
    while killed_while_running < 20 && round < 100 {
        round += 1;
        // Every other round into a fresh store, else on into the last (resuming).
        let store = match (&last, round % 2) {
            (Some(s), 0) => std::path::PathBuf::from(s),
            _ => dir.path().join(format!("store{round}")),
        };
        let mut child = import(&store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stderr_pipe = child.stderr.take().unwrap();
        let reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stderr_pipe.read_to_string(&mut s);
            s
        });
        std::thread::sleep(Duration::from_millis(rng.next() % span));
        // SIGKILL: no destructor, no cleanup.
        let _ = child.kill();
        let status = child.wait().unwrap();
        let stderr = reader.join().unwrap();
        if status.success() {
            span = (span * 9 / 10).max(2);
        } else {
            killed_while_running += 1;
        }
        // Every recorded root is complete and decodes to its NarHash.
        ok(narfs_in(&store).args(["store", "verify"]));
        let have = recorded(&store);
        let said = reported(&stderr);
        for narinfo in &said {
            let path = store_path_of(narinfo);
            assert!(
                have.contains(&path),
                "round {round}: {path} was reported imported, then lost"
            );
        }
        assert!(have.is_subset(&all));
        eprintln!(
            "round {round}: exit {status}, {} reported, {} recorded",
            said.len(),
            have.len()
        );
        last = Some(store.display().to_string());
    }
    assert!(
        killed_while_running >= 20,
        "only {killed_while_running} kills in {round} rounds hit a running import"
    );
    // Resuming completes the cache; what was killed is garbage gc takes, and the store
    // verifies after it.
    let store = std::path::PathBuf::from(last.unwrap());
    ok(&mut import(&store));
    assert_eq!(recorded(&store), all);
    ok(narfs_in(&store).args(["store", "gc"]));
    ok(narfs_in(&store).args(["store", "verify"]));
}
