//! The import pipeline on a hand-made cache: a good entry recorded with its narinfo
//! fields, a decompression bomb stopped at its NarSize and nothing of it recorded,
//! and a second run finding the good entry present.

use std::error::Error as _;
use std::io::{self, Read};
use std::sync::atomic::{AtomicU64, Ordering};

use narfs_nix::FileCache;

use narfs_encoder::Profile;
use sha2::{Digest, Sha256};

use super::*;

fn entry(cache: &Path, hash: &str, nar: &[u8], stored: &[u8], compression: &str, nar_size: u64) {
    std::fs::write(cache.join(format!("nar/{hash}.nar")), stored).unwrap();
    let info = format!(
        "StorePath: /nix/store/{hash}-x\nURL: nar/{hash}.nar\nCompression: {compression}\nNarHash: {}\nNarSize: {nar_size}\nReferences: {hash}-x\n",
        nar_hash_string(&Sha256::digest(nar).into())
    );
    std::fs::write(cache.join(format!("{hash}.narinfo")), info).unwrap();
}

#[derive(Default)]
struct Count(AtomicU64, AtomicU64);

impl Observer for Count {
    fn start(&self, total: u64) {
        self.0.store(total, Ordering::Relaxed);
    }
    fn done(&self, _: &Path, _: &Outcome) {
        self.1.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn imports_checks_and_resumes() {
    let tmp = tempfile::tempdir().unwrap();
    let cache = tmp.path().join("cache");
    std::fs::create_dir_all(cache.join("nar")).unwrap();
    std::fs::write(cache.join("nix-cache-info"), "StoreDir: /nix/store\n").unwrap();
    let file = tmp.path().join("f");
    std::fs::write(&file, b"hello\n").unwrap();
    let mut nar = Vec::new();
    narfs_core::nar::dump_path(&file, &mut nar).unwrap();
    let good = "00000000000000000000000000000001";
    entry(
        &cache,
        good,
        &nar,
        &zstd::encode_all(&nar[..], 3).unwrap(),
        "zstd",
        nar.len() as u64,
    );
    // 64 MiB of zeros claiming to be a 4096-byte NAR.
    let bomb = zstd::encode_all(io::repeat(0).take(64 << 20), 19).unwrap();
    let bad = "00000000000000000000000000000002";
    entry(&cache, bad, &[0; 4096], &bomb, "zstd", 4096);

    let store = Store::open(tmp.path().join("store")).unwrap();
    let opts = ImportOptions {
        layout: Profile::KuboV1.layout(),
        profile: "kubo-v1".into(),
        jobs: 2,
        paths: None,
        closure: false,
    };
    let seen = Count::default();
    let cache = FileCache::open(&cache, narfs_nix::StoreDir::Nix).unwrap();
    let r = import_cache(&cache, &store, &opts, &seen).unwrap();
    assert_eq!((r.imported, r.already_present, r.failed.len()), (1, 0, 1));
    assert_eq!((seen.0.into_inner(), seen.1.into_inner()), (2, 2));
    assert_eq!(r.nar_bytes, nar.len() as u64);
    let f = &r.failed[0];
    assert!(f.narinfo.ends_with(format!("{bad}.narinfo")));
    let mut cause: Option<&dyn std::error::Error> = Some(&f.error);
    let mut chain = Vec::new();
    while let Some(e) = cause {
        chain.push(e.to_string());
        cause = e.source();
    }
    assert!(
        chain
            .iter()
            .any(|c| c.contains("longer than its narinfo's NarSize 4096")),
        "{chain:?}"
    );
    assert!(f.error.source().is_some());
    let roots = store.roots().unwrap();
    assert_eq!(roots.len(), 1);
    let rec = &roots[0];
    assert_eq!(rec.name.as_deref(), Some(&*format!("/nix/store/{good}-x")));
    assert_eq!(rec.nar_hash, nar_hash_string(&Sha256::digest(&nar).into()));
    assert_eq!(
        rec.narinfo.as_ref().unwrap().references,
        [format!("{good}-x")]
    );
    // The report names the root the good path now has; the bomb has none.
    let recorded = Recorded {
        store_path: format!("/nix/store/{good}-x"),
        root: rec.cid().unwrap(),
        present: false,
    };
    assert_eq!(r.roots, std::slice::from_ref(&recorded));

    let again = import_cache(&cache, &store, &opts, &()).unwrap();
    assert_eq!(
        (again.imported, again.already_present, again.failed.len()),
        (0, 1, 1)
    );
    let present = Recorded {
        present: true,
        ..recorded
    };
    assert_eq!(again.roots, [present]);
}
