//! The base of a delta fetch: which held root the new one's files are compressed
//! against, and its files by path.
//!
//! By default ([`default_base`]) the base is a root the store records under a name of
//! the same package as one of the names the server gives the new root (its probe
//! answer), with another version or another root: names are split as Nix's
//! `parseDrvName` does (the package is what comes before the first `-` followed by
//! something other than a letter: `python3.11-numpy-1.26.4` is package
//! `python3.11-numpy`, version `1.26.4`), after the `/nix/store/<hash>-` of a store
//! path. Of several candidates, the highest version not above the new one, else the
//! lowest above it (versions compared as Nix's `compareVersions` does, in short);
//! then the most recent record. `fetch --base NAME|CID` names bases instead.
//!
//! [`BaseFiles`] lists a base's regular files by path (the walk's convention: names
//! joined by `/`, HAMT shards see-through), from the store, each node verified as
//! read. Its memory is one entry per file, at most [`MAX_FILES`]. A path the base
//! does not have is paired by its [`versionless`] form when exactly one base file has
//! the same: version numbers and hashes in names change between versions
//! (`numpy-1.26.3.dist-info/RECORD`, `scipy.libs/libopenblasp-r0-23e5df77.3.21.dev.so`)
//! while the file is mostly the same. A wrong pairing costs only compression: every
//! block is verified against the new DAG's CIDs whatever the reference.

use std::cmp::Ordering;
use std::collections::HashMap;

use narfs_core::block::{DAG_PB, RAW};
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::{DataType, UnixFsData};
use narfs_core::{Cid, Encoding};
use narfs_decoder::DecodeError;
use narfs_store::{RootRecord, Store};

/// Files listed per fetch, over all its bases.
pub const MAX_FILES: usize = 1 << 20;

/// The regular files of the bases, by path; the first base holding a path wins.
#[derive(Debug, Default)]
pub struct BaseFiles {
    files: HashMap<String, Cid>,
    /// By [`versionless`] path: the one file with that form, or none if several.
    loose: HashMap<String, Option<Cid>>,
}

impl BaseFiles {
    /// Lists the files of `roots` (held: recorded in `store`, so complete).
    pub fn load(store: &Store, roots: &[Cid]) -> Result<BaseFiles, DecodeError> {
        let mut files = HashMap::new();
        for root in roots {
            let mut stack = vec![(*root, String::new(), true)];
            while let Some((cid, path, entry)) = stack.pop() {
                if files.len() >= MAX_FILES {
                    break;
                }
                if cid.codec() == RAW {
                    files.entry(path).or_insert(cid);
                    continue;
                }
                if cid.codec() != DAG_PB {
                    continue;
                }
                let data = narfs_decoder::fetch(store, &cid, &path)?;
                let Ok(node) = PBNode::decode(&data) else {
                    continue;
                };
                let kind = node
                    .data
                    .as_deref()
                    .and_then(|d| UnixFsData::decode(d).ok())
                    .map(|fs| fs.data_type);
                match kind {
                    Some(DataType::File | DataType::Raw) if entry => {
                        files.entry(path).or_insert(cid);
                    }
                    Some(DataType::Directory) => {
                        for l in node.links.iter() {
                            let name = l.name.as_deref().unwrap_or_default();
                            stack.push((l.hash, join(&path, name), true));
                        }
                    }
                    Some(DataType::HamtShard) => {
                        for l in node.links.iter() {
                            let name = l.name.as_deref().unwrap_or_default();
                            match name.get(2..) {
                                Some(n) if !n.is_empty() => {
                                    stack.push((l.hash, join(&path, n), true))
                                }
                                _ => stack.push((l.hash, path.clone(), false)),
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut loose: HashMap<String, Option<Cid>> = HashMap::new();
        for (path, cid) in &files {
            loose
                .entry(versionless(path))
                .and_modify(|c| *c = None)
                .or_insert(Some(*cid));
        }
        Ok(BaseFiles { files, loose })
    }

    /// The base's file at `path`, else the one file whose path has the same
    /// [`versionless`] form.
    pub fn at(&self, path: &str) -> Option<&Cid> {
        self.files
            .get(path)
            .or_else(|| self.loose.get(&versionless(path))?.as_ref())
    }

    pub fn len(&self) -> usize {
        self.files.len()
    }

    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_string()
    } else {
        format!("{path}/{name}")
    }
}

/// `path` with every run of hex digits and dots that holds a decimal digit replaced by
/// `#`: what stays of a name when its version and hash change.
pub fn versionless(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.bytes().any(|b| b.is_ascii_digit()) {
            out.push('#');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in path.chars() {
        if c.is_ascii_hexdigit() || c == '.' {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// The package and version of a name or store path (`/nix/store/<hash>-<name>`).
pub fn package_of(name: &str) -> (&str, &str) {
    let base = name.rsplit('/').next().unwrap_or(name);
    // A store path's 32-character hash part.
    let base = match base.split_once('-') {
        Some((hash, rest))
            if name.contains('/')
                && hash.len() == 32
                && hash.bytes().all(|b| b.is_ascii_alphanumeric()) =>
        {
            rest
        }
        _ => base,
    };
    let bytes = base.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        if b == b'-' && bytes.get(i + 1).is_some_and(|c| !c.is_ascii_alphabetic()) {
            return (&base[..i], &base[i + 1..]);
        }
    }
    (base, "")
}

/// Nix's `compareVersions`, in short: components split at `.` and `-` and between
/// digits and letters, numbers compared as numbers, a number above a word, `pre`
/// below anything.
pub fn compare_versions(a: &str, b: &str) -> Ordering {
    let (ca, cb) = (components(a), components(b));
    for i in 0..ca.len().max(cb.len()) {
        let (x, y) = (
            ca.get(i).copied().unwrap_or(""),
            cb.get(i).copied().unwrap_or(""),
        );
        let o = match (x.parse::<u64>(), y.parse::<u64>()) {
            (Ok(m), Ok(n)) => m.cmp(&n),
            _ if x == y => Ordering::Equal,
            _ if x.is_empty() && y != "pre" => Ordering::Less,
            _ if y.is_empty() && x != "pre" => Ordering::Greater,
            _ if x == "pre" => Ordering::Less,
            _ if y == "pre" => Ordering::Greater,
            (Ok(_), Err(_)) => Ordering::Greater,
            (Err(_), Ok(_)) => Ordering::Less,
            _ => x.cmp(y),
        };
        if o != Ordering::Equal {
            return o;
        }
    }
    Ordering::Equal
}

fn components(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = v.as_bytes();
    let mut start = 0;
    for i in 0..=bytes.len() {
        let cut = i == bytes.len()
            || matches!(bytes[i], b'.' | b'-')
            || (i > start && bytes[i].is_ascii_digit() != bytes[i - 1].is_ascii_digit());
        if cut {
            if i > start {
                out.push(&v[start..i]);
            }
            start = if i < bytes.len() && matches!(bytes[i], b'.' | b'-') {
                i + 1
            } else {
                i
            };
        }
    }
    out
}

/// The held root to use as base for `root`, which the server names `names`: see the
/// module doc. Only tree encodings (a fallback's one zstd file has nothing to share).
pub fn default_base(
    store: &Store,
    names: &[String],
    root: &Cid,
) -> Result<Option<RootRecord>, narfs_store::Error> {
    let wanted: Vec<(&str, &str)> = names
        .iter()
        .map(|n| package_of(n))
        .filter(|(p, _)| !p.is_empty())
        .collect();
    if wanted.is_empty() {
        return Ok(None);
    }
    let root = root.to_string();
    // (below or equal, version, created, record) of the best candidate.
    let mut best: Option<(bool, String, RootRecord)> = None;
    store.each_root(|r| {
        if r.root == root || r.encoding != Encoding::UnixFs {
            return;
        }
        let mut theirs: Vec<&str> = r.name.iter().map(String::as_str).collect();
        theirs.extend(r.narinfo.as_ref().map(|n| n.store_path.as_str()));
        for name in theirs {
            let (pkg, version) = package_of(name);
            let Some(&(_, new)) = wanted.iter().find(|(p, _)| *p == pkg) else {
                continue;
            };
            let below = compare_versions(version, new) != Ordering::Greater;
            let better = match &best {
                None => true,
                Some((b_below, b_version, b_rec)) => match (below, *b_below) {
                    (true, false) => true,
                    (false, true) => false,
                    _ => {
                        let o = compare_versions(version, b_version);
                        let o = if below { o } else { o.reverse() };
                        o == Ordering::Greater
                            || (o == Ordering::Equal && r.created > b_rec.created)
                    }
                },
            };
            if better {
                best = Some((below, version.to_string(), r.clone()));
            }
            break;
        }
    })?;
    Ok(best.map(|(_, _, r)| r))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_split_as_nix_does() {
        assert_eq!(package_of("numpy-1.26.4"), ("numpy", "1.26.4"));
        assert_eq!(
            package_of("/nix/store/0123456789abcdfghijklmnpqrsvwxyz-python3.11-numpy-1.26.4"),
            ("python3.11-numpy", "1.26.4")
        );
        assert_eq!(package_of("hello"), ("hello", ""));
        assert_eq!(package_of("tzdata-2024.1"), ("tzdata", "2024.1"));
        assert_eq!(package_of("foo-bar-2.0-dev"), ("foo-bar", "2.0-dev"));
    }

    #[test]
    fn versionless_paths_pair_renamed_files() {
        let v = versionless;
        assert_eq!(
            v("scipy.libs/libopenblasp-r0-23e5df77.3.21.dev.so"),
            v("scipy.libs/libopenblasp-r0-24bff013.3.26.dev.so")
        );
        assert_eq!(
            v("numpy-1.26.3.dist-info/RECORD"),
            v("numpy-1.26.4.dist-info/RECORD")
        );
        assert_eq!(v("lib/face.py"), "lib/face.py");
        assert_ne!(v("lib/x1.py"), v("lib/y1.py"));
    }

    #[test]
    fn versions_compare_as_nix_does() {
        use Ordering::*;
        let c = compare_versions;
        assert_eq!(c("1.26.4", "1.26.10"), Less);
        assert_eq!(c("1.13.0", "1.12.0"), Greater);
        assert_eq!(c("2.1", "2.1"), Equal);
        assert_eq!(c("2.1", "2.1.1"), Less);
        assert_eq!(c("2.1pre1", "2.1"), Less);
        assert_eq!(c("1.0a", "1.0"), Greater);
        assert_eq!(c("1.0", "1.0b"), Less);
    }
}
