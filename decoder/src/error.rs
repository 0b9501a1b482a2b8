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
