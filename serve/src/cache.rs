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
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use narfs_core::Cid;
use narfs_decoder::{decode_checked_to, Expect, Limits};
use narfs_nix::store_path::StoreDir;
use narfs_store::{RootRecord, Store};

use crate::body::{channel, shaped, ChannelBody, Shape};
use crate::encoding::{self, BodySink, Coding, NarCompression};
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

/// The root CID `file` (`<cid>.nar`, `.nar.zst`, `.nar.xz`) asks for and the form,
/// else the answer to give.
pub(crate) fn nar_cid(file: &str) -> Result<(Cid, NarCompression), Fail> {
    let Some((c, form)) = NarCompression::of_file(file) else {
        return Err(Box::new(text(StatusCode::NOT_FOUND, "not found\n")));
    };
    let cid = Cid::from_str(c).map_err(|_| {
        Box::new(text(
            StatusCode::BAD_REQUEST,
            "expected nar/<root CID>.nar[.zst|.xz]\n",
        ))
    })?;
    Ok((cid, form))
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
            narinfo::render(&rec, meta, &st.keys, st.options.nar_compression)
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

/// How a `/nar/…` response is sent: the file's form (`.nar`, `.nar.zst`, `.nar.xz`)
/// and, for a plain `.nar`, the `Content-Encoding` negotiated.
#[derive(Clone, Copy, Debug)]
pub(crate) struct NarForm {
    pub file: NarCompression,
    pub coding: Coding,
}

impl NarForm {
    /// The form for `file` asked with `headers`, else the answer to give (406).
    pub fn of(file: NarCompression, headers: &HeaderMap) -> Result<NarForm, Fail> {
        let coding = match file {
            // A compressed file is sent as it is, whatever the client accepts.
            NarCompression::None => encoding::for_request(headers).ok_or_else(|| {
                Box::new(text(
                    StatusCode::NOT_ACCEPTABLE,
                    "a NAR is sent as is or as zstd (Accept-Encoding)\n",
                ))
            })?,
            _ => Coding::Identity,
        };
        Ok(NarForm { file, coding })
    }

    /// The compression the body goes through.
    pub fn compression(self) -> NarCompression {
        match (self.file, self.coding) {
            (NarCompression::None, Coding::Zstd) => NarCompression::Zstd,
            (file, _) => file,
        }
    }

    /// The body's length, known only for a NAR sent as it is.
    pub fn length(self, nar_size: u64) -> Option<u64> {
        (self.compression() == NarCompression::None).then_some(nar_size)
    }

    /// The response's headers, for `HEAD` and `GET` alike.
    pub fn headers(self, nar_size: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        let ctype = match self.file {
            NarCompression::None => NAR_TYPE,
            NarCompression::Zstd => "application/zstd",
            NarCompression::Xz => "application/x-xz",
        };
        h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
        if let Some(n) = self.length(nar_size) {
            h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
        if self.file == NarCompression::None {
            encoding::mark(&mut h, self.coding);
        }
        h
    }

    /// A channel for the body, in `shape`, and the sink the decoder writes into.
    pub fn channel(self, nar_size: u64, shape: Shape) -> Result<(BodySink, ChannelBody), Fail> {
        let (writer, body) = shaped(self.length(nar_size), shape);
        match BodySink::new(writer, self.compression()) {
            Ok(sink) => Ok((sink, body)),
            Err(e) => Err(fail(format!("cannot start the encoder: {e}"))),
        }
    }
}

/// The answer to `HEAD /nar/…`: the headers a `GET` would have (with the NAR's length
/// when it is sent as it is), known from a record or a narinfo, so that a client
/// asking whether a NAR exists starts no decode (or fetch).
pub(crate) fn nar_head(nar_size: u64, form: NarForm) -> Response {
    let mut r = Response::new(match form.length(nar_size) {
        Some(_) => Body::empty(),
        None => {
            // An empty body of unknown length, so that no `Content-Length: 0` is added.
            let (w, b) = channel(None);
            let _ = w.finish();
            Body::new(b)
        }
    });
    *r.headers_mut() = form.headers(nar_size);
    r
}

pub async fn nar(
    State(st): State<Arc<AppState>>,
    method: Method,
    headers: HeaderMap,
    Path(file): Path<String>,
) -> Response {
    let (cid, form) = match nar_cid(&file).and_then(|(c, f)| Ok((c, NarForm::of(f, &headers)?))) {
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
        return nar_head(rec.nar_size, form);
    }
    // A sealed record's NarHash is the one computed where it was written; the client
    // (Nix, Guix) checks NarHash itself. NarSize is checked either way.
    let expect = match Expect::from_record(&rec.nar_hash, rec.nar_size) {
        Ok(e) => e.with_stream_hash(!rec.sealed),
        Err(e) => return internal(format!("the record of {cid}: {}", error_chain(&e))),
    };
    let nar_size = rec.nar_size;
    let (shape, readahead) = st.stream_shape();
    let (writer, mut body) = match form.channel(nar_size, shape) {
        Ok(c) => c,
        Err(r) => return *r,
    };
    let store = st.store.clone();
    // Written behind the decoder when the NarHash is hashed or the body compressed
    // on the way (that work then overlaps the decode); otherwise straight into the
    // body channel, which is itself behind (a thread and a copy fewer).
    let behind = expect.stream_hash || form.compression() != NarCompression::None;
    let limits = Limits {
        readahead,
        output_piece: if behind { shape.chunk / 2 } else { 0 },
        ..Limits::default()
    };
    tokio::task::spawn_blocking(move || stream_nar(&store, &cid, &rec, &expect, &limits, writer));
    match body.first().await {
        Ok(_) => (form.headers(nar_size), Body::new(body)).into_response(),
        Err(e) => internal(format!("cannot decode the NAR of {cid}: {e}")),
    }
}

/// Decodes the root's NAR into `w` under the store's shared lock (so `gc` cannot take
/// blocks away mid-stream), checked against the record (its NarHash only when it is not
/// sealed): a NAR that is not the one the record describes leaves the body short of
/// its `Content-Length` (or its compressed stream unended), then failed.
fn stream_nar(
    store: &Store,
    cid: &Cid,
    rec: &RootRecord,
    expect: &Expect,
    limits: &Limits,
    mut w: BodySink,
) {
    let result = (|| -> Result<(), String> {
        let _lock = store.lock_shared().map_err(|e| error_chain(&e))?;
        decode_checked_to(store, cid, rec.encoding, expect, &mut w, limits)
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
