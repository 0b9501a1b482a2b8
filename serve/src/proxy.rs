//! The substituter proxy (`narfs serve --upstream URL --gateway URL`): the binary cache
//! protocol for a local Nix or Guix client, whose narinfos come from an upstream cache
//! that publishes `IPFS-CID:` and `IPFS-Encoding:` (the publisher's `narfs serve`)
//! and whose NARs are assembled from this machine's store plus blocks fetched through
//! an IPFS trustless gateway, so that the NARs themselves never come from the upstream.
//!
//! - `/nix-cache-info`: the upstream's `StoreDir` (asked once, then kept), ours else
//!   (only Nix asks; Guix never does).
//! - `/<hash>.narinfo`: fetched from the upstream (bounded, with a timeout), rewritten
//!   by [`upstream::rewrite`] (signed text byte for byte, in Nix's or Guix's dialect by
//!   its store path; the NAR at `nar/<cid>.nar`, uncompressed); its CID, encoding,
//!   NarHash and NarSize are remembered in a bounded table, since the NAR request
//!   that follows names only the CID.
//! - `GET /nar/<cid>.nar` of a remembered CID: [`narfs_ipfs::prefetch`] makes the DAG
//!   complete in the local store (only missing blocks are asked for, each verified
//!   against its CID, committed so that the next version reuses them), then the NAR is
//!   decoded from the store through [`narfs_decoder::decode_checked`] against the
//!   narinfo's NarHash and NarSize: a mismatch cuts the response short of its length.
//!   Once it has streamed whole, the root is recorded with the narinfo's fields. A
//!   gateway failure before the first byte is a 502 (and a line on stderr). A CID no
//!   narinfo named is served only if the local store records it (clients always ask
//!   for the narinfo first), else 404.
//! - `HEAD /nar/<cid>.nar`: the length from the narinfo (or the store's record), no
//!   fetch; 404 for a CID neither knows.
//!
//! The NAR is fetched first and decoded after: the client sees its first byte once
//! the DAG is complete locally.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use narfs_core::block::HashAlg;
use narfs_core::{error_chain, Cid, Encoding};
use narfs_decoder::{decode_checked, Expect, Limits};
use narfs_ipfs::{prefetch, FetchError, FetchOptions, Gateway, GatewayError, GatewayOptions};
use narfs_nix::store_path::StoreDir;
use narfs_store::{NarInfoMeta, RootRecord};
use tokio::sync::oneshot;

use crate::encoding::BodySink;
use crate::upstream::{rewrite, Upstream};
use crate::{blocking, cache, fail, text, AppState};

/// CIDs remembered from narinfos (each entry a few hundred bytes).
const KNOWN: usize = 1 << 16;

/// Where the proxy gets narinfos and blocks, and how hard it tries.
#[derive(Clone, Debug)]
pub struct ProxyOptions {
    /// The upstream binary cache, `http://HOST:PORT[/PREFIX]`.
    pub upstream: String,
    /// The trustless gateway, `http://HOST:PORT[/PREFIX]`.
    pub gateway: String,
    /// The longest a narinfo request to the upstream may take; also the gateway's
    /// timeout for an answer or its next bytes.
    pub timeout: Duration,
    /// Gateway requests in flight per NAR.
    pub jobs: usize,
    /// Tries per gateway request.
    pub attempts: u32,
}

/// Why the proxy cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The upstream's address is not `http://HOST[:PORT][/PREFIX]`.
    #[error("bad --upstream address")]
    Upstream(#[source] GatewayError),
    /// The gateway's address is not `http://HOST[:PORT][/PREFIX]`.
    #[error("bad --gateway address")]
    Gateway(#[source] GatewayError),
}

/// The proxy's state, shared by its handlers.
pub struct Proxy {
    upstream: Upstream,
    gateway: Gateway,
    fetch: FetchOptions,
    store_dir: tokio::sync::OnceCell<StoreDir>,
    known: Mutex<Known>,
}

/// What a narinfo said about a CID.
struct Entry {
    /// How the DAG carries the NAR (`IPFS-Encoding:`).
    encoding: Encoding,
    expect: Expect,
    meta: NarInfoMeta,
}

/// The bounded table of CIDs from narinfos; the oldest goes first.
#[derive(Default)]
struct Known {
    map: HashMap<Cid, Arc<Entry>>,
    order: VecDeque<Cid>,
}

impl Proxy {
    pub fn new(o: &ProxyOptions) -> Result<Proxy, ProxyError> {
        let gateway_options = GatewayOptions {
            attempts: o.attempts,
            timeout: o.timeout,
            ..GatewayOptions::default()
        };
        // The same address syntax as the gateway's: checked now, not at the first
        // request.
        Gateway::new(&o.upstream, gateway_options).map_err(ProxyError::Upstream)?;
        Ok(Proxy {
            upstream: Upstream {
                url: o.upstream.trim_end_matches('/').to_string(),
                timeout: o.timeout,
            },
            gateway: Gateway::new(&o.gateway, gateway_options).map_err(ProxyError::Gateway)?,
            fetch: FetchOptions {
                jobs: o.jobs.max(1),
                ..FetchOptions::default()
            },
            store_dir: tokio::sync::OnceCell::new(),
            known: Mutex::new(Known::default()),
        })
    }

    fn remember(&self, cid: Cid, entry: Entry) {
        let mut k = self.known.lock().unwrap_or_else(|p| p.into_inner());
        if k.map.insert(cid, Arc::new(entry)).is_none() {
            k.order.push_back(cid);
        }
        while k.order.len() > KNOWN {
            if let Some(old) = k.order.pop_front() {
                k.map.remove(&old);
            }
        }
    }

    fn known(&self, cid: &Cid) -> Option<Arc<Entry>> {
        let k = self.known.lock().unwrap_or_else(|p| p.into_inner());
        k.map.get(cid).cloned()
    }

    /// The upstream's store directory, asked for until it answers.
    async fn store_dir(&self) -> StoreDir {
        let asked = self
            .store_dir
            .get_or_try_init(|| async {
                match self.upstream.store_dir().await {
                    Ok(Some(dir)) => Ok(dir),
                    Ok(None) => Ok(StoreDir::Nix),
                    Err(e) => Err(e),
                }
            })
            .await;
        match asked {
            Ok(dir) => *dir,
            Err(e) => {
                eprintln!(
                    "narfs: proxy: no nix-cache-info from upstream: {}",
                    error_chain(&e)
                );
                StoreDir::Nix
            }
        }
    }
}

/// The proxy of the state: its routes exist only when it does.
fn proxy(st: &AppState) -> &Proxy {
    st.proxy
        .as_deref()
        .expect("proxy routes are routed only with a proxy")
}

pub async fn cache_info(State(st): State<Arc<AppState>>) -> Response {
    cache::cache_info_response(proxy(&st).store_dir().await)
}

pub async fn narinfo(State(st): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let hash = match cache::narinfo_hash(&file) {
        Ok(h) => h,
        Err(r) => return *r,
    };
    let p = proxy(&st);
    let bad_gateway = |why: String| {
        eprintln!("narfs: proxy: {hash}.narinfo: {why}");
        text(StatusCode::BAD_GATEWAY, format!("{why}\n"))
    };
    let got = match p.upstream.narinfo(hash).await {
        Ok(Some(t)) => t,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no such store path upstream\n"),
        Err(e) => return bad_gateway(error_chain(&e)),
    };
    let r = match rewrite(&got, hash) {
        Ok(r) => r,
        Err(e) => return bad_gateway(format!("from {}: {}", p.upstream.url, error_chain(&e))),
    };
    p.remember(
        r.cid,
        Entry {
            encoding: r.encoding,
            expect: r.expect,
            meta: r.meta,
        },
    );
    cache::typed("text/x-nix-narinfo", r.text)
}

pub async fn nar(
    State(st): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let (cid, form) =
        match cache::nar_cid(&file).and_then(|(c, f)| Ok((c, cache::NarForm::of(f, &headers)?))) {
            Ok(c) => c,
            Err(r) => return *r,
        };
    let known = proxy(&st).known(&cid);
    if method == Method::HEAD {
        return head(st, cid, known.map(|e| e.expect.nar_size), form).await;
    }
    let Some(entry) = known else {
        // A root recorded here (by an earlier fetch) is served as `narfs serve` does.
        return cache::nar(State(st), method, headers, Path(file)).await;
    };
    let nar_size = entry.expect.nar_size;
    let (writer, mut body) = match form.channel(nar_size, crate::body::Shape::NARROW) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let (ready_tx, ready_rx) = oneshot::channel();
    let st2 = st.clone();
    tokio::task::spawn_blocking(move || fetch_and_stream(&st2, &cid, &entry, ready_tx, writer));
    match ready_rx.await {
        Ok(Ok(())) => {}
        Ok(Err((status, why))) => {
            eprintln!("narfs: proxy: nar/{cid}.nar: {why}");
            return text(status, format!("{why}\n"));
        }
        Err(_) => return crate::internal(format!("the fetch of {cid} stopped")),
    }
    match body.first().await {
        Ok(_) => (form.headers(nar_size), Body::new(body)).into_response(),
        Err(e) => {
            eprintln!("narfs: proxy: nar/{cid}.nar: {e}");
            crate::internal(format!("cannot decode the NAR of {cid}: {e}"))
        }
    }
}

/// `HEAD /nar/<cid>.nar`: the NAR's length, from the narinfo that named `cid` (`size`)
/// or the store's record of it, without fetching a block; 404 if neither knows it.
async fn head(st: Arc<AppState>, cid: Cid, size: Option<u64>, form: cache::NarForm) -> Response {
    let size = match size {
        Some(s) => Some(s),
        None => {
            let recorded = blocking(move || {
                let snap = st.index.snapshot().map_err(fail)?;
                let rec = snap.by_cid(&cid).map_err(fail)?;
                Ok(rec.map(|r| r.nar_size))
            })
            .await;
            match recorded {
                Ok(s) => s,
                Err(r) => return r,
            }
        }
    };
    match size {
        Some(n) => cache::nar_head(n, form),
        None => text(StatusCode::NOT_FOUND, "no narinfo named that root\n"),
    }
}

type Ready = oneshot::Sender<Result<(), (StatusCode, String)>>;

/// Under the store's shared lock (so `gc` cannot take blocks meanwhile): fetches
/// what the store lacks of the DAG (reporting on `ready`), then decodes the NAR into
/// `w`, checked against the narinfo, and records the root once it has streamed whole.
fn fetch_and_stream(st: &AppState, cid: &Cid, entry: &Entry, ready: Ready, mut w: BodySink) {
    let p = proxy(st);
    let store = &st.store;
    let lock = match store.lock_shared() {
        Ok(l) => l,
        Err(e) => {
            let _ = ready.send(Err((StatusCode::INTERNAL_SERVER_ERROR, error_chain(&e))));
            return;
        }
    };
    let fetched = prefetch(&p.gateway, store, cid, &p.fetch, &mut |_| {});
    let fetched = match fetched {
        Ok(f) => f,
        Err(e) => {
            let status = match e {
                FetchError::Block { .. } | FetchError::Client { .. } => StatusCode::BAD_GATEWAY,
                _ => StatusCode::INTERNAL_SERVER_ERROR,
            };
            let _ = ready.send(Err((status, error_chain(&e))));
            return;
        }
    };
    let pr = fetched.progress;
    eprintln!(
        "narfs: proxy: {cid}: fetched {} blocks ({} bytes) in {} requests from {}, reused {} \
         blocks ({} bytes)",
        pr.fetched_blocks,
        pr.fetched_bytes,
        pr.requests,
        p.gateway.url(),
        pr.reused_blocks,
        pr.reused_bytes
    );
    let encoding = entry.encoding;
    if ready.send(Ok(())).is_err() {
        return; // the client is gone
    }
    let limits = Limits {
        readahead: st.options.readahead,
        output_piece: crate::body::CHUNK / 2,
        ..Limits::default()
    };
    let decoded = match decode_checked(store, cid, encoding, &entry.expect, &mut w, &limits) {
        Ok(out) => out.flush().map_err(|e| error_chain(&e)),
        Err(e) => Err(error_chain(&e)),
    };
    if let Err(e) = decoded {
        eprintln!("narfs: proxy: nar/{cid}.nar: {e}");
        return w.fail(e);
    }
    // The NAR is the narinfo's: the DAG is whole, so the root may be recorded.
    let hash = HashAlg::from_code(cid.hash().code()).map_or("unknown", HashAlg::name);
    let mut record = RootRecord::new(
        cid,
        encoding,
        &entry.expect.nar_sha256,
        entry.expect.nar_size,
    )
    .with_name(Some(entry.meta.store_path.clone()))
    .with_layout("unknown", hash, "gateway-fetch")
    .with_blocks(
        pr.fetched_blocks + pr.reused_blocks,
        pr.fetched_bytes + pr.reused_bytes,
    )
    .with_narinfo(entry.meta.clone());
    record.new_blocks = fetched.written.new_blocks;
    record.new_bytes = fetched.written.new_bytes;
    if let Err(e) = store.record_root(&record) {
        eprintln!("narfs: proxy: cannot record {cid}: {}", error_chain(&e));
    }
    drop(lock);
    let _ = w.finish();
}
