//! `narfs serve`: read-only HTTP over a narfs store, on axum + tokio.
//!
//! Two protocols over the same blocks:
//! - the Nix binary cache protocol ([`cache`]): `/nix-cache-info`, `/<hash>.narinfo`
//!   (the imported path's original metadata, `Compression: none`, plus `IPFS-CID:`) and
//!   `/nar/<cid>.nar`, the NAR decoded from the DAG as it streams;
//! - the IPFS trustless gateway ([`gateway`]): `/ipfs/<cid>` as one verified raw block
//!   or as a CARv1 of the whole DAG.
//!
//! Blocking work (file reads, hashing, decoding) runs on tokio's blocking pool; bodies
//! stream through bounded channels ([`body`]), so memory per request is bounded
//! whatever the NAR's size. Every route is a fixed pattern whose variable part must
//! parse as a CID or a store-path hash before anything is looked up: no request can
//! name a file outside the store's blocks and records.

pub mod body;
mod cache;
mod gateway;
pub mod index;
pub mod narinfo;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use narfs_store::Store;

/// What the handlers share.
pub struct AppState {
    pub store: Store,
    pub index: index::Index,
}

/// The routes over `store`.
pub fn router(store: Store) -> Router {
    let state = Arc::new(AppState {
        index: index::Index::new(store.clone()),
        store,
    });
    Router::new()
        .route("/nix-cache-info", get(cache::cache_info))
        .route("/nar/{file}", get(cache::nar))
        .route("/ipfs/{*rest}", get(gateway::ipfs))
        .route("/{file}", get(cache::narinfo))
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state)
}

/// Serves `store` on `listener` until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, store: Store) -> io::Result<()> {
    axum::serve(listener, router(store)).await
}

/// Binds `addr`, calls `bound` with the address it got (port 0 picks one), and serves
/// forever on a multi-threaded runtime.
pub fn run(addr: SocketAddr, store: Store, bound: impl FnOnce(SocketAddr)) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_io()
        .thread_name("narfs-serve")
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        bound(listener.local_addr()?);
        serve(listener, store).await
    })
}

/// A short plain-text response.
pub(crate) fn text(status: StatusCode, body: impl Into<String>) -> Response {
    (
        status,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        )],
        body.into(),
    )
        .into_response()
}

/// An error response from blocking work (boxed: a `Response` is large).
pub(crate) type Fail = Box<Response>;

/// Runs blocking work on tokio's blocking pool; a panic there becomes a 500.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Fail> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(|b| *b),
        Err(e) => Err(internal(format!("internal error: {e}"))),
    }
}

/// A 500 naming the cause.
pub(crate) fn internal(e: impl std::fmt::Display) -> Response {
    text(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
}

/// [`internal`], boxed for blocking work.
pub(crate) fn fail(e: impl std::fmt::Display) -> Fail {
    Box::new(internal(e))
}
