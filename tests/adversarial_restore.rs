//! Safe restore: `restore` (the library), `narfs nar restore` and `narfs decode --to`
//! given hostile NARs and DAGs never create, change or delete anything outside the
//! target directory, never write through a symlink, refuse an existing target, and
//! leave nothing behind when they fail. Every test snapshots the whole parent
//! directory (with a sentinel tree beside the target) before and after.

#[path = "adversarial/util.rs"]
mod util;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use narfs_core::block::MemoryStore;
use narfs_core::car::CarWriter;
use narfs_core::nar::{restore, NarError, RestoreOptions};
use narfs_core::Cid;
use util::{dir, dir_head, nar_of, raw, symlink, tok};

/// Everything under `root`, symlinks not followed: kind, mode, contents and (but
/// for directories) mtime.
fn snapshot(root: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(p) = todo.pop() {
        let meta = fs::symlink_metadata(&p).unwrap();
        let what = if meta.file_type().is_symlink() {
            format!("link {:?}", fs::read_link(&p).unwrap())
        } else if meta.is_dir() {
            for e in fs::read_dir(&p).unwrap() {
                todo.push(e.unwrap().path());
            }
            "dir".to_string()
        } else {
            format!("file {:?}", fs::read(&p).unwrap())
        };
        let mode = meta.permissions().mode();
        // A directory's mtime moves when a staging directory comes and goes in it;
        // its listing is what must not change.
        let mtime = if meta.is_dir() {
            0
        } else {
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec()
        };
        out.insert(p, format!("{what} {mode:o} {mtime}"));
    }
    out
}

/// A parent directory holding `outside/` (a sentinel tree) and nothing else.
struct Scene {
    _tmp: tempfile::TempDir,
    parent: PathBuf,
    outside: PathBuf,
    dest: PathBuf,
}

impl Scene {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("parent");
        let outside = parent.join("outside");
        fs::create_dir_all(outside.join("sub")).unwrap();
        fs::write(outside.join("keep"), b"do not touch").unwrap();
        fs::write(outside.join("sub/pwned"), b"original").unwrap();
        Scene {
            dest: parent.join("dest"),
            parent,
            outside,
            _tmp: tmp,
        }
    }

    /// Runs `f` and checks that the parent is exactly as before (so `dest` was not
    /// created and no staging directory was left behind).
    fn unchanged<T>(&self, f: impl FnOnce() -> T) -> T {
        let before = snapshot(&self.parent);
        let r = f();
        assert_eq!(snapshot(&self.parent), before, "something outside changed");
        r
    }
}

fn restore_err(scene: &Scene, nar: &[u8]) -> NarError {
    scene.unchanged(|| {
        restore(nar, &scene.dest, RestoreOptions::default()).expect_err("hostile NAR restored")
    })
}

/// `( type symlink target T )`
fn link_node(out: &mut Vec<u8>, target: &[u8]) {
    for t in [&b"("[..], b"type", b"symlink", b"target", target, b")"] {
        tok(out, t);
    }
}

fn entry(out: &mut Vec<u8>, name: &[u8], node: impl FnOnce(&mut Vec<u8>)) {
    for t in [&b"entry"[..], b"(", b"name", name, b"node"] {
        tok(out, t);
    }
    node(out);
    tok(out, b")");
}

fn file_node(out: &mut Vec<u8>, data: &[u8]) {
    for t in [&b"("[..], b"type", b"regular", b"contents", data, b")"] {
        tok(out, t);
    }
}

#[test]
fn hostile_nars_change_nothing() {
    let scene = Scene::new();
    let outside = scene.outside.to_str().unwrap().as_bytes().to_vec();
    let with = |build: &dyn Fn(&mut Vec<u8>)| {
        let mut nar = dir_head();
        build(&mut nar);
        tok(&mut nar, b")");
        nar
    };
    // A symlink to the outside, then an entry through it, by `/` or by a repeated name.
    let through_slash = with(&|n| {
        entry(n, b"sub", |n| link_node(n, &outside));
        entry(n, b"sub/pwned", |n| file_node(n, b"overwritten"));
    });
    let through_repeat = with(&|n| {
        entry(n, b"sub", |n| link_node(n, &outside));
        entry(n, b"sub", |n| {
            for t in [&b"("[..], b"type", b"directory"] {
                tok(n, t);
            }
            entry(n, b"pwned", |n| file_node(n, b"overwritten"));
            tok(n, b")");
        });
    });
    for (nar, at) in [(&through_slash, "name contains `/`"), (&through_repeat, "")] {
        let e = restore_err(&scene, nar);
        match at {
            "" => assert!(matches!(e, NarError::Unsorted { .. }), "{e}"),
            reason => assert!(
                matches!(e, NarError::BadName { reason: r, .. } if r == reason),
                "{e}"
            ),
        }
    }
    for name in [&b".."[..], b".", b"", b"a\0b", b"../outside/keep"] {
        let nar = with(&|n| entry(n, name, |n| file_node(n, b"x")));
        assert!(matches!(
            restore_err(&scene, &nar),
            NarError::BadName { .. }
        ));
    }
    // Valid entries first, then a fault: the partial tree is removed.
    let mut truncated = dir_head();
    entry(&mut truncated, b"a", |n| file_node(n, b"fine"));
    entry(&mut truncated, b"b", |n| link_node(n, b"../outside/keep"));
    truncated.extend_from_slice(&5u64.to_le_bytes());
    assert!(matches!(
        restore_err(&scene, &truncated),
        NarError::Truncated { .. }
    ));
    // 100,000 levels: refused (by depth or by path length), nothing left.
    let mut deep = dir_head();
    for _ in 0..100_000 {
        for t in [
            &b"entry"[..],
            b"(",
            b"name",
            b"d",
            b"node",
            b"(",
            b"type",
            b"directory",
        ] {
            tok(&mut deep, t);
        }
    }
    restore_err(&scene, &deep);
}

#[test]
fn symlinks_are_created_never_followed() {
    let scene = Scene::new();
    let before = snapshot(&scene.outside);
    let mut nar = dir_head();
    entry(&mut nar, b"abs", |n| {
        link_node(n, scene.outside.join("sub").as_os_str().as_encoded_bytes())
    });
    entry(&mut nar, b"rel", |n| link_node(n, b"../outside/sub/pwned"));
    entry(&mut nar, b"z", |n| file_node(n, b"inside"));
    tok(&mut nar, b")");
    restore(nar.as_slice(), &scene.dest, RestoreOptions::default()).unwrap();
    assert_eq!(snapshot(&scene.outside), before);
    assert!(fs::symlink_metadata(scene.dest.join("rel"))
        .unwrap()
        .is_symlink());
    assert_eq!(fs::read(scene.dest.join("z")).unwrap(), b"inside");
}

#[test]
fn an_existing_target_is_refused() {
    let scene = Scene::new();
    let mut nar = Vec::new();
    tok(&mut nar, b"nix-archive-1");
    file_node(&mut nar, b"new contents");
    // Non-empty directory, file, symlink to a directory (even an empty one, even when
    // empty directories are allowed): refused, untouched.
    fs::create_dir(&scene.dest).unwrap();
    fs::write(scene.dest.join("old"), b"old").unwrap();
    for opts in [
        RestoreOptions::default(),
        RestoreOptions {
            allow_empty_dir: true,
        },
    ] {
        let e = scene.unchanged(|| restore(nar.as_slice(), &scene.dest, opts).unwrap_err());
        assert!(e.to_string().contains("already exists"), "{e}");
    }
    fs::remove_dir_all(&scene.dest).unwrap();
    fs::create_dir(scene.parent.join("empty")).unwrap();
    std::os::unix::fs::symlink(scene.parent.join("empty"), &scene.dest).unwrap();
    let opts = RestoreOptions {
        allow_empty_dir: true,
    };
    scene.unchanged(|| restore(nar.as_slice(), &scene.dest, opts).unwrap_err());
    fs::remove_file(&scene.dest).unwrap();
    // An empty directory is replaced only when allowed.
    fs::create_dir(&scene.dest).unwrap();
    scene
        .unchanged(|| restore(nar.as_slice(), &scene.dest, RestoreOptions::default()).unwrap_err());
    restore(nar.as_slice(), &scene.dest, opts).unwrap();
    assert_eq!(fs::read(&scene.dest).unwrap(), b"new contents");
}

fn narfs() -> Command {
    Command::new(env!("CARGO_BIN_EXE_narfs"))
}

#[test]
fn narfs_nar_restore_refuses_hostile_nars() {
    let scene = Scene::new();
    let mut nar = dir_head();
    entry(&mut nar, b"sub", |n| link_node(n, b"../outside"));
    entry(&mut nar, b"sub", |n| file_node(n, b"x"));
    tok(&mut nar, b")");
    let file = scene._tmp.path().join("hostile.nar");
    fs::write(&file, &nar).unwrap();
    let out = scene.unchanged(|| {
        narfs()
            .arg("nar")
            .arg("restore")
            .arg(&file)
            .arg(&scene.dest)
            .output()
            .unwrap()
    });
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("strictly increasing"), "{err}");
}

/// Writes `store` as a CAR rooted at `root` beside the scene, returns its path.
fn car(scene: &Scene, store: &MemoryStore, root: &Cid) -> PathBuf {
    let path = scene._tmp.path().join(format!("{root}.car"));
    let mut w = CarWriter::new(fs::File::create(&path).unwrap(), root).unwrap();
    for (cid, data) in store.iter() {
        w.put(cid, data).unwrap();
    }
    w.finish().unwrap();
    path
}

fn decode_to(scene: &Scene, store: &MemoryStore, root: &Cid) -> std::process::Output {
    let car = car(scene, store, root);
    let mut cmd = narfs();
    cmd.arg("decode")
        .arg("--car")
        .arg(&car)
        .arg("--to")
        .arg(&scene.dest);
    scene.unchanged(|| cmd.arg(root.to_string()).output().unwrap())
}

#[test]
fn narfs_decode_to_refuses_hostile_dags() {
    let scene = Scene::new();
    let mut s = MemoryStore::new();
    let file = raw(&mut s, b"overwritten");
    let outside = symlink(&mut s, scene.outside.as_os_str().as_encoded_bytes());
    let pwned_dir = dir(&mut s, &[("pwned", file)]);
    let cases: Vec<(Cid, &str)> = vec![
        (dir(&mut s, &[("..", pwned_dir)]), "`.` or `..`"),
        (dir(&mut s, &[(".", file)]), "`.` or `..`"),
        (dir(&mut s, &[("", file)]), "empty name"),
        (dir(&mut s, &[("../outside/keep", file)]), "contains `/`"),
        (
            dir(&mut s, &[("sub", outside), ("sub/pwned", file)]),
            "contains `/`",
        ),
        (
            dir(&mut s, &[("sub", outside), ("sub", pwned_dir)]),
            "strictly increasing",
        ),
        (
            dir(&mut s, &[("b", file), ("a", file)]),
            "strictly increasing",
        ),
    ];
    for (root, why) in cases {
        let out = decode_to(&scene, &s, &root);
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(why), "{why}: {err}");
    }
    // A missing block after some entries were written: the partial tree goes.
    let missing = util::dir(&mut MemoryStore::new(), &[]);
    let root = dir(&mut s, &[("a", file), ("b", missing)]);
    let out = decode_to(&scene, &s, &root);
    assert!(String::from_utf8_lossy(&out.stderr).contains("block not found"));
    // An existing, non-empty target is refused and left alone.
    fs::create_dir(&scene.dest).unwrap();
    fs::write(scene.dest.join("old"), b"old").unwrap();
    let ok = dir(&mut s, &[("a", file)]);
    assert!(!decode_to(&scene, &s, &ok).status.success());
    fs::remove_dir_all(&scene.dest).unwrap();
    // And the good DAG restores.
    let car = car(&scene, &s, &ok);
    let mut cmd = narfs();
    cmd.arg("decode")
        .arg("--car")
        .arg(&car)
        .arg("--to")
        .arg(&scene.dest);
    assert!(cmd.arg(ok.to_string()).status().unwrap().success());
    assert_eq!(fs::read(scene.dest.join("a")).unwrap(), b"overwritten");
}

#[test]
fn nar_of_tokens_is_what_restore_reads() {
    // The helpers above build what the reader accepts: a one-file NAR restores.
    let scene = Scene::new();
    let nar = nar_of(&[
        b"nix-archive-1",
        b"(",
        b"type",
        b"regular",
        b"contents",
        b"hi",
        b")",
    ]);
    restore(nar.as_slice(), &scene.dest, RestoreOptions::default()).unwrap();
    assert_eq!(fs::read(&scene.dest).unwrap(), b"hi");
}
