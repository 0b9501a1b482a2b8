//! The delta transfer, server side (the wire format and why: `narfs_ipfs::delta_wire`):
//! `GET /narfs/v1/names/<cid>`, the names the store's records give a root (also the
//! probe by which a client learns that this gateway speaks delta), and
//! `POST /narfs/v1/delta`, a batch of wanted DAGs answered as one stream: each item
//! with a base the store holds as one zstd frame with that base file's first bytes
//! (≤ `MAX_REF`) as reference prefix, runs of items without one compressed together
//! in one frame.
//!
//! Bounds: the request body is read up to `MAX_REQUEST` bytes (413 past it); a
//! response holds one reference (≤ 64 MiB), one zstd encoder (window ≤ 2^27, with
//! long-distance matching; at most [`MAX_REF_BYTES`] of references read per
//! response), the response's set of sent CIDs (at most [`MAX_BLOCKS`];
//! past it the answer ends early and the client fetches the rest by the gateway) and
//! the body channel; at most [`MAX_DELTAS`] such responses run at once (each also
//! holds a stream permit), a request over that waits `queue_wait`, then gets a 503.
//! Every block sent is read from the store verified.

use std::collections::HashSet;
use std::io::{self, Write};
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use narfs_core::error_chain;
use narfs_core::Cid;
use narfs_ipfs::delta_wire::{
    file_size, names_body, parse_request, read_reference, window_log, write_block, Item, PartHead,
    Sequence, LEVEL, MAX_REF, MAX_REQUEST, NAMES_TYPE, RESPONSE_TYPE,
};
use narfs_store::Store;
use tokio::sync::OwnedSemaphorePermit;

use crate::body::{channel, ChannelWriter};
use crate::{text, AppState};

/// Delta responses at once: each may hold ~200 MiB (reference and window) for a
/// file of 64 MiB.
pub const MAX_DELTAS: usize = 2;
/// Blocks one response sends at most (the set of their CIDs is its memory).
pub const MAX_BLOCKS: usize = 1 << 18;
/// Reference bytes one response reads at most: past them, items go without one (a
/// request naming many large bases costs the server a bounded amount of reading).
pub const MAX_REF_BYTES: u64 = 4 << 30;

/// `GET /narfs/v1/names/<cid>`: the names of the root's records, one a line (the
/// record's name, and its narinfo's store path).
pub async fn names(State(st): State<Arc<AppState>>, Path(cid): Path<String>) -> Response {
    let Ok(cid) = Cid::from_str(&cid) else {
        return text(StatusCode::BAD_REQUEST, format!("{cid:?} is not a CID\n"));
    };
    let store = st.store.clone();
    let found = crate::blocking(move || {
        store
            .find_by_cid(&cid)
            .map_err(|e| crate::fail(error_chain(&e)))
    })
    .await;
    let records = match found {
        Ok(r) => r,
        Err(r) => return r,
    };
    let mut names = Vec::new();
    for r in records {
        names.extend(r.name);
        names.extend(r.narinfo.map(|n| n.store_path));
    }
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(NAMES_TYPE)),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        names_body(&names),
    )
        .into_response()
}

/// `POST /narfs/v1/delta`: see the module doc.
pub async fn delta(State(st): State<Arc<AppState>>, body: Body) -> Response {
    let body = match axum::body::to_bytes(body, MAX_REQUEST).await {
        Ok(b) => b,
        Err(_) => {
            return text(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("a delta request is at most {MAX_REQUEST} bytes\n"),
            )
        }
    };
    let items = match parse_request(&body) {
        Ok(items) => items,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{}\n", error_chain(&e))),
    };
    let wait = st.options.queue_wait;
    let permit = match tokio::time::timeout(wait, st.deltas.clone().acquire_owned()).await {
        Ok(Ok(p)) => p,
        _ => {
            let mut r = text(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("all {MAX_DELTAS} delta streams are busy; try again later\n"),
            );
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
            return r;
        }
    };
    let (writer, body) = channel(None);
    let store = st.store.clone();
    tokio::task::spawn_blocking(move || produce(&store, &items, writer, permit));
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static(RESPONSE_TYPE),
            ),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        Body::new(body),
    )
        .into_response()
}

/// Writes the answer for `items` into `w`; the permit goes when it is written.
fn produce(store: &Store, items: &[Item], mut w: ChannelWriter, _permit: OwnedSemaphorePermit) {
    let lock = match store.lock_shared() {
        Ok(l) => l,
        Err(e) => return w.fail(error_chain(&e)),
    };
    let mut sent = HashSet::new();
    match parts(store, items, &mut w, &mut sent) {
        Ok(()) => {
            drop(lock);
            let _ = w.finish();
        }
        // The client is gone, or the body failed: nothing more to say.
        Err(_) => drop(lock),
    }
}

/// The parts of the answer, then its end.
fn parts(
    store: &Store,
    items: &[Item],
    w: &mut ChannelWriter,
    sent: &mut HashSet<Cid>,
) -> io::Result<()> {
    let mut i = 0;
    let mut budget = MAX_REF_BYTES;
    while i < items.len() && sent.len() < MAX_BLOCKS {
        let item = items[i];
        let Some(root) = store.get_block(&item.cid).ok().flatten() else {
            i += 1; // left out: the client fetches it another way
            continue;
        };
        let base = item.base.filter(|_| budget > 0);
        if let Some((reference, ref_len)) = base.and_then(|b| reference(store, &b, budget)) {
            budget -= ref_len;
            PartHead::Delta { item: i, ref_len }.write(w)?;
            let size = file_size(&item.cid, &root).unwrap_or(0);
            let mut z = zstd::stream::write::Encoder::with_ref_prefix(&mut *w, LEVEL, &reference)?;
            z.window_log(window_log(ref_len, size))?;
            z.long_distance_matching(true)?;
            send_dag(store, &item.cid, &mut z, sent)?;
            z.finish()?;
            i += 1;
            continue;
        }
        // A run of items without a usable base, in one frame.
        let first = i;
        let mut end = i + 1;
        while end < items.len()
            && (budget == 0
                || items[end]
                    .base
                    .is_none_or(|b| !store.contains(&b).unwrap_or(false)))
        {
            end += 1;
        }
        PartHead::Plain {
            first,
            count: end - first,
        }
        .write(w)?;
        let mut z = zstd::stream::write::Encoder::new(&mut *w, LEVEL)?;
        for item in &items[first..end] {
            if !send_dag(store, &item.cid, &mut z, sent)? || sent.len() >= MAX_BLOCKS {
                break; // the frame ends here: the client takes the rest as not sent
            }
        }
        z.finish()?;
        i = end;
    }
    PartHead::End.write(w)
}

/// The reference for base `base`: its first bytes, at most `MAX_REF` and `budget`;
/// none if the store lacks it, it is not a file, or it is empty.
fn reference(store: &Store, base: &Cid, budget: u64) -> Option<(Vec<u8>, u64)> {
    let block = store.get_block(base).ok()??;
    let len = file_size(base, &block)?.min(MAX_REF).min(budget);
    if len == 0 {
        return None;
    }
    let bytes = read_reference(store, base, len).ok()?;
    Some((bytes, len))
}

/// Writes the blocks of the DAG under `root` in [`Sequence`] order; false if one is
/// missing or damaged (the frame must end there), or the response's block limit is
/// reached.
fn send_dag(
    store: &Store,
    root: &Cid,
    w: &mut dyn Write,
    sent: &mut HashSet<Cid>,
) -> io::Result<bool> {
    let mut seq = Sequence::default();
    seq.start(*root);
    while let Some(cid) = seq.next(sent) {
        if sent.len() >= MAX_BLOCKS {
            return Ok(false);
        }
        let Ok(data) = narfs_decoder::fetch(store, &cid, "") else {
            return Ok(false);
        };
        write_block(w, &data)?;
        sent.insert(cid);
        seq.sent(&cid, &data);
    }
    Ok(true)
}
