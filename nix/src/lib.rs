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
pub mod narinfo;
#[cfg(feature = "signing")]
pub mod signing;
pub mod store_path;

#[cfg(feature = "cache")]
pub use cache::{CacheError, FileCache, Layout, NarStream};
pub use narinfo::{NarInfo, NarInfoError};
pub use store_path::{StoreDir, StorePath, StorePathError};
