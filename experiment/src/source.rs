//! Inputs beyond a corpus directory: the NARs of a binary cache (any
//! [`BinaryCache`]: a `nix copy --to file://` directory, a `guix publish --cache`
//! one, a cache over HTTP) or of store paths on this machine, written into a corpus
//! directory (one `<hash>-<name>.nar` each and a `MANIFEST.tsv`) that the experiment
//! then reads like any other. The experiment reads every NAR once per strategy, so
//! writing them out once costs less than decompressing or fetching them again.
//!
//! A cache's NARs are checked against their narinfo's `NarHash` and `NarSize` as they
//! are written. Their order is not the cache's: items are sorted by package, then by
//! version with digit runs compared as numbers (package and version split from the
//! store path's name by [`split_name`]), so that each package's versions form a
//! series in order.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use narfs_nix::store_path::{is_base_name, HASH_PART_LEN};
use narfs_nix::{BinaryCache, CacheError, NarInfo};
use sha2::{Digest, Sha256};

use crate::corpus::{natural_cmp, split_name};
use crate::Error;

/// One NAR written into the corpus.
struct Written {
    /// `<hash>-<name>` (or a local path's base name).
    base: String,
    store_path: String,
}

/// Writes the NARs of `cache` into the corpus directory `out`: every narinfo it
/// lists, or the store paths whose hash parts are `paths` and, with `closure`, what
/// they reference, and theirs. `progress` is told each store path as it is read, with
/// how many are done and known so far. Returns how many NARs were written.
pub fn from_cache(
    cache: &dyn BinaryCache,
    paths: Option<&[String]>,
    closure: bool,
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<usize, Error> {
    let cache_error = |source| Error::Cache {
        cache: cache.location(),
        source,
    };
    let mut todo: Vec<PathBuf> = match paths {
        None => cache
            .list()
            .map_err(cache_error)?
            .ok_or_else(|| cache_error(CacheError::Unlistable(cache.location())))?,
        Some(paths) => paths
            .iter()
            .map(|p| {
                cache.entry_of(p).ok_or_else(|| Error::Unnamed {
                    cache: cache.location(),
                    path: p.clone(),
                })
            })
            .collect::<Result<_, _>>()?,
    };
    todo.reverse();
    let mut seen: std::collections::HashSet<PathBuf> = todo.iter().cloned().collect();
    let follow = closure && paths.is_some();
    let mut written = Vec::new();
    while let Some(entry) = todo.pop() {
        let info = cache.read_narinfo(&entry).map_err(cache_error)?;
        progress(
            written.len(),
            written.len() + todo.len() + 1,
            &info.store_path,
        );
        written.push(write_nar(cache, &info, out)?);
        if follow {
            for r in &info.references {
                // A reference is a base name, `<hash>-<name>`.
                let hash = is_base_name(r).then(|| &r[..HASH_PART_LEN]);
                let Some(e) = hash.and_then(|h| cache.entry_of(h)) else {
                    continue;
                };
                if seen.insert(e.clone()) {
                    todo.push(e);
                }
            }
        }
    }
    manifest(out, written)
}

/// Writes the NAR of each local path (a store path, or any file, directory or
/// symlink: `nix-store --dump`'s bytes) into the corpus directory `out`.
pub fn from_paths(
    paths: &[PathBuf],
    out: &Path,
    progress: &mut dyn FnMut(usize, usize, &str),
) -> Result<usize, Error> {
    let mut written = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        progress(i, paths.len(), &path.display().to_string());
        let base = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty() && n != "." && n != "..")
            .ok_or_else(|| Error::NoName { path: path.clone() })?;
        let dest = out.join(format!("{base}.nar"));
        let file = create(&dest)?;
        let file = narfs_core::nar::dump_path(path, BufWriter::new(file)).map_err(|source| {
            Error::Dump {
                path: path.clone(),
                source,
            }
        })?;
        finish(file, &dest)?;
        written.push(Written {
            base,
            store_path: path.display().to_string(),
        });
    }
    manifest(out, written)
}

/// Copies one NAR out of the cache, checked against its narinfo.
fn write_nar(cache: &dyn BinaryCache, info: &NarInfo, out: &Path) -> Result<Written, Error> {
    let base = info.base_name().to_string();
    let mismatch = || Error::NarMismatch {
        path: info.store_path.clone(),
    };
    if base.is_empty() || base.contains('/') {
        return Err(mismatch());
    }
    let mut nar = cache.open_nar(info).map_err(|source| Error::Cache {
        cache: cache.location(),
        source,
    })?;
    let dest = out.join(format!("{base}.nar"));
    let mut file = BufWriter::new(create(&dest)?);
    let (mut sha, mut size) = (Sha256::new(), 0u64);
    let mut buf = vec![0; 1 << 20];
    loop {
        let n = nar.read(&mut buf).map_err(|source| Error::ReadCacheNar {
            path: info.store_path.clone(),
            source,
        })?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        size += n as u64;
        write(&mut file, &buf[..n], &dest)?;
    }
    if size != info.nar_size || sha.finalize()[..] != info.nar_hash[..] {
        return Err(mismatch());
    }
    finish(file, &dest)?;
    Ok(Written {
        base,
        store_path: info.store_path.clone(),
    })
}

fn create(path: &Path) -> Result<File, Error> {
    File::create_new(path).map_err(|source| Error::WriteCorpus {
        path: path.to_path_buf(),
        source,
    })
}

fn write(w: &mut impl Write, data: &[u8], path: &Path) -> Result<(), Error> {
    w.write_all(data).map_err(|source| Error::WriteCorpus {
        path: path.to_path_buf(),
        source,
    })
}

fn finish(w: BufWriter<File>, path: &Path) -> Result<(), Error> {
    let error = |source| Error::WriteCorpus {
        path: path.to_path_buf(),
        source,
    };
    w.into_inner()
        .map_err(|e| error(e.into_error()))?
        .sync_all()
        .map_err(error)
}

/// The manifest of what was written, in package, then version order.
fn manifest(out: &Path, mut written: Vec<Written>) -> Result<usize, Error> {
    written.sort_by(|a, b| {
        let ((pa, va), (pb, vb)) = (split_name(&a.base), split_name(&b.base));
        pa.cmp(pb)
            .then_with(|| natural_cmp(va, vb))
            .then_with(|| a.base.cmp(&b.base))
    });
    let mut text = String::from("file\tpackage\tversion\tstore_path\n");
    for w in &written {
        let (package, version) = split_name(&w.base);
        let clean = |s: &str| s.replace(['\t', '\n'], " ");
        text.push_str(&format!(
            "{}.nar\t{}\t{}\t{}\n",
            w.base,
            clean(package),
            clean(version),
            clean(&w.store_path)
        ));
    }
    let path = out.join("MANIFEST.tsv");
    fs::write(&path, text).map_err(|source| Error::WriteCorpus { path, source })?;
    Ok(written.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_paths_become_a_corpus_in_version_order() {
        let tmp = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for v in ["1.10", "1.9", "0.1"] {
            let name = if v == "0.1" { "other" } else { "pkg" };
            let dir = tmp.path().join(format!("{name}-{v}"));
            fs::create_dir(&dir).unwrap();
            fs::write(dir.join("file"), format!("version {v}\n")).unwrap();
            paths.push(dir);
        }
        let out = tmp.path().join("corpus");
        fs::create_dir(&out).unwrap();
        let mut seen = Vec::new();
        let n = from_paths(&paths, &out, &mut |done, total, name| {
            seen.push((done, total, name.to_string()))
        })
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(seen.len(), 3);
        let items = crate::corpus::list(&out).unwrap();
        let names: Vec<_> = items.iter().map(|i| i.name.as_str()).collect();
        assert_eq!(names, ["other-0.1.nar", "pkg-1.9.nar", "pkg-1.10.nar"]);
        assert_eq!(items[2].package, "pkg");
        let mut nar = Vec::new();
        narfs_core::nar::dump_path(&paths[0], &mut nar).unwrap();
        assert_eq!(fs::read(out.join("pkg-1.10.nar")).unwrap(), nar);
        // A second run into the same directory refuses to overwrite.
        assert!(from_paths(&paths, &out, &mut |_, _, _| {}).is_err());
        assert!(from_paths(
            &[tmp.path().join("missing")],
            &tmp.path().join("x"),
            &mut |_, _, _| {}
        )
        .is_err());
    }
}
