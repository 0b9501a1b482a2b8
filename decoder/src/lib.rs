//! The verifying DAG walker that streams a UnixFS DAG back into a NAR.
//!
//! The one entry point is [`decode`]: a block source, a root CID and the root's
//! [`narfs_core::Encoding`] in, NAR bytes out. Every block is checked against its CID before use; every size a node claims
//! is checked against its children; depth and output size are bounded. When the NAR's
//! `NarHash` and `NarSize` are known (a root record), [`decode_checked`] checks the
//! bytes against them as they stream.

mod ahead;
mod batch;
mod block_write;
mod decode;
mod error;
mod expect;
mod fetch;
mod file;
mod hamt;
mod runs;
mod walk;
mod write_behind;

pub use block_write::{BlockWrite, WHOLE_BLOCK};
pub use decode::{decode, decode_to};
pub use error::{DecodeError, Problem};
pub use expect::{check, decode_checked, decode_checked_to, BadNarHash, Checked, Expect};
pub use fetch::{fetch, fetch_many};
pub use file::FileReader;
pub use walk::decode_nar;
pub use write_behind::{write_behind, Behind, MAX_PIECE};

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
    /// Most bytes of raw leaves (as their parent claims them) fetched and verified
    /// ahead of the output, per file; at least one leaf is. What a stream holds while
    /// its consumer is slow: `narfs serve` lowers it, so that many stalled clients
    /// cost little.
    pub readahead: u64,
    /// Bytes per write of the output when it is written behind the decoder
    /// ([`write_behind`], at most [`MAX_PIECE`]); up to three such pieces are held (two of 4 MiB).
    /// Large writes for a file or pipe (1 MiB: a widened pipe's size; `narfs decode`
    /// raises it to [`MAX_PIECE`] for a direct file); `narfs serve` lowers it with
    /// `readahead`.
    /// 0: [`decode_checked`] writes on the decoder's thread, for an output that is
    /// itself behind (serve's body channel, when nothing is hashed or compressed on
    /// the way): a thread and a copy fewer.
    pub output_piece: usize,
    /// Whether the writer behind the decoder takes verified leaves whole and writes
    /// them with `writev` between the copied bytes (no copy on the decoder's thread:
    /// a pipe, a socket, a hash), rather than copying every byte into pieces that
    /// start at 4 KiB boundaries (what an `O_DIRECT` file writes without a copy).
    pub output_gather: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_depth: 4096,
            max_file_depth: 32,
            max_output: 1 << 40,
            readahead: 12 << 20,
            output_piece: 1 << 20,
            output_gather: true,
        }
    }
}
