//! The verifying DAG walker that streams a UnixFS DAG back into a NAR.
//!
//! The one entry point is [`decode`]: a block source, a root CID and the root's
//! [`narfs_core::Encoding`] in, NAR bytes out. Every block is checked against its CID before use; every size a node claims
//! is checked against its children; depth and output size are bounded.

mod decode;
mod error;
mod file;
mod hamt;
mod walk;

pub use decode::decode;
pub use error::{DecodeError, Problem};
pub use file::{fetch, FileReader};
pub use walk::decode_nar;

/// Bounds on what decoding will do for a DAG from an untrusted source.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Deepest directory nesting (as the NAR reader's limit).
    pub max_depth: usize,
    /// Deepest `File` node tree. Kubo's balanced layout of 174 links reaches 2^64
    /// bytes at 9 levels.
    pub max_file_depth: usize,
    /// Most NAR bytes one decode may produce.
    pub max_output: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4096,
            max_file_depth: 32,
            max_output: 1 << 40,
        }
    }
}
