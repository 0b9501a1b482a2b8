//! CAR (Content Addressable aRchive), both ways: [`CarWriter`] and [`CarFileWriter`]
//! write CARv1, [`CarReader`] streams the blocks of a CARv1 (or of the CARv1 payload of
//! a CARv2) from any `Read`, and [`CarFile`] indexes a CAR file once (`CID -> offset,
//! length`, never the bytes) and serves blocks by positioned reads, so memory stays
//! bounded whatever the CAR's size.
//!
//! Reader and writer live together so that they share one header codec and one set of
//! limits: everything the writer accepts the reader reads back. Every length read from
//! the input is bounded before anything is allocated: the header by
//! [`MAX_HEADER_LEN`], sections by [`MAX_SECTION_LEN`] and, where the input length is
//! known, by what remains. Hashes are not verified here (whoever uses a block does it,
//! with [`crate::block::verify`]), but CIDs must be well formed and canonical. Errors
//! carry the byte offset where the problem starts.
//!
//! ```
//! use narfs_core::block::{cid_for, HashAlg, RAW};
//! use narfs_core::car::{CarReader, CarWriter};
//!
//! let cid = cid_for(RAW, HashAlg::Sha2_256, b"hello");
//! let mut w = CarWriter::new(Vec::new(), &cid)?;
//! w.put(&cid, b"hello")?;
//! let car = w.finish()?;
//!
//! let r = CarReader::new(&car[..])?;
//! assert_eq!(r.roots(), &[cid]);
//! let blocks: Vec<_> = r.collect::<Result<_, _>>()?;
//! assert_eq!(blocks, vec![(cid, b"hello".to_vec())]);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod cid_set;
mod direct;
mod file;
mod header;
mod reader;
#[cfg(test)]
mod reader_tests;
#[cfg(test)]
mod tests_malformed;
mod writer;

pub use file::CarFile;
pub use header::encode_header;
pub use reader::CarReader;
pub use writer::{CarFileWriter, CarWriteError, CarWriter};

use std::io;

use crate::block::MAX_BLOCK_SIZE;
use header::MAX_CID_LEN;

/// The largest header (dag-cbor bytes after the length varint) accepted.
pub const MAX_HEADER_LEN: u64 = 1 << 20;
/// The largest section (CID + block) accepted.
pub const MAX_SECTION_LEN: u64 = MAX_BLOCK_SIZE as u64 + MAX_CID_LEN as u64;

/// Errors from reading a CAR. `offset` is the byte offset in the input where the faulty
/// item starts (for truncation: where more input was expected).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarError {
    /// Reading the input failed.
    #[error("CAR I/O error at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The input ends where more was expected.
    #[error("CAR truncated at byte {offset}: expected {what}")]
    Truncated { offset: u64, what: &'static str },
    /// A length varint is too long or not minimal.
    #[error("bad varint at CAR byte {offset}")]
    BadVarint {
        offset: u64,
        #[source]
        reason: crate::varint::VarintError,
    },
    /// The header claims more than [`MAX_HEADER_LEN`] bytes.
    #[error("CAR header at byte {offset} claims {len} bytes, over the {max}-byte limit")]
    HeaderTooLarge { offset: u64, len: u64, max: u64 },
    /// The header is not the dag-cbor `{roots, version}` map.
    #[error("malformed CAR header at byte {offset}: {reason}")]
    BadHeader { offset: u64, reason: String },
    /// A CAR version other than 1, or 2 wrapping a 1.
    #[error("CAR version {version} (header at byte {offset}) is not supported: only CARv1, or CARv2 wrapping a CARv1")]
    UnsupportedVersion { offset: u64, version: u64 },
    /// The CARv2 fixed header is inconsistent.
    #[error("malformed CARv2 header at byte {offset}: {reason}")]
    BadV2Header { offset: u64, reason: String },
    /// A section of length zero.
    #[error("empty CAR section at byte {offset}")]
    EmptySection { offset: u64 },
    /// A section longer than [`MAX_SECTION_LEN`].
    #[error("CAR section at byte {offset} claims {len} bytes, over the {max}-byte limit")]
    SectionTooLarge { offset: u64, len: u64, max: u64 },
    /// A section longer than what remains of the input.
    #[error("CAR section at byte {offset} claims {len} bytes but only {remaining} remain")]
    SectionPastEnd {
        offset: u64,
        len: u64,
        remaining: u64,
    },
    /// A section does not start with a well-formed, canonical CID.
    #[error("malformed CID in CAR section at byte {offset}: {reason}")]
    BadCid { offset: u64, reason: String },
}

impl CarError {
    /// The byte offset the error refers to.
    pub fn offset(&self) -> u64 {
        match self {
            Self::Io { offset, .. }
            | Self::Truncated { offset, .. }
            | Self::BadVarint { offset, .. }
            | Self::HeaderTooLarge { offset, .. }
            | Self::BadHeader { offset, .. }
            | Self::UnsupportedVersion { offset, .. }
            | Self::BadV2Header { offset, .. }
            | Self::EmptySection { offset }
            | Self::SectionTooLarge { offset, .. }
            | Self::SectionPastEnd { offset, .. }
            | Self::BadCid { offset, .. } => *offset,
        }
    }
}

pub(crate) fn io_error(offset: u64, e: io::Error, what: &'static str) -> CarError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        CarError::Truncated { offset, what }
    } else {
        CarError::Io { offset, source: e }
    }
}
