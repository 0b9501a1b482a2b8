//! Decoding errors: each names the block's CID and the path in the tree where it
//! was met, so a bad cache entry can be found.

use narfs_core::block::{BlockError, StoreError};
use narfs_core::dagpb::DagPbError;
use narfs_core::nar::NarError;
use narfs_core::unixfs::UnixFsError;
use narfs_core::Cid;

#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("block not found")]
    Missing,
    #[error(transparent)]
    Block(#[from] BlockError),
    #[error("reading the block: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    DagPb(#[from] DagPbError),
    #[error(transparent)]
    UnixFs(#[from] UnixFsError),
    #[error("dag-pb node without UnixFS Data")]
    NoData,
    #[error("unsupported UnixFS node type {0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Malformed(String),
    #[error("the DAG is deeper than the limit of {0} levels")]
    TooDeep(usize),
    #[error("the output would exceed the limit of {0} bytes")]
    TooLarge(u64),
    #[error("writing the NAR: {0}")]
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

#[derive(Debug, thiserror::Error)]
#[error("block {cid} at {}: {problem}", if path.is_empty() { "the root" } else { path.as_str() })]
pub struct DecodeError {
    pub cid: Box<Cid>,
    /// Path in the tree, `/`-separated, empty for the root.
    pub path: String,
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
