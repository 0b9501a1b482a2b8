//! The one error type of the NAR grammar, for reading and writing alike: every
//! variant says what was wrong and, when reading, at which byte offset.

use std::io;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NarError {
    /// Reading the archive (or writing it, for the writer) failed at `offset`.
    #[error("I/O error at byte {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
    /// The input ended inside the archive.
    #[error("truncated NAR: input ends at byte {offset} while reading {what}")]
    Truncated { offset: u64, what: &'static str },
    /// The input does not start with the NAR magic.
    #[error("not a NAR: the input does not start with the `nix-archive-1` magic")]
    BadMagic,
    /// A token other than the grammar allows here.
    #[error("at byte {offset}: expected {expected}, found {found}")]
    UnexpectedToken {
        offset: u64,
        expected: &'static str,
        found: String,
    },
    /// A length (of a name, target or token) is over its limit; nothing was allocated.
    #[error("at byte {offset}: {what} is {len} bytes long, over the limit of {max}")]
    TooLong {
        offset: u64,
        what: &'static str,
        len: u64,
        max: u64,
    },
    /// Padding after a string is not all zero bytes, so the NAR is not canonical.
    #[error("at byte {offset}: padding bytes are not zero")]
    BadPadding { offset: u64 },
    /// An entry name Nix never writes (empty, `.`, `..`, with `/` or NUL).
    #[error("at byte {offset}: invalid entry name \"{name}\": {reason}")]
    BadName {
        offset: u64,
        name: String,
        reason: &'static str,
    },
    /// Entry names of a directory are not strictly increasing.
    #[error("at byte {offset}: entry \"{name}\" is not after \"{prev}\" (names must be strictly increasing)")]
    Unsorted {
        offset: u64,
        name: String,
        prev: String,
    },
    /// Directories nest deeper than [`Limits::max_depth`](super::Limits).
    #[error("at byte {offset}: directories nested deeper than the limit of {max} levels")]
    TooDeep { offset: u64, max: usize },
    /// Bytes follow the archive's closing token.
    #[error("at byte {offset}: trailing data after the end of the archive")]
    Trailing { offset: u64 },
    /// A symlink with an empty target, which Nix never writes.
    #[error("at byte {offset}: a symlink target is empty")]
    EmptyTarget { offset: u64 },
    /// The writer was called out of the grammar's order (a bug in the caller, or a file
    /// whose size changed while it was written).
    #[error("NAR writer misuse: {0}")]
    Usage(&'static str),
    /// A filesystem operation on `path` failed (dump, restore).
    #[error("{path}")]
    Fs {
        path: String,
        #[source]
        source: io::Error,
    },
    /// `path` cannot be dumped or restored, for `reason`.
    #[error("{path}: {reason}")]
    Path { path: String, reason: String },
}

impl NarError {
    /// An I/O error at `offset`, unless it carries a `NarError` (file contents read
    /// through [`FileContents`](super::FileContents) report the reader's own errors
    /// as `io::Error`s): then that error, with its own offset, is the one reported.
    pub(crate) fn io(offset: u64, source: io::Error) -> Self {
        if !source.get_ref().is_some_and(|inner| inner.is::<NarError>()) {
            return NarError::Io { offset, source };
        }
        let kind = source.kind();
        match source
            .into_inner()
            .map(|inner| inner.downcast::<NarError>())
        {
            Some(Ok(inner)) => *inner,
            Some(Err(other)) => NarError::Io {
                offset,
                source: io::Error::new(kind, other),
            },
            None => NarError::Io {
                offset,
                source: kind.into(),
            },
        }
    }

    /// A filesystem error on `path`.
    pub(crate) fn fs(path: &std::path::Path, source: io::Error) -> Self {
        NarError::Fs {
            path: path.display().to_string(),
            source,
        }
    }

    pub(crate) fn path(path: &std::path::Path, reason: impl std::fmt::Display) -> Self {
        NarError::Path {
            path: path.display().to_string(),
            reason: reason.to_string(),
        }
    }
}
