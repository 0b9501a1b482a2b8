//! `narfs publish` (and `encode --ipfs-api`) into a real Kubo on loopback: the node
//! then holds and pins the DAG, gives back the tree `nix-store --restore` makes of
//! the NAR, and a second version of a package adds only the blocks that changed;
//! what is not a reachable Kubo, or a root that is not there, fails on one line
//! naming the root. `import --ipfs-api` publishes every root of a real `nix copy`
//! cache, and an unreachable node fails it after the import is recorded.

mod common;
mod kubo_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Output;

use common::*;
use kubo_support::*;
use narfs_core::car::CarReader;

/// `narfs encode --json --store STORE --name NAME NAR`: its report.
fn encode(store: &Path, name: &str) -> serde_json::Value {
    let out = run(narfs()
        .args(["encode", "--json", "--name", name, "--store"])
        .arg(store)
        .arg(corpus(&format!("{name}.nar"))));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn publish(store: &Path, api: &str, roots: &[&str]) -> Output {
    narfs()
        .args(["publish", "--ipfs-api", api, "--store"])
        .arg(store)
        .args(roots)
        .output()
        .unwrap()
}

/// Every block of the DAG under `root` in the store, with its size.
fn dag_blocks(store: &Path, root: &str, tmp: &Path) -> BTreeMap<String, u64> {
    let car = tmp.join(format!("{root}.car"));
    run(narfs()
        .args(["car", "export", "--store"])
        .arg(store)
        .arg(root)
        .arg("-o")
        .arg(&car));
    let mut reader = CarReader::new(BufReader::new(std::fs::File::open(&car).unwrap())).unwrap();
    let mut blocks = BTreeMap::new();
    while let Some((cid, data)) = reader.next_block().unwrap() {
        blocks.insert(cid.to_string(), data.len() as u64);
    }
    blocks
}

fn multihash(cid: &str) -> Vec<u8> {
    let cid: narfs_core::Cid = cid.parse().unwrap();
    cid.hash().to_bytes()
}

#[test]
fn a_published_nar_is_pinned_and_read_back_through_kubo() {
    if !have_ipfs() || !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let name = "attrs-24.1.0";
    let v = encode(&store, name);
    let root = v["root"].as_str().unwrap();
    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();

    let out = publish(&store, &api, &[name]);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert!(line.starts_with(&format!("{root} pinned: ")), "{line}");

    let pins = run(kubo.ipfs().args(["pin", "ls", "--type=recursive", root])).stdout;
    assert!(String::from_utf8_lossy(&pins).contains(&format!("{root} recursive")));
    let stat = run(kubo
        .ipfs()
        .args(["dag", "stat", "--progress=false", "--enc=json", root]));
    let stat: serde_json::Value = serde_json::from_slice(&stat.stdout).unwrap();
    // Kubo counts distinct blocks: those of narfs's own export of the root.
    let dag = dag_blocks(&store, root, tmp.path());
    assert_eq!(stat["DagStats"][0]["NumBlocks"], dag.len(), "{stat}");
    assert_eq!(
        stat["DagStats"][0]["Size"],
        dag.values().sum::<u64>(),
        "{stat}"
    );

    // The tree Kubo gives back is the one Nix restores from the NAR.
    let nar = std::fs::read(corpus(&format!("{name}.nar"))).unwrap();
    let nix = tmp.path().join("nix");
    nix_restore(&nar, &nix);
    let got = tmp.path().join("get");
    run(kubo.ipfs().args(["get", "-o"]).arg(&got).arg(root));
    assert!(
        listing(&got) == listing(&nix),
        "ipfs get differs from nix-store --restore"
    );
    let ls = run(kubo.ipfs().args(["ls", root])).stdout;
    let names: BTreeSet<String> = String::from_utf8(ls)
        .unwrap()
        .lines()
        .map(|l| {
            l.rsplit(' ')
                .next()
                .unwrap()
                .trim_end_matches('/')
                .to_string()
        })
        .collect();
    let top: BTreeSet<String> = std::fs::read_dir(&nix)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, top);
    let file = "attrs/__init__.py";
    let cat = run(kubo.ipfs().args(["cat", &format!("{root}/{file}")])).stdout;
    assert!(
        cat == std::fs::read(nix.join(file)).unwrap(),
        "ipfs cat {file}"
    );

    // What Kubo exports, narfs decodes to the NAR it started from.
    let car = tmp.path().join("kubo.car");
    let exported = run(kubo
        .ipfs()
        .args(["dag", "export", "--progress=false", root]))
    .stdout;
    std::fs::write(&car, exported).unwrap();
    let other = tmp.path().join("other-store");
    run(narfs()
        .args(["car", "import", "--store"])
        .arg(&other)
        .arg(&car));
    let decoded = run(narfs().args(["decode", "--store"]).arg(&other).arg(root)).stdout;
    assert!(
        decoded == nar,
        "decode of Kubo's export differs from the NAR"
    );

    // Published again: the node pins it already, so nothing is sent.
    let out = publish(&store, &api, &[root]);
    assert!(out.status.success(), "{out:?}");
    let line = String::from_utf8(out.stdout).unwrap();
    assert_eq!(
        line.trim_end(),
        format!("{root} already pinned by the node: nothing sent")
    );
}

/// attrs 24.1.0 then 24.2.0: the node gains exactly the blocks of 24.2.0's DAG it did
/// not hold, fewer bytes than that DAG (`ipfs repo stat` before and after; measured:
/// 8 of 39 blocks, 111,842 of 217,926 bytes).
#[test]
fn a_second_version_adds_only_the_changed_blocks() {
    if !have_ipfs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let (old, new) = ("attrs-24.1.0", "attrs-24.2.0");
    encode(&store, old);
    let v = encode(&store, new);
    let root = v["root"].as_str().unwrap();
    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();
    assert!(publish(&store, &api, &[old]).status.success());
    let (blocks_before, size_before) = (kubo.local_blocks(), kubo.repo_size());

    let out = publish(&store, &api, &[new]);
    assert!(out.status.success(), "{out:?}");
    let (blocks_after, size_after) = (kubo.local_blocks(), kubo.repo_size());

    // Kubo keys blocks by multihash (`refs local` prints them as raw CIDs).
    let dag: BTreeMap<Vec<u8>, u64> = dag_blocks(&store, root, tmp.path())
        .into_iter()
        .map(|(c, n)| (multihash(&c), n))
        .collect();
    let before: BTreeSet<Vec<u8>> = blocks_before.iter().map(|c| multihash(c)).collect();
    let after: BTreeSet<Vec<u8>> = blocks_after.iter().map(|c| multihash(c)).collect();
    let added: BTreeSet<&Vec<u8>> = after.difference(&before).collect();
    let expected: BTreeSet<&Vec<u8>> = dag.keys().filter(|m| !before.contains(*m)).collect();
    assert_eq!(
        added, expected,
        "the node gained other blocks than the missing ones"
    );
    let added_bytes: u64 = added.iter().map(|m| dag[*m]).sum();
    let dag_bytes: u64 = dag.values().sum();
    eprintln!(
        "{new} after {old}: {} of {} blocks new, {added_bytes} of {dag_bytes} bytes; \
         RepoSize {size_before} -> {size_after} (+{})",
        added.len(),
        dag.len(),
        size_after - size_before
    );
    // attrs 24.2.0 rewrote its largest modules: about half its bytes are new.
    assert!(
        added_bytes < dag_bytes,
        "{added_bytes} of {dag_bytes} bytes added"
    );
    assert!(added.len() < dag.len());
    // The repo holds the new blocks at least (plus the pin's own records).
    assert!(size_after - size_before >= added_bytes);
}

/// `encode --ipfs-api` publishes the root it made, from the store or from the CAR.
#[test]
fn encode_publishes_what_it_encoded() {
    if !have_ipfs() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();
    let nar = corpus("tzdata-2024.1.nar");
    for sink in [&["--store", "s"][..], &["--car", "t.car"][..]] {
        let out = run(narfs()
            .current_dir(tmp.path())
            .args(["encode", "--ipfs-api", &api])
            .args(sink)
            .arg(&nar));
        let root = String::from_utf8(out.stdout).unwrap().trim().to_string();
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains(&format!("published {root} to {api}")),
            "{sink:?}: {err}"
        );
        let pins = run(kubo.ipfs().args(["pin", "ls", "--type=recursive", &root])).stdout;
        assert!(String::from_utf8_lossy(&pins).contains(&root), "{sink:?}");
    }
}

/// A port nothing listens on, an HTTP server that is not Kubo, a name or a CID the
/// store does not hold: non-zero exit, one line naming the root.
#[test]
fn what_cannot_be_published_fails_on_one_line_naming_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let store = tmp.path().join("store");
    let name = "attrs-23.2.0";
    encode(&store, name);

    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let err = failure(&publish(
        &store,
        &format!("http://127.0.0.1:{port}"),
        &[name],
    ));
    assert!(
        err.contains(name) && err.contains("cannot connect"),
        "{err}"
    );

    let api = not_kubo();
    let err = failure(&publish(&store, &api, &[name]));
    assert!(
        err.contains(name) && err.contains("is not a Kubo RPC API"),
        "{err}"
    );
    assert!(err.contains("404"), "{err}");

    let err = failure(&publish(&store, &api, &["no-such-name"]));
    assert!(err.contains("no-such-name"), "{err}");

    if !have_ipfs() {
        return;
    }
    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();
    let missing = narfs_core::block::cid_for(
        narfs_core::block::RAW,
        narfs_core::block::HashAlg::Sha2_256,
        b"in no store",
    )
    .to_string();
    let missing = missing.as_str();
    let err = failure(&publish(&store, &api, &[missing]));
    assert!(err.contains(missing) && err.contains("not found"), "{err}");
    let pins = run(kubo.ipfs().args(["pin", "ls", "--type=recursive"])).stdout;
    assert!(!String::from_utf8_lossy(&pins).contains(missing));
}

/// Nix adds a tree (a multi-chunk file, a symlink, a subdirectory) and a single file
/// to a chroot store and `nix copy`s them into a file cache (xz and zstd).
/// `narfs import --ipfs-api` then pins every root in Kubo, which gives back the store
/// paths' bytes; a second run finds them present and pinned, so nothing is sent; and
/// an unreachable node fails the command on one line after the roots were recorded.
#[test]
fn import_publishes_every_root_of_a_nix_cache() {
    if !have_ipfs() || !have("nix") || !have("nix-store") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s1 = t.join("s1");
    let s1s = s1.to_str().unwrap();
    let tree = t.join("tree");
    std::fs::create_dir_all(tree.join("sub")).unwrap();
    write(&tree.join("big"), &bytes(1, 700_000), false);
    write(&tree.join("sub/small"), b"small\n", false);
    symlink(b"sub/small", &tree.join("link"));
    let file = t.join("hello.txt");
    std::fs::write(&file, "hello from nix\n").unwrap();
    let add = |p: &Path| {
        let out = run(nix(t, "nix-store").args(["--store", s1s, "--add"]).arg(p));
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (pt, pf) = (add(&tree), add(&file));
    let cache = t.join("cache");
    for (path, compression) in [(&pt, "xz"), (&pf, "zstd")] {
        let to = format!("file://{}?compression={compression}", cache.display());
        run(nix(t, "nix").args(["--store", s1s, "copy", "--to", &to, path]));
    }
    let real = |p: &str| s1.join(p.trim_start_matches('/'));

    let mut kubo = Kubo::init(None);
    let api = kubo.start().to_string();
    let store = t.join("store");
    let import = |store: &Path, api: &str| {
        narfs()
            .args(["import", "--json", "--ipfs-api", api, "--store"])
            .arg(store)
            .arg(&cache)
            .output()
            .unwrap()
    };
    let out = import(&store, &api);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["imported"], 2, "{v}");
    let err = String::from_utf8(out.stderr).unwrap();
    let roots = recorded(&store);
    assert_eq!(roots.len(), 2, "{roots:?}");
    for (path, root) in &roots {
        assert!(
            err.contains(&format!("published {path} ({root}) to {api}: pinned")),
            "{err}"
        );
        let pins = run(kubo.ipfs().args(["pin", "ls", "--type=recursive", root])).stdout;
        assert!(
            String::from_utf8_lossy(&pins).contains(&format!("{root} recursive")),
            "{path} not pinned"
        );
    }
    let got = t.join("get");
    run(kubo.ipfs().args(["get", "-o"]).arg(&got).arg(&roots[&pt]));
    assert!(
        listing(&got) == listing(&real(&pt)),
        "ipfs get of {pt} differs from the store path"
    );
    let cat = run(kubo.ipfs().args(["cat", &roots[&pf]])).stdout;
    assert!(cat == std::fs::read(real(&pf)).unwrap(), "ipfs cat of {pf}");
    let big = run(kubo.ipfs().args(["cat", &format!("{}/big", roots[&pt])])).stdout;
    assert!(big == bytes(1, 700_000), "ipfs cat of {pt}/big");

    // Again: both present in the store, both pinned by the node: nothing is sent.
    let out = import(&store, &api);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (&v["imported"], &v["already_present"]),
        (&0.into(), &2.into())
    );
    let err = String::from_utf8(out.stderr).unwrap();
    for (path, root) in &roots {
        assert!(
            err.contains(&format!(
                "published {path} ({root}) to {api}: already pinned by the node: nothing sent"
            )),
            "{err}"
        );
    }

    // A node that is not there: one line, non-zero exit, and the roots are recorded.
    let closed = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let other = t.join("other");
    let out = import(&other, &format!("http://127.0.0.1:{port}"));
    let err = failure(&out);
    assert!(
        err.contains("cannot publish the 2 root(s)") && err.contains("cannot connect"),
        "{err}"
    );
    assert_eq!(recorded(&other), roots, "the import was not recorded");
}

/// The store's roots: name -> root CID.
fn recorded(store: &Path) -> BTreeMap<String, String> {
    let out = run(narfs().args(["ls", "--json", "--store"]).arg(store)).stdout;
    String::from_utf8(out)
        .unwrap()
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let name = v["name"].as_str().unwrap().to_string();
            (name, v["root"].as_str().unwrap().to_string())
        })
        .collect()
}

/// An HTTP server on loopback answering every request 404 with a page, as a web
/// server at the wrong port would.
fn not_kubo() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut line = String::new();
            while r.read_line(&mut line).is_ok_and(|n| n > 2) {
                line.clear();
            }
            let page = "<html><body>Not Found</body></html>";
            let _ = write!(
                conn,
                "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    api
}
