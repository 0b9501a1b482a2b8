//! Why an experiment could not run, or found a strategy that does not give its NARs
//! back.

use std::io;
use std::path::PathBuf;

use narfs_core::block::StoreError;
use narfs_decoder::DecodeError;
use narfs_encoder::chunker::ChunkerSpecError;
use narfs_encoder::EncodeError;

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
    /// zstd failed to compress or decompress.
    #[error("zstd failed")]
    Zstd(#[source] io::Error),
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
