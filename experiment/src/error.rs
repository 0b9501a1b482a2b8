//! Why an experiment could not run, or found a strategy that does not give its NARs
//! back.

use std::io;
use std::path::PathBuf;

use narfs_core::block::StoreError;
use narfs_core::nar::NarError;
use narfs_decoder::DecodeError;
use narfs_encoder::chunker::ChunkerSpecError;
use narfs_encoder::EncodeError;
use narfs_nix::CacheError;

use crate::Strategy;

/// Why [`run`](crate::run) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The corpus directory cannot be listed.
    #[error("cannot list corpus {}", dir.display())]
    ListCorpus {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The corpus (its manifest, or its directory) names no NAR.
    #[error("corpus {} holds no .nar files", dir.display())]
    EmptyCorpus { dir: PathBuf },
    /// The corpus's `MANIFEST.tsv` cannot be read.
    #[error("cannot read {}", path.display())]
    ReadManifest {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The manifest's header has no `file` column.
    #[error("{}: no `file` column in the header", path.display())]
    NoFileColumn { path: PathBuf },
    /// A manifest line (1-based, header included) has an empty `file` or one with a `/`.
    #[error("{}: line {line} has no usable file name", path.display())]
    BadManifestLine { path: PathBuf, line: usize },
    /// A corpus NAR cannot be read.
    #[error("cannot read {}", path.display())]
    ReadNar {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Encoding a NAR failed, e.g. because it is not a valid NAR.
    #[error("encoding {item} as {strategy}")]
    Encode {
        item: String,
        strategy: Strategy,
        /// Boxed: a NAR error is large, and every `Result` here would carry it.
        #[source]
        source: Box<EncodeError>,
    },
    /// Storing the blocks of a whole-NAR (`nar-*`) strategy failed.
    #[error("encoding {item} as {strategy}")]
    Store {
        item: String,
        strategy: Strategy,
        /// Boxed, as the encode error is.
        #[source]
        source: Box<StoreError>,
    },
    /// Decoding a NAR back from the blocks failed.
    #[error("decoding {item} as {strategy}")]
    Decode {
        item: String,
        strategy: Strategy,
        #[source]
        source: DecodeError,
    },
    /// A NAR decoded back is not the NAR that was encoded.
    #[error("decoding {item} as {strategy} does not give the NAR back")]
    Mismatch {
        item: String,
        strategy: Strategy,
        #[source]
        source: Difference,
    },
    /// zstd (or LZ4, for the `pack-lz4` option) failed to compress or decompress.
    #[error("zstd or LZ4 failed")]
    Zstd(#[source] io::Error),
    /// A binary cache cannot be listed, or a narinfo or NAR of it cannot be read.
    #[error("reading the cache {cache}")]
    Cache {
        cache: String,
        #[source]
        source: CacheError,
    },
    /// A store path was given, but the cache cannot name its narinfo without a
    /// listing (a `guix publish --cache` directory).
    #[error("{cache} names its narinfos by compression and name: {path} cannot be asked for")]
    Unnamed { cache: String, path: String },
    /// A cache's NAR broke off while it was read.
    #[error("reading the NAR of {path}")]
    ReadCacheNar {
        path: String,
        #[source]
        source: io::Error,
    },
    /// A cache's NAR is not what its narinfo's `NarHash` and `NarSize` say.
    #[error("the NAR of {path} does not match its narinfo's NarHash and NarSize")]
    NarMismatch { path: String },
    /// A NAR cannot be written into the corpus directory.
    #[error("cannot write {}", path.display())]
    WriteCorpus {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A local path to dump has no file name to call its NAR by.
    #[error("{} has no name to call its NAR by", path.display())]
    NoName { path: PathBuf },
    /// A local path cannot be serialised as a NAR.
    #[error("cannot dump {}", path.display())]
    Dump {
        path: PathBuf,
        #[source]
        source: NarError,
    },
}

/// How decoded bytes part from the NAR they should be.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Difference {
    /// The bytes differ from this offset on (or go on past the NAR's end there).
    #[error("the decoded NAR differs from the original at byte {0}")]
    At(u64),
    /// The decoded NAR stops short of the original.
    #[error("the decoded NAR has {decoded} bytes, the original {original}")]
    Length { decoded: u64, original: u64 },
}

/// Why a strategy's spelling does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseStrategyError {
    /// Not one of the spellings.
    #[error(
        "unknown strategy `{0}`: expected nar-zstd, nar-fixed:SIZE, \
         nar-fastcdc:MIN:AVG:MAX, file-fixed:SIZE or file-fastcdc:MIN:AVG:MAX"
    )]
    Unknown(String),
    /// A spelling whose chunker part is out of range.
    #[error(transparent)]
    Chunker(#[from] ChunkerSpecError),
}
