//! Tests of reading a file binary cache: symlinks at every component refused, the
//! `nix-cache-info` check, and NARs cut one byte past their `NarSize`.

use std::io::{self, Read, Write};
use std::os::unix::fs::symlink;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::*;
use crate::nar_stream::NarSizeExceeded;
use crate::narinfo::nar_hash_string;

const HASH: &str = "nk9m6a5mswl5hr0hil41ph7m8fs7gfij";

/// A cache holding one NAR (`nar/x.nar` + compression suffix) of `nar`'s bytes.
fn cache_with(dir: &Path, nar: &[u8], compression: &str, stored: &[u8], nar_size: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("nar")).unwrap();
    std::fs::write(
        dir.join("nix-cache-info"),
        "StoreDir: /nix/store\nWantMassQuery: 1\n",
    )
    .unwrap();
    std::fs::write(dir.join("nar/x.nar"), stored).unwrap();
    let info = format!(
        "StorePath: /nix/store/{HASH}-x\nURL: nar/x.nar\nCompression: {compression}\nNarHash: {}\nNarSize: {nar_size}\n",
        nar_hash_string(&Sha256::digest(nar).into())
    );
    let p = dir.join(format!("{HASH}.narinfo"));
    std::fs::write(&p, info).unwrap();
    p
}

#[test]
fn reads_a_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let nar = b"pretend this is a NAR".to_vec();
    let stored = zstd::encode_all(&nar[..], 3).unwrap();
    let p = cache_with(tmp.path(), &nar, "zstd", &stored, nar.len() as u64);
    std::fs::write(tmp.path().join("not-a-narinfo"), "x").unwrap();
    let cache = FileCache::open(tmp.path(), StoreDir::Nix).unwrap();
    assert_eq!(cache.narinfos().unwrap(), vec![p.clone()]);
    let info = cache.read_narinfo(&p).unwrap();
    let mut got = Vec::new();
    cache
        .open_nar(&info)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got, nar);
}

#[test]
fn refuses_what_is_not_a_cache_for_this_store() {
    let tmp = tempfile::tempdir().unwrap();
    let e = FileCache::open(tmp.path(), StoreDir::Nix).unwrap_err();
    assert!(matches!(e, CacheError::NotACache { .. }), "{e}");
    std::fs::write(tmp.path().join("nix-cache-info"), "StoreDir: /gnu/store\n").unwrap();
    let e = FileCache::open(tmp.path(), StoreDir::Nix).unwrap_err();
    assert!(e.to_string().contains("/gnu/store"), "{e}");
    assert!(FileCache::open(tmp.path(), StoreDir::Guix).is_ok());
}

#[test]
fn never_follows_a_symlink_inside_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let nar = b"a NAR outside the cache".to_vec();
    let cache_dir = tmp.path().join("cache");
    let p = cache_with(&cache_dir, &nar, "none", &nar, nar.len() as u64);
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("x.nar"), &nar).unwrap();
    let cache = FileCache::open(&cache_dir, StoreDir::Nix).unwrap();
    let info = cache.read_narinfo(&p).unwrap();

    // A symlinked directory on the way to the NAR (only the last component used to be
    // checked).
    std::fs::remove_dir_all(cache_dir.join("nar")).unwrap();
    symlink(&outside, cache_dir.join("nar")).unwrap();
    let e = cache.open_nar(&info).err().unwrap();
    assert!(matches!(e, CacheError::Symlink { .. }), "{e}");
    // A symlink to a file where a directory is expected.
    std::fs::remove_file(cache_dir.join("nar")).unwrap();
    symlink(outside.join("x.nar"), cache_dir.join("nar")).unwrap();
    let e = cache.open_nar(&info).err().unwrap();
    assert!(matches!(e, CacheError::Symlink { .. }), "{e}");
    // The NAR itself a symlink.
    std::fs::remove_file(cache_dir.join("nar")).unwrap();
    std::fs::create_dir(cache_dir.join("nar")).unwrap();
    symlink(outside.join("x.nar"), cache_dir.join("nar/x.nar")).unwrap();
    let e = cache.open_nar(&info).err().unwrap();
    assert!(matches!(e, CacheError::Symlink { .. }), "{e}");
    // A directory or a FIFO where the NAR should be: refused, without blocking.
    std::fs::remove_file(cache_dir.join("nar/x.nar")).unwrap();
    std::fs::create_dir(cache_dir.join("nar/x.nar")).unwrap();
    let e = cache.open_nar(&info).err().unwrap();
    assert!(matches!(e, CacheError::NotAFile { .. }), "{e}");
    std::fs::remove_dir(cache_dir.join("nar/x.nar")).unwrap();
    let fifo = std::ffi::CString::new(cache_dir.join("nar/x.nar").as_os_str().as_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let e = cache.open_nar(&info).err().unwrap();
    assert!(matches!(e, CacheError::NotAFile { .. }), "{e}");
    // A URL that leaves the cache by name.
    for url in ["../outside/x.nar", "/etc/passwd", "file:///etc/passwd", ""] {
        let bad = NarInfo {
            url: url.into(),
            ..info.clone()
        };
        let e = cache.open_nar(&bad).err().unwrap();
        assert!(matches!(e, CacheError::BadUrl(_)), "{url}: {e}");
    }
    // A narinfo that is a symlink is neither listed nor read.
    std::fs::rename(&p, outside.join("x.narinfo")).unwrap();
    symlink(outside.join("x.narinfo"), &p).unwrap();
    assert!(cache.narinfos().unwrap().is_empty());
    let e = cache.read_narinfo(&p).unwrap_err();
    assert!(matches!(e, CacheError::Symlink { .. }), "{e}");
}

#[test]
fn stops_a_decompression_bomb_one_byte_past_nar_size() {
    let tmp = tempfile::tempdir().unwrap();
    let bomb_size: u64 = 64 << 20;
    let bomb = zstd::encode_all(io::repeat(0).take(bomb_size), 19).unwrap();
    assert!(bomb.len() < 64 << 10, "{} bytes", bomb.len());
    let p = cache_with(tmp.path(), &[0; 4096], "zstd", &bomb, 4096);
    let cache = FileCache::open(tmp.path(), StoreDir::Nix).unwrap();
    let info = cache.read_narinfo(&p).unwrap();
    let mut nar = cache.open_nar(&info).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut out = 0u64;
    let err = loop {
        match nar.read(&mut buf) {
            Ok(0) => panic!("the bomb ended cleanly after {out} bytes"),
            Ok(n) => out += n as u64,
            Err(e) => break e,
        }
    };
    assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    let inner = err
        .get_ref()
        .and_then(|e| e.downcast_ref::<NarSizeExceeded>());
    assert_eq!(inner.map(|e| e.nar_size), Some(4096), "{err}");
    assert!(out <= 4096, "{out} bytes handed out");
    assert_eq!(nar.bytes_read(), 4097, "decompressed past NarSize + 1");
    // And it stays failed.
    assert!(nar.read(&mut buf).is_err());
}

#[test]
fn nar_stream_ends_cleanly_at_nar_size() {
    let mut exact = NarStream::new(Box::new(&b"12345"[..]), 5);
    let mut v = Vec::new();
    exact.read_to_end(&mut v).unwrap();
    assert_eq!(v, b"12345");
    let mut short = NarStream::new(Box::new(&b"1234"[..]), 5);
    v.clear();
    short.read_to_end(&mut v).unwrap();
    assert_eq!(v, b"1234", "a short NAR is the NarSize check's to refuse");
    let mut long = NarStream::new(Box::new(&b"123456"[..]), 5);
    assert!(long.read_to_end(&mut v).is_err());
    let _ = io::sink().write(&v);
}
