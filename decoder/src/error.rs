//! Decoding errors: each names the block's CID and the path in the tree where it
//! was met, so a bad cache entry can be found.

use narfs_core::block::{BlockError, StoreError};
use narfs_core::dagpb::DagPbError;
use narfs_core::nar::NarError;
use narfs_core::unixfs::UnixFsError;
use narfs_core::Cid;

/// What was wrong with one block of the DAG (or with the NAR it gave).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The store does not hold the block.
    #[error("block not found")]
    Missing,
    /// The block was refused: its CID is not one narfs reads, or its bytes do not hash to it.
    #[error(transparent)]
    Block(#[from] BlockError),
    /// The store failed to read the block.
    #[error("reading the block")]
    Store(#[from] StoreError),
    /// The block is not canonical dag-pb.
    #[error(transparent)]
    DagPb(#[from] DagPbError),
    /// The node's `Data` is not canonical UnixFS.
    #[error(transparent)]
    UnixFs(#[from] UnixFsError),
    /// A dag-pb node with no `Data`, so no UnixFS type.
    #[error("dag-pb node without UnixFS Data")]
    NoData,
    /// A UnixFS type that no NAR entry maps to (metadata, raw in a tree, ...).
    #[error("unsupported UnixFS node type {0}")]
    Unsupported(&'static str),
    /// The DAG breaks a rule of the layout narfs writes; the message says which.
    #[error("{0}")]
    Malformed(String),
    /// The zstd stream of the fallback encoding does not decompress.
    #[error("the compressed NAR")]
    Compressed(#[source] std::io::Error),
    /// The DAG nests deeper than the decoder's limit.
    #[error("the DAG is deeper than the limit of {0} levels")]
    TooDeep(usize),
    /// The NAR would be longer than the decoder's limit.
    #[error("the output would exceed the limit of {0} bytes")]
    TooLarge(u64),
    /// Writing the NAR failed, or the DAG describes a NAR that is not canonical.
    #[error("writing the NAR")]
    Nar(#[from] NarError),
    /// The NAR goes on past the `NarSize` its record gives.
    #[error("the NAR is longer than its recorded NarSize of {0} bytes")]
    LongerThanRecorded(u64),
    /// The NAR ends before the `NarSize` its record gives.
    #[error("the NAR ends after {got} bytes, its record says NarSize {recorded}")]
    ShorterThanRecorded {
        /// Bytes the DAG gave.
        got: u64,
        /// The record's `NarSize`.
        recorded: u64,
    },
    /// The NAR's sha256 is not the `NarHash` its record gives.
    #[error("the NAR hashes to {got}, its record says NarHash {recorded}")]
    NarHashMismatch {
        /// `sha256:<nix base32>` of what the DAG gave.
        got: String,
        /// The record's `NarHash`.
        recorded: String,
    },
    /// Writing the checked NAR's last byte out failed.
    #[error("writing the NAR out")]
    Output(#[source] std::io::Error),
}

/// A decoding failure: the block where it was met, and what was wrong there. The
/// problem (with its causes, by [`narfs_core::error_chain`]) is part of the message,
/// so that one `Display` names the block, the path and the cause.
#[derive(Debug, thiserror::Error)]
#[error(
    "block {cid} at {}: {}",
    if path.is_empty() { "the root" } else { path.as_str() },
    narfs_core::error_chain(&**problem)
)]
#[non_exhaustive]
pub struct DecodeError {
    /// The block's CID.
    pub cid: Box<Cid>,
    /// Path in the tree, `/`-separated, empty for the root.
    pub path: String,
    /// What was wrong (said in the message, so not also a `source`).
    pub problem: Box<Problem>,
}

impl DecodeError {
    pub fn new(cid: &Cid, path: &str, problem: impl Into<Problem>) -> Self {
        DecodeError {
            cid: Box::new(*cid),
            path: path.to_string(),
            problem: Box::new(problem.into()),
        }
    }
}

/// A malformed-DAG problem with a message.
pub fn malformed(msg: impl Into<String>) -> Problem {
    Problem::Malformed(msg.into())
}
