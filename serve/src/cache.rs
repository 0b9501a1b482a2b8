//! The Nix binary cache protocol, which Guix speaks too: `/nix-cache-info`,
//! `/<hash>.narinfo` for every root recorded with narinfo fields (in its store's
//! dialect, [`narinfo`]), and `/nar/<cid>.nar`, the NAR of any recorded root decoded
//! from its verified DAG while it streams out.

use narfs_core::error_chain;
use std::io::Write;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use narfs_core::Cid;
use narfs_decoder::{decode_checked, Expect, Limits};
use narfs_nix::store_path::StoreDir;
use narfs_store::{RootRecord, Store};

use crate::body::{channel, ChannelWriter};
use crate::{blocking, fail, internal, narinfo, text, AppState, Fail};

pub async fn cache_info(State(st): State<Arc<AppState>>) -> Response {
    let dir = match blocking(move || {
        st.index
            .snapshot()
            .and_then(|s| s.store_dir())
            .map_err(fail)
    })
    .await
    {
        Ok(d) => d,
        Err(r) => return r,
    };
    cache_info_response(dir)
}

/// `/nix-cache-info` for a cache of `dir`.
pub(crate) fn cache_info_response(dir: StoreDir) -> Response {
    typed(
        "text/x-nix-cache-info",
        narfs_nix::narinfo::cache_info_in(dir),
    )
}

/// A 200 of `content_type`.
pub(crate) fn typed(content_type: &'static str, body: impl IntoResponse) -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
        body,
    )
        .into_response()
}

/// The store-path hash `file` (`<hash>.narinfo`) asks for, else the answer to give.
pub(crate) fn narinfo_hash(file: &str) -> Result<&str, Fail> {
    let Some(hash) = file.strip_suffix(".narinfo") else {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "not found\n")));
    };
    if !narfs_nix::store_path::is_hash_part(hash) {
        return Err(Box::new(text(
            StatusCode::BAD_REQUEST,
            "a narinfo is asked for by the 32-character hash of its store path\n",
        )));
    }
    Ok(hash)
}

/// The root CID `file` (`<cid>.nar`) asks for, else the answer to give.
pub(crate) fn nar_cid(file: &str) -> Result<Cid, Fail> {
    let Some(c) = file.strip_suffix(".nar") else {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "not found\n")));
    };
    Cid::from_str(c).map_err(|_| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            "expected nar/<root CID>.nar\n",
        ))
    })
}

pub async fn narinfo(State(st): State<Arc<AppState>>, Path(file): Path<String>) -> Response {
    let hash = match narinfo_hash(&file) {
        Ok(h) => h.to_string(),
        Err(r) => return *r,
    };
    let found = blocking(move || {
        let snap = st.index.snapshot().map_err(fail)?;
        Ok(snap.by_hash(&hash).map_err(fail)?.and_then(|rec| {
            let meta = rec.narinfo.as_ref()?;
            narinfo::render(&rec, meta, &st.keys)
        }))
    })
    .await;
    match found {
        Ok(Some(body)) => typed("text/x-nix-narinfo", body),
        Ok(None) => text(StatusCode::NOT_FOUND, "no such store path here\n"),
        Err(r) => r,
    }
}

/// A NAR's `Content-Type`.
pub(crate) const NAR_TYPE: &str = "application/x-nix-archive";

/// The answer to `HEAD /nar/…`: the NAR's type and length, known from a record or a
/// narinfo, so that a client asking whether a NAR exists starts no decode (or fetch).
pub(crate) fn nar_head(nar_size: u64) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NAR_TYPE)),
            (header::CONTENT_LENGTH, HeaderValue::from(nar_size)),
        ],
        Body::empty(),
    )
        .into_response()
}

pub async fn nar(
    State(st): State<Arc<AppState>>,
    method: Method,
    Path(file): Path<String>,
) -> Response {
    let cid = match nar_cid(&file) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let st2 = st.clone();
    let rec = blocking(move || {
        let snap = st2.index.snapshot().map_err(fail)?;
        snap.by_cid(&cid).map_err(fail)
    })
    .await;
    let rec = match rec {
        Ok(Some(r)) => r,
        Ok(None) => return text(StatusCode::NOT_FOUND, "no NAR with that root here\n"),
        Err(r) => return r,
    };
    if method == Method::HEAD {
        return nar_head(rec.nar_size);
    }
    let expect = match Expect::from_record(&rec.nar_hash, rec.nar_size) {
        Ok(e) => e,
        Err(e) => return internal(format!("the record of {cid}: {}", error_chain(&e))),
    };
    let (writer, mut body) = channel(Some(rec.nar_size));
    let store = st.store.clone();
    let limits = Limits {
        readahead: st.options.readahead,
        output_piece: crate::body::CHUNK / 2,
        ..Limits::default()
    };
    tokio::task::spawn_blocking(move || stream_nar(&store, &cid, &rec, &expect, &limits, writer));
    match body.first().await {
        Ok(_) => typed(NAR_TYPE, Body::new(body)),
        Err(e) => internal(format!("cannot decode the NAR of {cid}: {e}")),
    }
}

/// Decodes the root's NAR into `w` under the store's shared lock (so `gc` cannot take
/// blocks away mid-stream), checked against the record: a NAR that is not the one the
/// record describes leaves the body short of its `Content-Length`, then failed.
fn stream_nar(
    store: &Store,
    cid: &Cid,
    rec: &RootRecord,
    expect: &Expect,
    limits: &Limits,
    mut w: ChannelWriter,
) {
    let result = (|| -> Result<(), String> {
        let _lock = store.lock_shared().map_err(|e| error_chain(&e))?;
        decode_checked(store, cid, rec.encoding, expect, &mut w, limits)
            .map_err(|e| error_chain(&e))?;
        w.flush().map_err(|e| error_chain(&e))
    })();
    match result {
        Ok(()) => {
            let _ = w.finish();
        }
        Err(e) => w.fail(e),
    }
}
