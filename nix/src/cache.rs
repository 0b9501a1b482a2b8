//! Reading a file binary cache, as `nix copy --to file://DIR` writes one:
//! `nix-cache-info`, `<hash>.narinfo` beside it, and the (compressed) NARs the
//! narinfos' `URL`s name, usually `nar/<file hash>.nar[.xz|.zst|.bz2]`; or as
//! `guix publish --cache=DIR` writes one ([`Layout::GuixPublish`]): `hashes/<hash>`,
//! and per compression `<compression>/<hash>-<name>.narinfo` (hard links of one file
//! listing every compression) beside `<compression>/<hash>-<name>.nar`.
//!
//! The cache is untrusted. Every file is opened beneath the cache's directory one
//! component at a time, never following a symlink (`openat` with `O_NOFOLLOW`), so no
//! `URL`, planted symlink or renamed directory makes narfs read outside it; and a NAR
//! is decompressed through a [`NarStream`] that stops one byte past its `NarSize`, so a
//! decompression bomb costs at most that much work.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::nar_stream::{decompress, Decompress, NarStream};
use crate::narinfo::{NarInfo, NarInfoError, MAX_NARINFO};
use crate::store_path::StoreDir;

/// Largest `nix-cache-info` read (real ones are three short lines).
const MAX_CACHE_INFO: u64 = 64 << 10;

/// Read buffer in front of a decompressor.
const READ_BUFFER: usize = 256 << 10;

/// How a cache directory is laid out.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layout {
    /// `nix copy --to file://DIR`: `nix-cache-info`, `<hash>.narinfo`, NARs where their
    /// `URL` says.
    Nix,
    /// `guix publish --cache=DIR`: `hashes/`, `<compression>/<hash>-<name>.narinfo`
    /// and `.nar`; a `URL` `nar/<compression>/<base name>` (`nar/<base name>` for
    /// `none`) is the file `<compression>/<base name>.nar`.
    GuixPublish,
}

/// Why the cache, or one entry of it, cannot be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The directory has no readable `nix-cache-info`.
    #[error("{} is not a Nix binary cache (cannot read its nix-cache-info)", dir.display())]
    NotACache {
        /// The cache directory.
        dir: PathBuf,
        /// Why it could not be read.
        #[source]
        source: io::Error,
    },
    /// `nix-cache-info` names a store directory other than the one asked for.
    #[error("{}: StoreDir is {found}, narfs serves {expected} only", path.display())]
    OtherStoreDir {
        /// The `nix-cache-info` file.
        path: PathBuf,
        /// The `StoreDir:` it gives (cut to 200 characters).
        found: String,
        /// The store directory asked for.
        expected: StoreDir,
    },
    /// Listing the cache directory failed.
    #[error("cannot list {}", dir.display())]
    List {
        /// The cache directory.
        dir: PathBuf,
        /// The listing error.
        #[source]
        source: io::Error,
    },
    /// A file of the cache could not be opened or read.
    #[error("cannot open {}", path.display())]
    Open {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The path is a symlink, or passes through one: never followed out of the cache.
    #[error("{} is, or passes through, a symlink (not followed)", path.display())]
    Symlink {
        /// The path, inside the cache.
        path: PathBuf,
    },
    /// The path is not a regular file (a directory, a FIFO, a device, ...).
    #[error("{} is not a regular file", path.display())]
    NotAFile {
        /// The path, inside the cache.
        path: PathBuf,
    },
    /// A narinfo does not parse.
    #[error("the narinfo does not parse")]
    NarInfo(#[from] NarInfoError),
    /// The directory is neither a Nix cache (no `nix-cache-info`) nor a `guix publish`
    /// cache (no `hashes/` directory).
    #[error("{} is not a Nix binary cache (no nix-cache-info), nor a guix publish cache (no hashes/)", dir.display())]
    UnknownLayout {
        /// The cache directory.
        dir: PathBuf,
    },
    /// A narinfo's file name is not the hash part (Nix) or base name (Guix) of its
    /// `StorePath`.
    #[error("its StorePath {0} does not match the file name")]
    NameMismatch(String),
    /// A narinfo's `URL` is not a plain relative path inside the cache.
    #[error("URL {0:?} is not a relative path inside the cache")]
    BadUrl(String),
    /// A narinfo's `Compression` is not one narfs reads.
    #[error("compression {0:?} is not supported (none, zstd, gzip, xz, lzip, bzip2)")]
    Compression(String),
    /// The cache cannot be listed (an HTTP cache): the store paths must be given.
    #[error("{0} cannot be listed: give the store paths to import")]
    Unlistable(String),
    /// An HTTP request to the cache failed.
    #[cfg(feature = "http-cache")]
    #[error("GET {url}")]
    Http {
        /// The URL asked for.
        url: String,
        /// Why it failed.
        #[source]
        source: crate::http_cache::HttpError,
    },
    /// The decompressor could not start.
    #[error("cannot start decompressing {}", path.display())]
    Decompress {
        /// The NAR file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
}

/// A file binary cache, opened: its directory is held open, so every file is
/// resolved beneath the directory checked at [`FileCache::open`].
#[derive(Debug)]
pub struct FileCache {
    dir: PathBuf,
    fd: OwnedFd,
    store_dir: StoreDir,
    layout: Layout,
}

impl FileCache {
    /// Opens the cache at `dir`, which must hold a `nix-cache-info` whose `StoreDir`
    /// (if given) is `store_dir`.
    pub fn open(dir: &Path, store_dir: StoreDir) -> Result<FileCache, CacheError> {
        let not_a_cache = |source| CacheError::NotACache {
            dir: dir.to_path_buf(),
            source,
        };
        let cache = FileCache::open_dir(dir, store_dir, Layout::Nix)?;
        let mut text = String::new();
        cache
            .open_file(Path::new("nix-cache-info"))
            .map_err(|e| match e {
                CacheError::Open { source, .. } => not_a_cache(source),
                other => not_a_cache(io::Error::other(other.to_string())),
            })?
            .take(MAX_CACHE_INFO)
            .read_to_string(&mut text)
            .map_err(not_a_cache)?;
        for line in text.lines() {
            if let Some(found) = line.strip_prefix("StoreDir: ") {
                if found.trim() != store_dir.as_str() {
                    return Err(CacheError::OtherStoreDir {
                        path: dir.join("nix-cache-info"),
                        found: found.chars().take(200).collect(),
                        expected: store_dir,
                    });
                }
            }
        }
        Ok(cache)
    }

    /// Opens the cache `guix publish --cache=DIR` wrote at `dir` (it must hold a
    /// `hashes/` directory); its store paths are in `/gnu/store`.
    pub fn open_guix_publish(dir: &Path) -> Result<FileCache, CacheError> {
        let cache = FileCache::open_dir(dir, StoreDir::Guix, Layout::GuixPublish)?;
        cache
            .open_subdir(OsStr::new("hashes"))
            .map_err(|e| match e {
                CacheError::Open { source, .. } => CacheError::NotACache {
                    dir: dir.to_path_buf(),
                    source,
                },
                other => other,
            })?;
        Ok(cache)
    }

    /// Opens `dir` as the cache it is: a Nix cache if it has a `nix-cache-info`, else
    /// a `guix publish` cache if it has `hashes/`.
    pub fn detect(dir: &Path) -> Result<FileCache, CacheError> {
        let probe = FileCache::open_dir(dir, StoreDir::Nix, Layout::Nix)?;
        if probe.open_file(Path::new("nix-cache-info")).is_ok() {
            FileCache::open(dir, StoreDir::Nix)
        } else if probe.open_subdir(OsStr::new("hashes")).is_ok() {
            FileCache::open_guix_publish(dir)
        } else {
            Err(CacheError::UnknownLayout {
                dir: dir.to_path_buf(),
            })
        }
    }

    fn open_dir(dir: &Path, store_dir: StoreDir, layout: Layout) -> Result<FileCache, CacheError> {
        let not_a_cache = |source| CacheError::NotACache {
            dir: dir.to_path_buf(),
            source,
        };
        let dir_file = File::open(dir).map_err(not_a_cache)?;
        if !dir_file.metadata().map_err(not_a_cache)?.is_dir() {
            return Err(not_a_cache(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        Ok(FileCache {
            dir: dir.to_path_buf(),
            fd: OwnedFd::from(dir_file),
            store_dir,
            layout,
        })
    }

    /// How the cache is laid out.
    pub fn layout(&self) -> Layout {
        self.layout
    }

    /// The store directory of its store paths.
    pub fn store_dir(&self) -> StoreDir {
        self.store_dir
    }

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every `*.narinfo` that is a regular file, sorted: directly in a Nix cache; in a
    /// `guix publish` cache, in its compression directories (`hashes/` aside), one per
    /// file name (the first directory's, in name order: the others are links to it).
    pub fn narinfos(&self) -> Result<Vec<PathBuf>, CacheError> {
        let list = |source| CacheError::List {
            dir: self.dir.clone(),
            source,
        };
        let listed = |dir: &Path| -> Result<Vec<PathBuf>, CacheError> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(dir).map_err(list)? {
                let e = e.map_err(list)?;
                let p = e.path();
                if p.extension().is_some_and(|x| x == "narinfo")
                    && e.file_type().map_err(list)?.is_file()
                {
                    out.push(p);
                }
            }
            out.sort();
            Ok(out)
        };
        if self.layout == Layout::Nix {
            return listed(&self.dir);
        }
        let mut dirs = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(list)? {
            let e = e.map_err(list)?;
            // Not followed: a symlinked directory is not part of the cache.
            if e.file_type().map_err(list)?.is_dir() && e.file_name() != "hashes" {
                dirs.push(e.path());
            }
        }
        dirs.sort();
        let mut seen = std::collections::HashSet::new();
        let mut out = Vec::new();
        for d in dirs {
            for p in listed(&d)? {
                if seen.insert(p.file_name().map(OsStr::to_os_string)) {
                    out.push(p);
                }
            }
        }
        out.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(out)
    }

    /// Reads and parses the narinfo `path` (one [`FileCache::narinfos`] listed), which
    /// must be named by its store path's hash part.
    pub fn read_narinfo(&self, path: &Path) -> Result<NarInfo, CacheError> {
        let name = path.file_name().map(Path::new).unwrap_or(path);
        let rel = match self.layout {
            Layout::Nix => name,
            // `<compression>/<name>`: the listed path below the cache directory.
            Layout::GuixPublish => path.strip_prefix(&self.dir).unwrap_or(name),
        };
        let mut bytes = Vec::new();
        self.open_file(rel)?
            .take(MAX_NARINFO as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CacheError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let info = NarInfo::parse_in(self.store_dir, &bytes)?;
        let stem = match self.layout {
            Layout::Nix => info.hash_part(),
            Layout::GuixPublish => info.base_name(),
        };
        if name.file_stem() != Some(OsStr::new(stem)) {
            return Err(CacheError::NameMismatch(info.store_path));
        }
        Ok(info)
    }

    /// The NAR of `info`, decompressed as it is read and cut one byte past its
    /// `NarSize` (the read then fails with [`crate::NarSizeExceeded`]).
    pub fn open_nar(&self, info: &NarInfo) -> Result<NarStream, CacheError> {
        let url = Path::new(&info.url);
        let plain = crate::source::is_plain_relative(&info.url)
            && url.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(CacheError::BadUrl(info.url.clone()));
        }
        let guix_file;
        let rel = match self.layout {
            Layout::Nix => url,
            Layout::GuixPublish => {
                guix_file = guix_nar_file(&info.url, &info.compression)
                    .ok_or_else(|| CacheError::BadUrl(info.url.clone()))?;
                &guix_file
            }
        };
        let file = self.open_file(rel)?;
        let path = self.dir.join(rel);
        let buffered = BufReader::with_capacity(READ_BUFFER, file);
        let inner = decompress(&info.compression, buffered).map_err(|e| match e {
            Decompress::Unsupported => CacheError::Compression(info.compression.clone()),
            Decompress::Io(source) => CacheError::Decompress { path, source },
        })?;
        Ok(NarStream::new(inner, info.nar_size))
    }

    /// Opens the directory `name` directly beneath the cache, not through a symlink.
    fn open_subdir(&self, name: &OsStr) -> Result<OwnedFd, CacheError> {
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        openat(self.fd.as_fd(), name, flags).map_err(|source| CacheError::Open {
            path: self.dir.join(name),
            source,
        })
    }

    /// Opens the regular file `rel` beneath the cache, one component at a time,
    /// refusing a symlink at any of them.
    fn open_file(&self, rel: &Path) -> Result<File, CacheError> {
        let path = self.dir.join(rel);
        let open_err = |source: io::Error| {
            if source.raw_os_error() == Some(libc::ELOOP) {
                CacheError::Symlink { path: path.clone() }
            } else {
                CacheError::Open {
                    path: path.clone(),
                    source,
                }
            }
        };
        let names: Vec<&OsStr> = rel
            .components()
            .map(|c| match c {
                Component::Normal(n) => Ok(n),
                _ => Err(CacheError::BadUrl(rel.display().to_string())),
            })
            .collect::<Result<_, _>>()?;
        let Some((last, dirs)) = names.split_last() else {
            return Err(CacheError::BadUrl(String::new()));
        };
        let mut dir: Option<OwnedFd> = None;
        for name in dirs {
            let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
            let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
            dir = Some(
                openat(at, name, flags)
                    .map_err(|e| {
                        // A symlink to a directory gives ELOOP, to a file ENOTDIR: both are
                        // refused, and said as what they are.
                        if e.raw_os_error() == Some(libc::ENOTDIR) && is_symlink_at(at, name) {
                            io::Error::from_raw_os_error(libc::ELOOP)
                        } else {
                            e
                        }
                    })
                    .map_err(open_err)?,
            );
        }
        let at = dir.as_ref().map_or(self.fd.as_fd(), |d| d.as_fd());
        // O_NONBLOCK: opening a FIFO planted in the cache must not wait for a writer.
        let flags =
            libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK | libc::O_NOCTTY;
        let file = File::from(openat(at, last, flags).map_err(open_err)?);
        let meta = file.metadata().map_err(open_err)?;
        if !meta.is_file() {
            return Err(CacheError::NotAFile { path });
        }
        Ok(file)
    }
}

/// The file of a `guix publish` cache holding the NAR at `url`: `nar/<compression>/<base
/// name>` (`nar/<base name>` uncompressed) is `<compression>/<base name>.nar`.
fn guix_nar_file(url: &str, compression: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("nar/")?;
    let base = match rest.split_once('/') {
        Some((c, base)) if c == compression => base,
        None if compression == "none" => rest,
        _ => return None,
    };
    if !crate::store_path::is_base_name(base) {
        return None;
    }
    Some(Path::new(compression).join(format!("{base}.nar")))
}

/// `openat(2)` of one path component.
fn openat(dir: BorrowedFd<'_>, name: &OsStr, flags: libc::c_int) -> io::Result<OwnedFd> {
    let name =
        CString::new(name.as_bytes()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `dir` is an open descriptor for the duration of the call and `name` a
    // NUL-terminated string; a non-negative result is a new descriptor we own.
    let fd = unsafe { libc::openat(dir.as_raw_fd(), name.as_ptr(), flags) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by openat and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Whether `name` in `dir` is a symlink (not followed).
fn is_symlink_at(dir: BorrowedFd<'_>, name: &OsStr) -> bool {
    let Ok(name) = CString::new(name.as_bytes()) else {
        return false;
    };
    // SAFETY: `st` is written by fstatat before it is read, only when it succeeds.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        libc::fstatat(
            dir.as_raw_fd(),
            name.as_ptr(),
            &mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        ) == 0
            && (st.st_mode & libc::S_IFMT) == libc::S_IFLNK
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "guix_cache_tests.rs"]
mod guix_tests;
