//! Chunkers, the UnixFS DAG builder and block sinks.
//!
//! The one entry point is [`encode`]: NAR bytes in, blocks out to a
//! [`narfs_core::block::BlockSink`], the root CID and the NAR's hash back.

pub mod chunker;
pub mod directory;
pub mod encode;
pub mod fallback;
pub mod file;
pub mod hamt;
pub mod layout;
mod parse;
mod readahead;

pub use encode::{encode, EncodeError, Encoded, EntryKind};
pub use fallback::encode_fallback;
pub use layout::{Layout, Profile, ShardRule};
