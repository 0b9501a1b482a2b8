//! Exchanging DAGs with the IPFS world: CAR files in and out of the store, publishing
//! into a Kubo node over its RPC API ([`Kubo`]), and fetching DAGs through any
//! trustless gateway into the store ([`Gateway`], [`prefetch`], [`fetch`]).
//!
//! A crate of its own because it joins the others: it reads CARs (decoder), writes
//! them (encoder), keeps blocks in the store and walks DAGs to check what it imports.
//! Every block that enters the store through here is verified against its CID first,
//! and every block that leaves it is verified again before it is sent.

mod arrivals;
mod car_export;
mod car_import;
pub mod delta_base;
mod delta_fetch;
/// The delta answer reader's entry point for `fuzz/` (not an API).
#[doc(hidden)]
pub use delta_fetch::fuzzing as delta_fuzzing;
pub mod delta_wire;
mod document;
mod fetch;
mod fetch_jobs;
mod fetch_walk;
mod gateway_client;
mod http;
mod kubo;
mod stream_fetch;
mod whole_car;

pub use car_export::{export_car, export_store, ExportError, Exported};
pub use car_import::{import_car, CarImport, ImportError, ImportedRoot, RootError};
pub use document::{get_document, DocumentError};
pub use fetch::{prefetch, DeltaReport, FetchError, FetchOptions, Fetched, Prefetched, Progress};
pub use gateway_client::{Connection, Gateway, GatewayError, GatewayOptions};
pub use kubo::{publish_store, Kubo, KuboError, Published};
pub use stream_fetch::fetch;
