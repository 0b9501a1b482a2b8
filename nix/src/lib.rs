//! Nix's formats, as narfs reads and writes them: Nix base32 (both ways), store paths
//! (Nix's `/nix/store` and Guix's `/gnu/store`), `.narinfo` files, and reading a file
//! binary cache (its `nix-cache-info`, its narinfos, its NARs decompressed and bounded
//! by their `NarSize`, opened without following a symlink out of the cache).
//!
//! This crate knows nothing of UnixFS, DAGs or the store: it sits beside `core`, and
//! the encoder, store, import and serve build on it.

pub mod base32;
#[cfg(feature = "cache")]
pub mod cache;
#[cfg(feature = "http")]
pub mod http;
#[cfg(feature = "http-cache")]
pub mod http_cache;
#[cfg(feature = "cache")]
pub mod nar_stream;
pub mod narinfo;
#[cfg(feature = "signing")]
pub mod signing;
#[cfg(feature = "cache")]
pub mod source;
pub mod store_path;

#[cfg(feature = "cache")]
pub use cache::{CacheError, FileCache, Layout};
#[cfg(feature = "http-cache")]
pub use http_cache::{HttpCache, HttpError, HttpOptions};
#[cfg(feature = "cache")]
pub use nar_stream::{NarSizeExceeded, NarStream};
pub use narinfo::{NarInfo, NarInfoError};
#[cfg(feature = "cache")]
pub use source::BinaryCache;
pub use store_path::{StoreDir, StorePath, StorePathError};
