//! The store's safety promises through the CLI: `kill -9` of an encode at random
//! moments never leaves a bad block or an incomplete root (`narfs verify` passes after
//! every kill, and a re-encode completes), and concurrent encoders (and a `gc` among
//! them) leave a store that verifies clean and decodes byte-exact.

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

mod common;

use common::{narfs_in, ok, Rng};

/// A directory of a few files of fresh pseudo-random bytes (so every encode writes new
/// blocks), some repeated (so some blocks are shared).
fn fresh_tree(dir: &Path, rng: &mut Rng) {
    std::fs::create_dir_all(dir.join("sub")).unwrap();
    for i in 0..12 {
        let len = (rng.next() % (600 << 10)) as usize;
        let mut data = Vec::with_capacity(len);
        while data.len() < len {
            data.extend_from_slice(&rng.next().to_le_bytes());
        }
        data.truncate(len);
        let at = if i % 2 == 0 { "sub" } else { "" };
        std::fs::write(dir.join(at).join(format!("f{i}")), &data).unwrap();
    }
    std::fs::write(dir.join("common"), b"the same in every tree").unwrap();
}

#[test]
fn kill_9_at_random_points_leaves_a_store_that_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store");
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut rng = Rng::new(seed);
    // Commit every 256 KiB, so that kills land before, during and between commits.
    let encode = |name: &str| {
        let mut c = narfs_in(&store);
        c.env("NARFS_STORE_BATCH_BYTES", "262144")
            .args(["encode", "--name", name]);
        c
    };
    // How long an encode of such a tree takes here: kills are spread over that time.
    let calibration = dir.path().join("calibration");
    fresh_tree(&calibration, &mut rng);
    let t = std::time::Instant::now();
    ok(encode("calibration").arg(&calibration));
    let mut span = t.elapsed().as_millis() as u64 + 1;
    eprintln!("an unkilled encode takes {span} ms");
    // Until 20 kills have hit a running encode (each finished one shortens the span).
    let mut killed_while_running = 0;
    let mut round = 0;
    while killed_while_running < 20 && round < 100 {
        round += 1;
        let tree = dir.path().join(format!("tree{round}"));
        fresh_tree(&tree, &mut rng);
        let mut child = encode(&format!("t{round}"))
            .arg(&tree)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.next() % span));
        // SIGKILL: no destructor, no cleanup.
        let _ = child.kill();
        let status = child.wait().unwrap();
        if status.success() {
            span = (span * 9 / 10).max(2);
        } else {
            killed_while_running += 1;
        }
        ok(narfs_in(&store).arg("verify"));
        // A finished encode has its root (one killed after recording it may too: the
        // root is complete then, which `verify` above checked).
        let ls = String::from_utf8(ok(narfs_in(&store).arg("ls"))).unwrap();
        let recorded = ls.contains(&format!("\tt{round}\t"));
        assert!(recorded || !status.success(), "{ls}");
        eprintln!("round {round}: exit {status}, root recorded: {recorded}");
    }
    assert!(
        killed_while_running >= 20,
        "only {killed_while_running} kills in {round} rounds hit a running encode"
    );
    // Re-encoding completes, and what it recorded decodes.
    let tree = dir.path().join("tree1");
    let cid = String::from_utf8(ok(narfs_in(&store)
        .args(["encode", "--name", "again"])
        .arg(&tree)))
    .unwrap();
    let nar = ok(narfs_in(&store).args(["decode", "again"]));
    let dump = ok(narfs_in(&store).args(["nar", "dump"]).arg(&tree));
    assert!(nar == dump, "decode of {cid}");
    // gc reclaims what the killed encodes left behind, and the store still verifies.
    ok(narfs_in(&store).arg("gc"));
    ok(narfs_in(&store).arg("verify"));
    assert!(!store.join("tmp").exists() && !store.join("roots").exists());
    assert!(ok(narfs_in(&store).args(["decode", "again"])) == dump);
}

#[test]
fn concurrent_encoders_and_gc_then_verify_clean() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let nars = [
        "openssl-3.0.17-1~deb12u2.nar",
        "openssl-3.0.20-1~deb12u2.nar",
        "tzdata-2024.1.nar",
    ];
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let store = dir.path();
        // Something for gc to collect: a root that is removed.
        ok(narfs_in(store)
            .args(["encode", "--name", "old"])
            .arg(corpus.join("attrs-23.2.0.nar")));
        ok(narfs_in(store).args(["rm", "old"]));
        let mut children: Vec<_> = nars
            .iter()
            .chain(&nars[..1])
            .enumerate()
            .map(|(i, n)| {
                narfs_in(store)
                    .args(["encode", "--json", "--name", &format!("n{i}")])
                    .arg(corpus.join(n))
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        if round > 0 {
            children.push(
                narfs_in(store)
                    .arg("gc")
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap(),
            );
        }
        for c in children {
            let out = c.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        ok(narfs_in(store).arg("verify"));
        for (i, n) in nars.iter().chain(&nars[..1]).enumerate() {
            let nar = ok(narfs_in(store).args(["decode", &format!("n{i}")]));
            assert!(nar == std::fs::read(corpus.join(n)).unwrap(), "{n}");
        }
    }
}
