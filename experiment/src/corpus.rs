//! Which NARs a corpus directory holds, in which order, and which package each is a
//! version of: the `file` column of its `MANIFEST.tsv` when there is one (the order
//! the corpus was built in, versions in order; its `package` column, when present,
//! names the series), else every `*.nar` file, names compared with digit runs as
//! numbers so that `pkg-1.9.nar` comes before `pkg-1.10.nar`.
//!
//! A NAR without a `package` column is given one by [`split_name`]: Nix's
//! `builtins.parseDrvName` rule, the name up to the first `-` followed by a digit
//! (`pydantic-2.7.1.nar` → `pydantic`, `openssl-3.0.17-1~deb12u2.nar` → `openssl`,
//! `<hash>-hello-2.12.nar` → `hello` once the hash is dropped). The versions of one
//! package form a series: the update cost is what each version adds to a client
//! holding the earlier ones.

use std::cmp::Ordering;
use std::fs;
use std::path::{Path, PathBuf};

use crate::Error;

/// One NAR of the corpus.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Item {
    /// The file name, as the report shows it.
    pub name: String,
    /// Where it is read from.
    pub path: PathBuf,
    /// Its size in bytes, when the corpus was listed.
    pub size: u64,
    /// The package it is a version of (see the module doc).
    pub package: String,
}

/// Lists the corpus in `dir`.
pub fn list(dir: &Path) -> Result<Vec<Item>, Error> {
    let manifest = dir.join("MANIFEST.tsv");
    let names: Vec<(String, Option<String>)> = if manifest.is_file() {
        from_manifest(&manifest)?
    } else {
        let mut names = Vec::new();
        let list_error = |source| Error::ListCorpus {
            dir: dir.to_path_buf(),
            source,
        };
        for entry in fs::read_dir(dir).map_err(list_error)? {
            let name = entry
                .map_err(list_error)?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if name.ends_with(".nar") {
                names.push(name);
            }
        }
        names.sort_by(|a, b| natural_cmp(a, b));
        names.into_iter().map(|n| (n, None)).collect()
    };
    if names.is_empty() {
        return Err(Error::EmptyCorpus {
            dir: dir.to_path_buf(),
        });
    }
    names
        .into_iter()
        .map(|(name, package)| {
            let path = dir.join(&name);
            let package = package.unwrap_or_else(|| split_name(&name).0.to_string());
            match fs::metadata(&path) {
                Ok(meta) => Ok(Item {
                    name,
                    path,
                    size: meta.len(),
                    package,
                }),
                Err(source) => Err(Error::ReadNar { path, source }),
            }
        })
        .collect()
}

/// The `file` column of a manifest, in order, with its `package` column if it has one.
fn from_manifest(path: &Path) -> Result<Vec<(String, Option<String>)>, Error> {
    let text = fs::read_to_string(path).map_err(|source| Error::ReadManifest {
        path: path.to_path_buf(),
        source,
    })?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().unwrap_or_default();
    let Some(col) = header.split('\t').position(|h| h == "file") else {
        return Err(Error::NoFileColumn {
            path: path.to_path_buf(),
        });
    };
    let package_col = header.split('\t').position(|h| h == "package");
    let mut names = Vec::new();
    for (i, line) in lines.enumerate() {
        let package = package_col
            .and_then(|c| line.split('\t').nth(c))
            .filter(|p| !p.is_empty())
            .map(str::to_string);
        match line.split('\t').nth(col) {
            Some(name) if !name.is_empty() && !name.contains('/') => {
                names.push((name.to_string(), package))
            }
            _ => {
                return Err(Error::BadManifestLine {
                    path: path.to_path_buf(),
                    line: i + 2,
                })
            }
        }
    }
    Ok(names)
}

/// A NAR's or store path's name split into package and version by Nix's
/// `parseDrvName` rule: the package is everything before the first `-` followed by a
/// digit, the version the rest (empty if there is none). A `.nar` extension and a
/// store path's `<hash>-` prefix are dropped first.
pub fn split_name(name: &str) -> (&str, &str) {
    let name = name.strip_suffix(".nar").unwrap_or(name);
    let name = match name.split_once('-') {
        Some((hash, rest)) if narfs_nix::store_path::is_hash_part(hash) => rest,
        _ => name,
    };
    let b = name.as_bytes();
    match (0..b.len()).find(|&i| b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit)) {
        Some(i) => (&name[..i], &name[i + 1..]),
        None => (name, ""),
    }
}

/// Compares names with runs of ASCII digits taken as numbers, ignoring a `.nar`
/// extension (so that `p-1.9.nar` comes before `p-1.9.1.nar`).
pub fn natural_cmp(a: &str, b: &str) -> Ordering {
    let strip = |s: &'_ str| s.strip_suffix(".nar").unwrap_or(s).as_bytes().to_vec();
    let (a, b) = (strip(a), strip(b));
    let (mut a, mut b) = (&a[..], &b[..]);
    loop {
        match (a.first(), b.first()) {
            (None, None) => return Ordering::Equal,
            (None, Some(_)) => return Ordering::Less,
            (Some(_), None) => return Ordering::Greater,
            (Some(x), Some(y)) if x.is_ascii_digit() && y.is_ascii_digit() => {
                let (da, ra) = split_digits(a);
                let (db, rb) = split_digits(b);
                let (ta, tb) = (trim_zeros(da), trim_zeros(db));
                let ord = ta.len().cmp(&tb.len()).then(ta.cmp(tb));
                if ord != Ordering::Equal {
                    return ord;
                }
                (a, b) = (ra, rb);
            }
            (Some(x), Some(y)) => {
                if x != y {
                    return x.cmp(y);
                }
                (a, b) = (&a[1..], &b[1..]);
            }
        }
    }
}

fn split_digits(s: &[u8]) -> (&[u8], &[u8]) {
    let n = s.iter().take_while(|c| c.is_ascii_digit()).count();
    s.split_at(n)
}

fn trim_zeros(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&c| c == b'0').count();
    &s[n..]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_numbers() {
        let mut v = vec![
            "p-1.10.nar",
            "p-1.9.nar",
            "o-2.nar",
            "p-1.9.1.nar",
            "p-1.009.nar",
        ];
        v.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(
            v,
            [
                "o-2.nar",
                "p-1.9.nar",
                "p-1.009.nar",
                "p-1.9.1.nar",
                "p-1.10.nar"
            ]
        );
    }

    #[test]
    fn names_split_as_nix_does() {
        assert_eq!(split_name("pydantic-2.7.1.nar"), ("pydantic", "2.7.1"));
        assert_eq!(
            split_name("openssl-3.0.17-1~deb12u2.nar"),
            ("openssl", "3.0.17-1~deb12u2")
        );
        assert_eq!(
            split_name("charset-normalizer-3.3.0.nar"),
            ("charset-normalizer", "3.3.0")
        );
        assert_eq!(
            split_name("0c8aq3prdbq8ixiw5q4l5xq6x0qpq0nm-hello-2.12"),
            ("hello", "2.12")
        );
        assert_eq!(split_name("source"), ("source", ""));
        assert_eq!(split_name("python3-3.11.9-env"), ("python3", "3.11.9-env"));
    }

    #[test]
    fn manifest_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        for n in ["b.nar", "a.nar"] {
            fs::write(dir.path().join(n), b"x").unwrap();
        }
        assert_eq!(list(dir.path()).unwrap()[0].name, "a.nar");
        fs::write(
            dir.path().join("MANIFEST.tsv"),
            "package\tfile\nq\tb.nar\nq\ta.nar\n",
        )
        .unwrap();
        let items = list(dir.path()).unwrap();
        assert_eq!(
            items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
            ["b.nar", "a.nar"]
        );
        assert_eq!(items[0].package, "q", "the manifest's package column");
        fs::write(dir.path().join("MANIFEST.tsv"), "file\nmissing.nar\n").unwrap();
        assert!(list(dir.path()).is_err());
        fs::write(dir.path().join("MANIFEST.tsv"), "name\nb.nar\n").unwrap();
        assert!(list(dir.path()).is_err());
    }

    #[test]
    fn empty_corpus_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(list(dir.path()).is_err());
    }
}
