//! The generated interop trees, deterministic byte for byte (contents from
//! [`bytes`](super::bytes), fixed names, permissions set explicitly), so that their
//! reference CIDs can be checked in (tests/vectors/) and compared without Kubo or Node.

use std::path::{Path, PathBuf};

use super::{bytes, symlink, write};

/// The trees with vectors: name → builder. None has executables (UnixFS importers
/// without `--preserve-mode` do not mark them); each is built under `root/NAME`.
/// Builds a tree under the directory given and returns its path.
pub type Builder = fn(&Path) -> PathBuf;

pub const TREES: &[(&str, Builder)] = &[
    ("sizes", sizes),
    ("links", links),
    ("deep", deep),
    ("hamt-5000", hamt_5000),
    ("hamt-100000", hamt_100000),
];

pub fn build(name: &str, root: &Path) -> PathBuf {
    let (_, f) = TREES
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no tree named {name}"));
    f(root)
}

fn dir(root: &Path, name: &str) -> PathBuf {
    let t = root.join(name);
    std::fs::create_dir_all(&t).unwrap();
    t
}

/// File sizes at the chunkers' edges: 0 B, one byte, exactly one 256 KiB chunk, one
/// more byte, 1 MiB + 1 (the 2025 profile's chunk + 1), and more than 174 × 256 KiB
/// (a second level of Kubo's balanced tree).
pub fn sizes(root: &Path) -> PathBuf {
    let t = dir(root, "sizes");
    write(&t.join("0"), b"", false);
    write(&t.join("1"), b"x", false);
    write(&t.join("256k"), &bytes(1, 262_144), false);
    write(&t.join("256k+1"), &bytes(2, 262_145), false);
    write(&t.join("1m+1"), &bytes(3, 1_048_577), false);
    write(
        &t.join("174x256k+300000"),
        &bytes(4, 174 * 262_144 + 300_000),
        false,
    );
    t
}

/// Symlinks (relative, absolute, dangling, to a directory), empty directories, and
/// UTF-8 names (accents, CJK, emoji, spaces, punctuation).
pub fn links(root: &Path) -> PathBuf {
    let t = dir(root, "links");
    std::fs::create_dir_all(t.join("empty")).unwrap();
    std::fs::create_dir_all(t.join("a/empty-inside")).unwrap();
    write(&t.join("a/file.txt"), b"hello narfs\n", false);
    symlink(b"a/file.txt", &t.join("rel-link"));
    symlink(b"a", &t.join("dir-link"));
    symlink(
        b"/nix/store/00000000000000000000000000000000-dangling",
        &t.join("abs-link"),
    );
    symlink(b"../nowhere", &t.join("a/dangling"));
    for (i, name) in [
        "naïve café",
        "日本語のファイル",
        "☕ emoji 🦀",
        "a b,c;d=e+f",
        "Ünïcödé-Ω",
    ]
    .iter()
    .enumerate()
    {
        write(&t.join(name), &bytes(10 + i as u64, 100 + i), false);
    }
    t
}

/// 64 nested directories with a file at each level.
pub fn deep(root: &Path) -> PathBuf {
    let t = dir(root, "deep");
    let mut d = t.clone();
    for i in 0..64u64 {
        d = d.join(format!("level-{i:02}"));
        std::fs::create_dir(&d).unwrap();
        write(&d.join("f"), &bytes(100 + i, i as usize * 7), false);
    }
    t
}

fn wide(root: &Path, name: &str, n: u32) -> PathBuf {
    let t = dir(root, name);
    for i in 0..n {
        write(
            &t.join(format!("entry-with-a-fairly-long-name-{i:06}")),
            &i.to_le_bytes(),
            false,
        );
    }
    std::fs::create_dir(t.join("sub")).unwrap();
    write(&t.join("sub/x"), b"x", false);
    t
}

/// A directory that becomes a HAMT shard under both profiles.
pub fn hamt_5000(root: &Path) -> PathBuf {
    wide(root, "hamt-5000", 5000)
}

/// A much larger shard (two levels of HAMT nodes).
pub fn hamt_100000(root: &Path) -> PathBuf {
    wide(root, "hamt-100000", 100_000)
}
