//! `narfs serve`: read-only HTTP over a narfs store, on axum + tokio.
//!
//! Two protocols over the same blocks:
//! - the Nix binary cache protocol ([`cache`]): `/nix-cache-info`, `/<hash>.narinfo`
//!   (the imported path's original metadata, `Compression: none`, plus `IPFS-CID:` and
//!   `IPFS-Encoding:`, in
//!   Nix's or Guix's dialect by its store path, signed with `--sign-key`: [`narinfo`])
//!   and `/nar/<cid>.nar`, the NAR decoded from the DAG as it streams;
//! - the IPFS trustless gateway ([`gateway`]): `/ipfs/<cid>` as one verified raw block
//!   or as a CARv1 of the whole DAG; beside it, narfs's delta transfer ([`delta`]:
//!   `/narfs/v1/names/<cid>`, `POST /narfs/v1/delta`).
//!
//! With a [`proxy::Proxy`] ([`router`]), the binary cache protocol is the substituter
//! proxy's instead (for Nix and Guix clients): narinfos from an upstream cache, NARs
//! through an IPFS gateway.
//!
//! Blocking work (file reads, hashing, decoding) runs on tokio's blocking pool; bodies
//! stream through bounded channels ([`body`]), so memory per request is bounded
//! whatever the NAR's size; at most [`Options::max_streams`] streaming responses run
//! at once ([`streams`]), and a client that stops reading is cut after
//! [`Options::send_timeout`] ([`stall`]). A NAR is checked against its record's
//! NarHash and NarSize as it streams; on a mismatch the response is cut short of its
//! `Content-Length`, so no client takes it for complete. Every route is a fixed pattern whose variable part must
//! parse as a CID or a store-path hash before anything is looked up: no request can
//! name a file outside the store's blocks and records.

mod access_log;
pub mod body;
mod cache;
mod car_stream;
mod delta;
pub mod encoding;
mod gateway;
pub mod index;
pub mod narinfo;
pub mod proxy;
pub mod stall;
mod streams;
mod upstream;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use narfs_store::Store;

/// What bounds the server's work and memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Options {
    /// Streaming responses (`/nar/…`, `/ipfs/…`) in flight at once; each holds a
    /// decoder thread and up to [`Options::readahead`] + ~0.9 MiB of buffers (+ ~2 MiB
    /// for a zstd encoder, [`encoding::WIRE_LEVEL`]); the few that start while no more
    /// streams than cores run take ~14 MiB more ([`AppState::wide`], [`WIDE_READAHEAD`],
    /// [`body::Shape::WIDE`]).
    pub max_streams: usize,
    /// How long a request over `max_streams` waits for a slot before a 503.
    pub queue_wait: Duration,
    /// How long a response may wait for the client to take a byte before the
    /// connection is cut.
    pub send_timeout: Duration,
    /// Bytes of file leaves a NAR stream fetches ahead ([`narfs_decoder::Limits`]),
    /// at least [`WIDE_READAHEAD`] for a [`AppState::wide`] one.
    pub readahead: u64,
    /// One line per request on stderr ([`access_log`]).
    pub access_log: bool,
    /// How narinfos offer NARs: `nar/<cid>.nar`, or compressed on the fly
    /// (`.nar.zst`, `.nar.xz`; [`encoding::NarCompression`]).
    pub nar_compression: encoding::NarCompression,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            max_streams: 64,
            queue_wait: Duration::from_secs(10),
            send_timeout: Duration::from_secs(30),
            readahead: 512 << 10,
            access_log: false,
            nar_compression: encoding::NarCompression::None,
        }
    }
}

/// What the handlers share.
pub struct AppState {
    pub store: Store,
    pub index: index::Index,
    pub options: Options,
    /// What narinfos are signed with (`narfs serve --sign-key`).
    pub keys: narinfo::Keys,
    /// Permits for streaming responses, `options.max_streams` of them.
    streams: Arc<tokio::sync::Semaphore>,
    /// The substituter proxy, when narinfos come from an upstream ([`proxy`]).
    proxy: Option<Arc<proxy::Proxy>>,
    /// Permits for delta responses ([`delta::MAX_DELTAS`]).
    deltas: Arc<tokio::sync::Semaphore>,
    /// The machine's cores: up to this many streams are [`AppState::wide`].
    cores: usize,
}

/// Bytes of file leaves a [`AppState::wide`] stream fetches ahead at least: three
/// parts of 16 leaves of 256 KiB, two verified on the pool (one on each core) while
/// the other is sent (the decoder's `runs`: 16 equal leaves fill the AVX-512 kernel's
/// lanes, ~1.6× the 4 SHA-NI streams smaller parts get). At most as many such streams
/// as cores run at once, so the server's memory stays bounded (docs/BENCHMARKS.md,
/// branch `wide`'s runs and the quiet runs after it).
pub const WIDE_READAHEAD: u64 = 12 << 20;

impl AppState {
    /// Whether a stream starting now has cores to itself: no more streams run (this
    /// one included) than the machine has cores. Such a stream gets
    /// [`body::Shape::WIDE`] and [`WIDE_READAHEAD`] (~14 MiB more), the others
    /// [`body::Shape::NARROW`] and [`Options::readahead`]: many streams (stalled
    /// clients among them) keep the cores busy between them and each costs little,
    /// and no more than `cores` wide streams ever run at once (each started when at
    /// most `cores` streams ran).
    pub(crate) fn wide(&self) -> bool {
        let running = self.options.max_streams - self.streams.available_permits();
        running <= self.cores
    }

    /// The body shape and leaf read-ahead of a stream starting now.
    pub(crate) fn stream_shape(&self) -> (body::Shape, u64) {
        if self.wide() {
            (
                body::Shape::WIDE,
                self.options.readahead.max(WIDE_READAHEAD),
            )
        } else {
            (body::Shape::NARROW, self.options.readahead)
        }
    }
}

/// The routes over `store`, narinfos signed with `keys`; with `proxy`, the Nix cache
/// protocol is the proxy's.
pub fn router(
    store: Store,
    options: Options,
    keys: narinfo::Keys,
    proxy: Option<proxy::Proxy>,
) -> Router {
    let proxied = proxy.is_some();
    let state = Arc::new(AppState {
        index: index::Index::new(store.clone()),
        store,
        options,
        keys,
        streams: Arc::new(tokio::sync::Semaphore::new(options.max_streams)),
        proxy: proxy.map(Arc::new),
        deltas: Arc::new(tokio::sync::Semaphore::new(delta::MAX_DELTAS)),
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
    });
    let (info, narinfo, nar) = if proxied {
        (get(proxy::cache_info), get(proxy::narinfo), get(proxy::nar))
    } else {
        (get(cache::cache_info), get(cache::narinfo), get(cache::nar))
    };
    let streaming = Router::new()
        .route("/nar/{file}", nar)
        .route("/ipfs/{*rest}", get(gateway::ipfs))
        .route("/narfs/v1/delta", axum::routing::post(delta::delta))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            streams::limit,
        ));
    let router = Router::new()
        .route("/nix-cache-info", info)
        .route("/narfs/v1/names/{cid}", get(delta::names))
        .route("/{file}", narinfo)
        .merge(streaming)
        .fallback(|| async { text(StatusCode::NOT_FOUND, "not found\n") })
        .with_state(state);
    if options.access_log {
        router.layer(axum::middleware::from_fn(access_log::log))
    } else {
        router
    }
}

/// Serves `store` on `listener` until the process ends (see [`router`]).
pub async fn serve(
    listener: tokio::net::TcpListener,
    store: Store,
    options: Options,
    keys: narinfo::Keys,
    proxy: Option<proxy::Proxy>,
) -> io::Result<()> {
    let listener = stall::StallListener::new(listener, options.send_timeout);
    axum::serve(listener, router(store, options, keys, proxy)).await
}

/// Binds `addr`, calls `bound` with the address it got (port 0 picks one), and serves
/// forever on a multi-threaded runtime.
pub fn run(
    addr: SocketAddr,
    store: Store,
    options: Options,
    keys: narinfo::Keys,
    proxy: Option<proxy::Proxy>,
    bound: impl FnOnce(SocketAddr),
) -> io::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("narfs-serve")
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await?;
        bound(listener.local_addr()?);
        serve(listener, store, options, keys, proxy).await
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
