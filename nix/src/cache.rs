//! Reading a file binary cache, as `nix copy --to file://DIR` writes one:
//! `nix-cache-info`, `<hash>.narinfo` beside it, and the (compressed) NARs the
//! narinfos' `URL`s name, usually `nar/<file hash>.nar[.xz|.zst|.bz2]`.
//!
//! The cache is untrusted. Every file is opened beneath the cache's directory one
//! component at a time, never following a symlink (`openat` with `O_NOFOLLOW`), so no
//! `URL`, planted symlink or renamed directory makes narfs read outside it; and a NAR
//! is decompressed through a [`NarStream`] that stops one byte past its `NarSize`, so a
//! decompression bomb costs at most that much work.

use std::ffi::{CString, OsStr};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use crate::narinfo::{NarInfo, NarInfoError, MAX_NARINFO};
use crate::store_path::StoreDir;

/// Largest `nix-cache-info` read (real ones are three short lines).
const MAX_CACHE_INFO: u64 = 64 << 10;

/// Read buffer in front of a decompressor.
const READ_BUFFER: usize = 256 << 10;

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
    /// A narinfo's file name is not the hash part of its `StorePath`.
    #[error("its StorePath {0} does not match the file name")]
    NameMismatch(String),
    /// A narinfo's `URL` is not a plain relative path inside the cache.
    #[error("URL {0:?} is not a relative path inside the cache")]
    BadUrl(String),
    /// A narinfo's `Compression` is not one narfs reads.
    #[error("compression {0:?} is not supported (none, xz, zstd, bzip2)")]
    Compression(String),
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
}

impl FileCache {
    /// Opens the cache at `dir`, which must hold a `nix-cache-info` whose `StoreDir`
    /// (if given) is `store_dir`.
    pub fn open(dir: &Path, store_dir: StoreDir) -> Result<FileCache, CacheError> {
        let not_a_cache = |source| CacheError::NotACache {
            dir: dir.to_path_buf(),
            source,
        };
        let dir_file = File::open(dir).map_err(not_a_cache)?;
        if !dir_file.metadata().map_err(not_a_cache)?.is_dir() {
            return Err(not_a_cache(io::Error::from_raw_os_error(libc::ENOTDIR)));
        }
        let cache = FileCache {
            dir: dir.to_path_buf(),
            fd: OwnedFd::from(dir_file),
            store_dir,
        };
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

    /// The cache directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Every `*.narinfo` directly in the cache that is a regular file, sorted.
    pub fn narinfos(&self) -> Result<Vec<PathBuf>, CacheError> {
        let list = |source| CacheError::List {
            dir: self.dir.clone(),
            source,
        };
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).map_err(list)? {
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
    }

    /// Reads and parses the narinfo `path` (one [`FileCache::narinfos`] listed), which
    /// must be named by its store path's hash part.
    pub fn read_narinfo(&self, path: &Path) -> Result<NarInfo, CacheError> {
        let name = path.file_name().map(Path::new).unwrap_or(path);
        let mut bytes = Vec::new();
        self.open_file(name)?
            .take(MAX_NARINFO as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| CacheError::Open {
                path: path.to_path_buf(),
                source,
            })?;
        let info = NarInfo::parse_in(self.store_dir, &bytes)?;
        if name.file_stem() != Some(OsStr::new(info.hash_part())) {
            return Err(CacheError::NameMismatch(info.store_path));
        }
        Ok(info)
    }

    /// The NAR of `info`, decompressed as it is read and cut one byte past its
    /// `NarSize` (the read then fails with [`NarSizeExceeded`]).
    pub fn open_nar(&self, info: &NarInfo) -> Result<NarStream, CacheError> {
        let rel = Path::new(&info.url);
        let plain = !info.url.contains(':')
            && rel.components().next().is_some()
            && rel.components().all(|c| matches!(c, Component::Normal(_)));
        if !plain {
            return Err(CacheError::BadUrl(info.url.clone()));
        }
        let file = self.open_file(rel)?;
        let path = self.dir.join(rel);
        let buffered = BufReader::with_capacity(READ_BUFFER, file);
        let inner = decompress(&info.compression, buffered).map_err(|e| match e {
            Decompress::Unsupported => CacheError::Compression(info.compression.clone()),
            Decompress::Io(source) => CacheError::Decompress { path, source },
        })?;
        Ok(NarStream::new(inner, info.nar_size))
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

enum Decompress {
    Unsupported,
    Io(io::Error),
}

/// `compressed`'s bytes decompressed as a narinfo's `Compression` says (`none` or
/// empty, `xz`, `zstd`, `bzip2`; concatenated streams are read whole, as Nix does).
fn decompress<R: BufRead + Send + 'static>(
    compression: &str,
    compressed: R,
) -> Result<Box<dyn Read + Send>, Decompress> {
    Ok(match compression {
        "none" | "" => Box::new(compressed),
        "xz" => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(compressed)),
        "zstd" => Box::new(zstd::Decoder::with_buffer(compressed).map_err(Decompress::Io)?),
        "bzip2" => Box::new(bzip2::bufread::MultiBzDecoder::new(compressed)),
        _ => return Err(Decompress::Unsupported),
    })
}

/// The error a [`NarStream`] gives once the NAR has more bytes than its `NarSize`.
#[derive(Debug, thiserror::Error)]
#[error("the NAR is longer than its narinfo's NarSize {nar_size}")]
#[non_exhaustive]
pub struct NarSizeExceeded {
    /// The `NarSize` the narinfo gave.
    pub nar_size: u64,
}

/// A NAR's bytes, read through at most `NarSize + 1` bytes of its source: the byte
/// past `NarSize` proves the NAR is too long, and nothing after it is ever produced
/// (a decompression bomb stops there). Reading past that point fails with
/// [`NarSizeExceeded`] (as [`io::ErrorKind::InvalidData`]).
pub struct NarStream {
    inner: Box<dyn Read + Send>,
    nar_size: u64,
    read: u64,
}

impl NarStream {
    /// Bounds `inner` by `nar_size`.
    pub fn new(inner: Box<dyn Read + Send>, nar_size: u64) -> NarStream {
        NarStream {
            inner,
            nar_size,
            read: 0,
        }
    }

    /// Bytes taken from the source so far (at most `NarSize + 1`).
    pub fn bytes_read(&self) -> u64 {
        self.read
    }

    fn exceeded(&self) -> io::Error {
        io::Error::new(
            io::ErrorKind::InvalidData,
            NarSizeExceeded {
                nar_size: self.nar_size,
            },
        )
    }
}

impl Read for NarStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        let left = self.nar_size.saturating_add(1).saturating_sub(self.read);
        if left == 0 {
            return Err(self.exceeded());
        }
        let want = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.read += n as u64;
        if self.read > self.nar_size {
            return Err(self.exceeded());
        }
        Ok(n)
    }
}

#[cfg(test)]
#[path = "cache_tests.rs"]
mod tests;
