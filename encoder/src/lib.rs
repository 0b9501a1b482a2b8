//! Chunkers, the UnixFS DAG builder and block sinks.
//!
//! The one entry point is [`encode_or_fallback`]: NAR bytes in, blocks out to a
//! [`narfs_core::block::BlockSink`], the root CID, the NAR's hash and the root's
//! [`narfs_core::Encoding`] back. It runs [`encode`] (the UnixFS tree) and, when a NAR
//! cannot be a UnixFS tree, [`encode_fallback`] (the zstd-compressed NAR as one file).

mod batch;
pub mod chunker;
pub mod directory;
pub mod encode;
pub mod fallback;
pub mod file;
mod gear_scan;
pub mod hamt;
mod input;
pub mod layout;
mod mapped;
mod parse;
mod parse_mapped;
mod readahead;
mod report;
mod shrink_guard;

pub use encode::{encode, encode_mapped, encode_root_only, EncodeError, Encoded, EntryKind};
pub use fallback::{encode_fallback, encode_or_fallback, encode_or_fallback_from};
pub use input::{InputError, NarInput};
pub use layout::{Layout, Profile, ShardRule};
pub use mapped::MappedNar;
pub use report::EncodeReport;
