//! Tests of reading a `guix publish --cache` directory and Guix's compressions, on
//! fixtures made by the real tools (`nix/testdata/`): `guix publish 1.5.0` baked
//! `guix-publish/` (lzip:3 and zstd:3 of `hello.txt`), `lzip -3` made `hello.nar.lz`
//! and `lzip -9` of 16 MiB of zeros `zeros-16m.lz` (in the Guix chroot of
//! `.ci/guix.sh`), host `gzip -9 -n` made `hello.nar.gz`.

use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::*;

const BASE: &str = "k9pad896kygyvpxli7f20bkl9813p9y4-hello.txt";

fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(name)
}

fn hello_nar() -> Vec<u8> {
    std::fs::read(testdata("hello.nar")).unwrap()
}

fn decoded(compression: &str, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
    let Ok(mut r) = decompress(compression, io::Cursor::new(bytes)) else {
        panic!("{compression} is not supported");
    };
    let mut out = Vec::new();
    r.read_to_end(&mut out)?;
    Ok(out)
}

#[test]
fn lzip_and_gzip_decode_what_the_real_tools_wrote() {
    let nar = hello_nar();
    let lz = std::fs::read(testdata("hello.nar.lz")).unwrap();
    assert_eq!(decoded("lzip", lz.clone()).unwrap(), nar);
    let gz = std::fs::read(testdata("hello.nar.gz")).unwrap();
    assert_eq!(decoded("gzip", gz.clone()).unwrap(), nar);
    // Two members read as one stream, as lzip and gzip do.
    assert_eq!(
        decoded("lzip", [&lz[..], &lz[..]].concat()).unwrap(),
        [&nar[..], &nar[..]].concat()
    );
    assert_eq!(
        decoded("gzip", [&gz[..], &gz[..]].concat()).unwrap(),
        [&nar[..], &nar[..]].concat()
    );
}

#[test]
fn damaged_lzip_and_gzip_fail() {
    let lz = std::fs::read(testdata("hello.nar.lz")).unwrap();
    let gz = std::fs::read(testdata("hello.nar.gz")).unwrap();
    // A flipped byte in the CRC32 of the trailer, then in the compressed data.
    for (compression, file, at) in [
        ("lzip", &lz, lz.len() - 20),
        ("lzip", &lz, 10),
        ("gzip", &gz, gz.len() - 8),
        ("gzip", &gz, 12),
    ] {
        let mut bad = file.clone();
        bad[at] ^= 0x55;
        let got = decoded(compression, bad);
        assert!(
            got.is_err(),
            "{compression}, byte {at}: decoded {:?}",
            got.map(|v| v.len())
        );
    }
    // Cut short.
    assert!(decoded("lzip", lz[..lz.len() - 1].to_vec()).is_err());
    assert!(decoded("gzip", gz[..gz.len() - 1].to_vec()).is_err());
}

#[test]
fn an_lzip_bomb_stops_one_byte_past_nar_size() {
    let bomb = std::fs::read(testdata("zeros-16m.lz")).unwrap();
    assert!(bomb.len() < 4096);
    let Ok(inner) = decompress("lzip", io::BufReader::new(io::Cursor::new(bomb))) else {
        panic!("lzip is not supported");
    };
    let mut nar = NarStream::new(inner, 1000);
    let mut sink = Vec::new();
    let err = nar.read_to_end(&mut sink).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{err}");
    assert_eq!(nar.bytes_read(), 1001);
    assert!(sink.len() <= 1000);
}

/// The fixture cache, copied so a test may damage it.
fn guix_cache(tmp: &Path) -> PathBuf {
    let dir = tmp.join("cache");
    for sub in ["hashes", "lzip", "zstd"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
        for e in std::fs::read_dir(testdata("guix-publish").join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(sub).join(e.file_name())).unwrap();
        }
    }
    dir
}

#[test]
fn reads_a_guix_publish_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = guix_cache(tmp.path());
    let cache = FileCache::detect(&dir).unwrap();
    assert_eq!(cache.layout(), Layout::GuixPublish);
    assert_eq!(cache.store_dir(), StoreDir::Guix);
    // One narinfo, though two directories hold it.
    let listed = cache.narinfos().unwrap();
    assert_eq!(listed, vec![dir.join(format!("lzip/{BASE}.narinfo"))]);
    let info = cache.read_narinfo(&listed[0]).unwrap();
    assert_eq!(info.store_path, format!("/gnu/store/{BASE}"));
    assert_eq!(info.nars.len(), 2);
    // zstd decodes faster than lzip.
    assert_eq!(info.compression, "zstd");
    assert_eq!(info.url, format!("nar/zstd/{BASE}"));
    assert_eq!(info.nars[0].file_size, Some(99));
    assert!(info
        .signature
        .as_deref()
        .is_some_and(|s| s.starts_with("1;vm;")));
    assert_eq!(
        info.text,
        std::fs::read_to_string(&listed[0]).unwrap(),
        "kept verbatim"
    );
    let mut nar = Vec::new();
    cache
        .open_nar(&info)
        .unwrap()
        .read_to_end(&mut nar)
        .unwrap();
    assert_eq!(nar, hello_nar());
    // The lzip group reads the same NAR.
    let lzip = NarInfo {
        url: info.nars[0].url.clone(),
        compression: info.nars[0].compression.clone(),
        ..info.clone()
    };
    nar.clear();
    cache
        .open_nar(&lzip)
        .unwrap()
        .read_to_end(&mut nar)
        .unwrap();
    assert_eq!(nar, hello_nar());
    // A URL naming another directory than its compression, or leaving the cache.
    for url in [
        format!("nar/lzip/{BASE}"),
        format!("nar/zstd/../{BASE}"),
        format!("nar/zstd/{BASE}/x"),
        format!("zstd/{BASE}"),
    ] {
        let bad = NarInfo {
            url: url.clone(),
            ..info.clone()
        };
        assert!(
            matches!(cache.open_nar(&bad), Err(CacheError::BadUrl(_))),
            "{url}"
        );
    }
}

#[test]
fn a_guix_cache_is_told_apart_from_a_nix_one() {
    let tmp = tempfile::tempdir().unwrap();
    let e = FileCache::detect(tmp.path()).unwrap_err();
    assert!(matches!(e, CacheError::UnknownLayout { .. }), "{e}");
    let e = FileCache::open_guix_publish(tmp.path()).unwrap_err();
    assert!(matches!(e, CacheError::NotACache { .. }), "{e}");
    // `hashes` as a symlink to a directory does not make a cache.
    std::os::unix::fs::symlink(tmp.path(), tmp.path().join("hashes")).unwrap();
    assert!(FileCache::open_guix_publish(tmp.path()).is_err());
    // A narinfo named for another store path is refused.
    let dir = guix_cache(tmp.path());
    let wrong = dir.join("lzip/0000000000000000000000000000000a-other.narinfo");
    std::fs::copy(dir.join(format!("lzip/{BASE}.narinfo")), &wrong).unwrap();
    let cache = FileCache::open_guix_publish(&dir).unwrap();
    assert!(matches!(
        cache.read_narinfo(&wrong),
        Err(CacheError::NameMismatch(_))
    ));
}
