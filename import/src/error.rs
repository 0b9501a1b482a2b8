//! The import's errors: the whole import's ([`ImportError`]) and one entry's
//! ([`EntryError`], reported and skipped).

use narfs_encoder::EncodeError;
use narfs_nix::CacheError;

/// Why the import could not run at all.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// The cache cannot be listed.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// A store path was given, but the cache cannot name its narinfo without a
    /// listing (a `guix publish --cache` directory).
    #[error("{cache} names its narinfos by compression and name: {path} cannot be asked for")]
    Unnamed {
        /// The cache.
        cache: String,
        /// The hash part asked for.
        path: String,
    },
    /// The store's records cannot be read.
    #[error("cannot read the store's roots")]
    Store(#[from] narfs_store::Error),
}

/// Why one store path was not imported.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The narinfo or its NAR cannot be read from the cache.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The NAR does not encode (it is not a valid NAR, or its stream broke).
    #[error("cannot encode the NAR")]
    Encode(#[from] EncodeError),
    /// The store refused a block or the record.
    #[error("cannot write to the store")]
    Store(#[from] narfs_store::Error),
    /// The NAR's size is not its narinfo's `NarSize`.
    #[error("the NAR is {got} bytes, its narinfo says NarSize {want}")]
    NarSize {
        /// Bytes the NAR had.
        got: u64,
        /// The narinfo's `NarSize`.
        want: u64,
    },
    /// The NAR's sha256 is not its narinfo's `NarHash`.
    #[error("the NAR hashes to {got}, its narinfo says NarHash {want}")]
    NarHash {
        /// `sha256:<nix base32>` of the NAR.
        got: String,
        /// The narinfo's `NarHash`, as narfs spells it.
        want: String,
    },
}
