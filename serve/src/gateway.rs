//! The IPFS trustless gateway (<https://specs.ipfs.tech/http-gateways/trustless-gateway/>):
//! `GET /ipfs/<cid>` answered as `application/vnd.ipld.raw` (the one block, verified
//! against its CID before it is sent) or `application/vnd.ipld.car` (CARv1 rooted at
//! the CID, every block of the DAG once, depth-first pre-order, each verified; with
//! `dag-scope=block` only the root block). The response type comes from `Accept`, or
//! else from `?format=raw|car`; anything else is 406. Paths under the CID are not
//! served (501): ask for the entry's own CID. A client accepting zstd
//! (`Accept-Encoding`) gets CARs compressed as they stream and raw blocks compressed
//! when that pays ([`crate::encoding`]).

use narfs_core::error_chain;
use std::str::FromStr;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use narfs_core::block::verify;
use narfs_core::Cid;

use crate::body::shaped;
use crate::car_stream;
use crate::encoding::{self, BodySink, Coding};
use crate::{blocking, fail, text, AppState};

const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car";
const CAR_RESPONSE: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";

/// The response types the gateway produces.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Raw,
    Car,
}

/// Picks the response type: the acceptable supported type of highest `q` in `Accept`
/// (first listed on a tie); else the `format` parameter; else none (406).
pub fn negotiate(accept: Option<&str>, format: Option<&str>) -> Option<Format> {
    let mut best: Option<(f32, Format)> = None;
    for item in accept.unwrap_or_default().split(',') {
        let mut parts = item.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default().to_ascii_lowercase();
        let mut q = 1.0f32;
        let mut version_ok = true;
        for p in parts {
            let Some((k, v)) = p.split_once('=') else {
                continue;
            };
            match k.trim().to_ascii_lowercase().as_str() {
                "q" => q = v.trim().parse().unwrap_or(0.0),
                "version" => version_ok = v.trim() == "1",
                _ => {}
            }
        }
        let kind = match media.as_str() {
            RAW => Format::Raw,
            CAR if version_ok => Format::Car,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, kind));
        }
    }
    best.map(|(_, k)| k).or(match format {
        Some("raw") => Some(Format::Raw),
        Some("car") => Some(Format::Car),
        _ => None,
    })
}

/// The value of `key` in a query string (no percent-decoding: the values this gateway
/// understands are plain words).
fn param<'q>(query: Option<&'q str>, key: &str) -> Option<&'q str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

pub async fn ipfs(
    State(st): State<Arc<AppState>>,
    Path(rest): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let (cid_str, sub) = rest.split_once('/').unwrap_or((&rest, ""));
    let Ok(cid) = Cid::from_str(cid_str) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!("{cid_str:?} is not a CID\n"),
        );
    };
    if !sub.is_empty() {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "paths under a CID are not served here; ask for the entry's CID\n",
        );
    }
    let q = query.as_deref();
    let Some(coding) = encoding::for_request(&headers) else {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            "blocks and CARs are sent as they are or as zstd (Accept-Encoding)\n",
        );
    };
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let Some(format) = negotiate(accept, param(q, "format")) else {
        return text(
            StatusCode::NOT_ACCEPTABLE,
            format!(
                "this is a trustless gateway: ask for {RAW} or {CAR} (Accept or ?format=raw|car)\n"
            ),
        );
    };
    let all = match param(q, "dag-scope") {
        None | Some("all") => true,
        Some("block") => false,
        Some(other) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!("dag-scope={other} is not supported (all, block)\n"),
            )
        }
    };
    if param(q, "entity-bytes").is_some() {
        return text(StatusCode::BAD_REQUEST, "entity-bytes is not supported\n");
    }
    let store = st.store.clone();
    let block = blocking(move || match store.get_block(&cid) {
        Ok(Some(b)) => match verify(&cid, &b) {
            Ok(()) => Ok(b),
            Err(e) => Err(fail(format!(
                "the stored block is damaged: {}",
                error_chain(&e)
            ))),
        },
        Ok(None) => Err(Box::new(text(
            StatusCode::NOT_FOUND,
            format!("no block {cid} here\n"),
        ))),
        Err(e) => Err(fail(error_chain(&e))),
    })
    .await;
    let block = match block {
        Ok(b) => b,
        Err(r) => return r,
    };
    let common = [
        (
            header::VARY,
            HeaderValue::from_static("Accept, Accept-Encoding"),
        ),
        (
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=29030400, immutable"),
        ),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
    ];
    let (ctype, ext) = match format {
        Format::Raw => (RAW, "bin"),
        Format::Car => (CAR_RESPONSE, "car"),
    };
    let disposition = HeaderValue::from_str(&format!("attachment; filename=\"{cid}.{ext}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("attachment"));
    // A raw block is compressed only when that pays; a CAR always is when asked.
    let (block, coding) = match (format, coding) {
        (Format::Raw, Coding::Zstd) => {
            match blocking(move || Ok(encoding::whole_block(block, coding))).await {
                Ok(b) => b,
                Err(r) => return r,
            }
        }
        _ => (block, coding),
    };
    // Each representation its own tag.
    let zst = if coding == Coding::Zstd { ".zst" } else { "" };
    let etag = HeaderValue::from_str(&format!("\"{cid}.{ext}{zst}\""))
        .unwrap_or_else(|_| HeaderValue::from_static("\"\""));
    let specific = [
        (header::CONTENT_TYPE, HeaderValue::from_static(ctype)),
        (header::CONTENT_DISPOSITION, disposition),
        (header::ETAG, etag),
    ];
    let mut r = match format {
        Format::Raw => (common, specific, block).into_response(),
        Format::Car => {
            let (shape, _) = st.stream_shape();
            let ahead = match shape == crate::body::Shape::WIDE {
                true => car_stream::AHEAD,
                false => 0,
            };
            let (writer, body) = shaped(None, shape);
            let sink = match BodySink::coded(writer, coding) {
                Ok(s) => s,
                Err(e) => return crate::internal(format!("cannot start the encoder: {e}")),
            };
            let store = st.store.clone();
            tokio::task::spawn_blocking(move || {
                car_stream::stream_car(&store, cid, block, all, ahead, sink)
            });
            (common, specific, Body::new(body)).into_response()
        }
    };
    if coding == Coding::Zstd {
        r.headers_mut()
            .insert(header::CONTENT_ENCODING, HeaderValue::from_static("zstd"));
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let n = negotiate;
        assert_eq!(n(Some(RAW), None), Some(Format::Raw));
        assert_eq!(
            n(Some("application/vnd.ipld.car; version=1"), None),
            Some(Format::Car)
        );
        assert_eq!(n(Some("application/vnd.ipld.car;version=2"), None), None);
        assert_eq!(
            n(
                Some("application/vnd.ipld.raw;q=0.5, application/vnd.ipld.car"),
                None
            ),
            Some(Format::Car)
        );
        assert_eq!(n(Some("application/vnd.ipld.raw;q=0"), None), None);
        assert_eq!(n(Some("APPLICATION/VND.IPLD.RAW"), None), Some(Format::Raw));
        // An explicit supported Accept wins over ?format; otherwise ?format decides.
        assert_eq!(n(Some(RAW), Some("car")), Some(Format::Raw));
        assert_eq!(n(Some("*/*"), Some("car")), Some(Format::Car));
        assert_eq!(n(None, Some("raw")), Some(Format::Raw));
        assert_eq!(n(Some("text/html, */*"), None), None);
        assert_eq!(n(None, None), None);
        assert_eq!(n(None, Some("tar")), None);
    }

    #[test]
    fn query_params() {
        let q = Some("format=car&dag-scope=block&x");
        assert_eq!(param(q, "format"), Some("car"));
        assert_eq!(param(q, "dag-scope"), Some("block"));
        assert_eq!(param(q, "x"), Some(""));
        assert_eq!(param(q, "y"), None);
        assert_eq!(param(None, "format"), None);
    }
}
