//! The one error type of the NAR grammar, for reading and writing alike: every
//! variant says what was wrong and, when reading, at which byte offset.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum NarError {
    #[error("I/O error at byte {offset}: {source}")]
    Io { offset: u64, source: io::Error },
    #[error("truncated NAR: input ends at byte {offset} while reading {what}")]
    Truncated { offset: u64, what: &'static str },
    #[error("not a NAR: the input does not start with the `nix-archive-1` magic")]
    BadMagic,
    #[error("at byte {offset}: expected {expected}, found {found}")]
    UnexpectedToken {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    #[error("at byte {offset}: {what} is {len} bytes long, over the limit of {max}")]
    TooLong {
        offset: u64,
        what: &'static str,
        len: u64,
        max: u64,
    },
    #[error("at byte {offset}: padding bytes are not zero")]
    BadPadding { offset: u64 },
    #[error("at byte {offset}: invalid entry name \"{name}\": {reason}")]
    BadName {
        offset: u64,
        name: String,
        reason: &'static str,
    },
    #[error("at byte {offset}: entry \"{name}\" is not after \"{prev}\" (names must be strictly increasing)")]
    Unsorted {
        offset: u64,
        name: String,
        prev: String,
    },
    #[error("at byte {offset}: directories nested deeper than the limit of {max} levels")]
    TooDeep { offset: u64, max: usize },
    #[error("at byte {offset}: trailing data after the end of the archive")]
    Trailing { offset: u64 },
    #[error("at byte {offset}: a symlink target is empty")]
    EmptyTarget { offset: u64 },
    #[error("NAR writer misuse: {0}")]
    Usage(&'static str),
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
}

impl NarError {
    pub(crate) fn path(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        NarError::Path {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
