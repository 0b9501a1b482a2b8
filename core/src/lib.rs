//! The NAR grammar (streaming reader and writer), the dag-pb + UnixFS codec, CID helpers and the block store trait.
//!
//! `core` owns the formats: it knows NARs and it knows UnixFS, but never maps one to the
//! other — that is the encoder's and decoder's work.

pub mod block;
pub mod car;
pub mod dagpb;
pub mod direct;
pub mod encoding;
pub mod error;
pub mod hamt_hash;
pub mod leaf_buffers;
pub mod leaf_hash;
pub mod nar;
pub mod noise;
#[cfg(target_arch = "x86_64")]
mod sha_streams;
pub mod unixfs;
pub mod varint;

pub use cid::Cid;
pub use encoding::Encoding;
pub use error::error_chain;
