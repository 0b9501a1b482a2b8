//! What an import reads a binary cache through, wherever the cache is: a directory
//! ([`crate::FileCache`]) or an HTTP server ([`crate::HttpCache`], feature
//! `http-cache`). One import loop (`narfs-import`) works over this trait, so the
//! checks it makes (NarHash, NarSize, resume, skipped bad entries) hold for both.
//!
//! A narinfo is named by an *entry*: a path that says where it was read from, the
//! file itself for a directory, `<hash>.narinfo` below the cache's address for HTTP.

use std::path::{Path, PathBuf};

use crate::cache::CacheError;
use crate::nar_stream::NarStream;
use crate::narinfo::NarInfo;

/// A binary cache narinfos and NARs are read from; every method may be called from
/// several threads at once.
pub trait BinaryCache: Sync {
    /// The cache's address, for messages.
    fn location(&self) -> String;

    /// Every narinfo, sorted, if the cache can be listed (a directory can, an HTTP
    /// cache cannot: `None`).
    fn list(&self) -> Result<Option<Vec<PathBuf>>, CacheError>;

    /// The entry of the store path whose hash part is `hash_part` (32 Nix base32
    /// characters), if the cache can name it without a listing.
    fn entry_of(&self, hash_part: &str) -> Option<PathBuf>;

    /// Reads and parses the narinfo `entry` names, checked to be the one for its
    /// name.
    fn read_narinfo(&self, entry: &Path) -> Result<NarInfo, CacheError>;

    /// The NAR of `info`, decompressed as it is read and cut one byte past its
    /// `NarSize`.
    fn open_nar(&self, info: &NarInfo) -> Result<NarStream, CacheError>;
}

impl BinaryCache for crate::FileCache {
    fn location(&self) -> String {
        self.dir().display().to_string()
    }

    fn list(&self) -> Result<Option<Vec<PathBuf>>, CacheError> {
        self.narinfos().map(Some)
    }

    fn entry_of(&self, hash_part: &str) -> Option<PathBuf> {
        // A guix publish cache names its narinfos by base name, under a compression's
        // directory: only a listing finds them.
        (self.layout() == crate::Layout::Nix)
            .then(|| self.dir().join(format!("{hash_part}.narinfo")))
    }

    fn read_narinfo(&self, entry: &Path) -> Result<NarInfo, CacheError> {
        crate::FileCache::read_narinfo(self, entry)
    }

    fn open_nar(&self, info: &NarInfo) -> Result<NarStream, CacheError> {
        crate::FileCache::open_nar(self, info)
    }
}

/// Whether a narinfo's `URL` is a plain relative path (no scheme, no `.` or `..`,
/// not absolute, no query or fragment): all a cache may point its NARs at, beneath
/// itself.
pub(crate) fn is_plain_relative(url: &str) -> bool {
    !url.is_empty()
        && !url.contains([':', '?', '#', '\\'])
        && !url.starts_with('/')
        && url
            .split('/')
            .all(|c| !c.is_empty() && c != "." && c != "..")
}
