//! The HTTP plumbing narfs's clients share (the Kubo RPC client and the gateway
//! client of `narfs-ipfs`, and [`crate::HttpCache`]): how an
//! `http://HOST[:PORT][/PREFIX]` address is read, and how a connection is opened
//! (hyper's HTTP/1 client over a tokio TCP stream, with a connect timeout). It lives
//! here, the lowest crate with an HTTP client, because the binary cache reader needs
//! it and cannot depend on `narfs-ipfs`, which sits above the store.
//!
//! Compressed transfer ([`ACCEPT_ENCODING`], [`ContentCoding`], [`decoded`]): the
//! clients ask for `Content-Encoding: zstd` (which `narfs serve` sends for CARs and
//! NARs) and decode it with the window bounded as RFC 8878 asks of HTTP (8 MiB), so a
//! hostile server's zstd bomb costs bounded memory; how much *output* it may make is
//! the reader's own limit on top (a block's size, the CAR reader's section sizes).

use std::io::{self, BufRead};
use std::time::Duration;

use bytes::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

/// How long to wait for the TCP connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// `http://HOST[:PORT][/PREFIX]` → (`HOST:PORT`, `/PREFIX` or empty), or `None` if
/// the address is not that (another scheme, a query, user info, no host).
pub fn parse_url(url: &str, default_port: u16) -> Option<(String, String)> {
    let uri: http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") || uri.query().is_some() {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || authority.host().is_empty() {
        return None;
    }
    let host = authority.host();
    let port = authority.port_u16().unwrap_or(default_port);
    let prefix = uri.path().trim_end_matches('/').to_string();
    Some((format!("{host}:{port}"), prefix))
}

/// The `Accept-Encoding` narfs's clients send: zstd, else the bytes as they are.
pub const ACCEPT_ENCODING: &str = "zstd";

/// The largest zstd window a client accepts: 2^23 = 8 MiB, RFC 8878's limit for HTTP
/// (`narfs serve`'s level uses 1 MiB).
pub const WINDOW_LOG_MAX: u32 = 23;

/// How a response body is encoded (`Content-Encoding`), of those a client asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ContentCoding {
    /// No `Content-Encoding` (or `identity`): the bytes as they are.
    Identity,
    /// `zstd` (RFC 8878).
    Zstd,
}

/// A `Content-Encoding` the client did not ask for and cannot decode.
#[derive(Debug, thiserror::Error)]
#[error("the server sent Content-Encoding {0:?}, which was not asked for")]
pub struct UnknownCoding(pub String);

impl ContentCoding {
    /// The coding of a response with `headers`: none, `identity` or `zstd`; anything
    /// else (`gzip`, several codings stacked) is refused, not passed on as if it were
    /// the content.
    pub fn of(headers: &http::HeaderMap) -> Result<ContentCoding, UnknownCoding> {
        let mut coding = ContentCoding::Identity;
        for value in headers.get_all(http::header::CONTENT_ENCODING) {
            let text = value.to_str().map_err(|_| UnknownCoding("?".into()))?;
            for c in text.split(',').map(str::trim).filter(|c| !c.is_empty()) {
                if c.eq_ignore_ascii_case("identity") {
                    continue;
                }
                if !c.eq_ignore_ascii_case("zstd") || coding == ContentCoding::Zstd {
                    return Err(UnknownCoding(text.to_string()));
                }
                coding = ContentCoding::Zstd;
            }
        }
        Ok(coding)
    }
}

/// `body` decoded as `coding` says: itself, or a zstd decoder over it whose window is
/// at most 2^[`WINDOW_LOG_MAX`] (a frame asking for more fails to decode).
pub fn decoded<'r, R: BufRead + 'r>(
    body: R,
    coding: ContentCoding,
) -> io::Result<Box<dyn io::Read + 'r>> {
    Ok(match coding {
        ContentCoding::Identity => Box::new(body),
        ContentCoding::Zstd => {
            let mut d = zstd::stream::read::Decoder::with_buffer(body)?;
            d.window_log_max(WINDOW_LOG_MAX)?;
            Box::new(d)
        }
    })
}

/// Why the next chunk of a response body did not come.
#[derive(Debug)]
pub enum BodyError {
    /// No frame came within the timeout.
    Timeout(Duration),
    /// The connection failed while the body was read.
    Http(hyper::Error),
}

/// The next data chunk of `body`, awaited on `runtime` for at most `timeout`; `None` at
/// the body's end (trailers are skipped). The one frame loop under the clients'
/// blocking body readers (the gateway client's and [`crate::HttpCache`]'s), which
/// each add their own counting, limits and connection reuse.
pub fn next_data(
    runtime: &tokio::runtime::Runtime,
    body: &mut hyper::body::Incoming,
    timeout: Duration,
) -> Result<Option<Bytes>, BodyError> {
    use http_body_util::BodyExt;
    loop {
        let frame = runtime.block_on(async { tokio::time::timeout(timeout, body.frame()).await });
        match frame.map_err(|_| BodyError::Timeout(timeout))? {
            None => return Ok(None),
            Some(Err(e)) => return Err(BodyError::Http(e)),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    return Ok(Some(data));
                }
            }
        }
    }
}

/// Why a connection could not be made.
#[derive(Debug)]
pub enum ConnectError {
    /// The TCP connection failed or timed out.
    Tcp(io::Error),
    /// The HTTP/1 handshake failed.
    Http(hyper::Error),
}

/// An HTTP/1 connection to `authority`, its driver spawned on the current runtime
/// (the handle ends when the connection does).
pub async fn connect<B>(
    authority: &str,
) -> Result<(SendRequest<B>, JoinHandle<Result<(), hyper::Error>>), ConnectError>
where
    B: hyper::body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let connect = tokio::net::TcpStream::connect(authority);
    let stream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(io::ErrorKind::TimedOut, "timed out")),
    }
    .map_err(ConnectError::Tcp)?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(ConnectError::Http)?;
    Ok((sender, tokio::spawn(conn)))
}

/// Runs `once` (given the try's number, from 1) until it succeeds, fails in a way
/// `passing` says a retry cannot help, or `attempts` tries (at least one) have failed,
/// sleeping `backoff`, then twice as long each time, between tries. The failure comes
/// with the number of tries made, so that the caller can say it gave up after several.
pub fn retried<T, E>(
    attempts: u32,
    backoff: Duration,
    mut once: impl FnMut(u32) -> Result<T, E>,
    passing: impl Fn(&E) -> bool,
) -> Result<T, (u32, E)> {
    let mut wait = backoff;
    let mut attempt = 1;
    loop {
        match once(attempt) {
            Ok(v) => return Ok(v),
            Err(e) if passing(&e) && attempt < attempts.max(1) => {
                std::thread::sleep(wait);
                wait = wait.saturating_mul(2);
                attempt += 1;
            }
            Err(e) => return Err((attempt, e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{decoded, parse_url, retried, ContentCoding};
    use std::io::Read;
    use std::time::Duration;

    #[test]
    fn content_codings() {
        let of = |v: &[&str]| {
            let mut h = http::HeaderMap::new();
            for v in v {
                h.append(http::header::CONTENT_ENCODING, v.parse().unwrap());
            }
            ContentCoding::of(&h).map_err(|e| e.0)
        };
        assert_eq!(of(&[]), Ok(ContentCoding::Identity));
        assert_eq!(of(&["identity"]), Ok(ContentCoding::Identity));
        assert_eq!(of(&["ZSTD"]), Ok(ContentCoding::Zstd));
        assert_eq!(of(&["identity, zstd"]), Ok(ContentCoding::Zstd));
        assert_eq!(of(&["gzip"]), Err("gzip".into()));
        assert_eq!(of(&["zstd", "zstd"]), Err("zstd".into()));
        assert_eq!(of(&["zstd, br"]), Err("zstd, br".into()));
    }

    #[test]
    fn zstd_bodies_decode_within_the_window() {
        let data = b"narfs ".repeat(10_000);
        let z = zstd::encode_all(&data[..], 3).unwrap();
        let mut out = Vec::new();
        decoded(&z[..], ContentCoding::Zstd)
            .unwrap()
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        // A frame whose window is larger than 8 MiB is refused, not allocated.
        let mut enc = zstd::stream::Encoder::new(Vec::new(), 3).unwrap();
        enc.window_log(27).unwrap();
        enc.long_distance_matching(true).unwrap();
        std::io::copy(&mut std::io::repeat(7).take(1 << 20), &mut enc).unwrap();
        let big = enc.finish().unwrap();
        let r = decoded(&big[..], ContentCoding::Zstd)
            .unwrap()
            .read_to_end(&mut Vec::new());
        assert!(r.is_err(), "a 128 MiB window was accepted");
        let mut same = Vec::new();
        decoded(&b"as is"[..], ContentCoding::Identity)
            .unwrap()
            .read_to_end(&mut same)
            .unwrap();
        assert_eq!(same, b"as is");
    }

    #[test]
    fn retries_only_what_may_pass_and_counts_the_tries() {
        let mut tries = Vec::new();
        let r: Result<(), (u32, &str)> = retried(
            3,
            Duration::ZERO,
            |n| {
                tries.push(n);
                Err("busy")
            },
            |e| *e == "busy",
        );
        assert_eq!((r, &tries[..]), (Err((3, "busy")), &[1, 2, 3][..]));
        let r: Result<(), (u32, &str)> =
            retried(3, Duration::ZERO, |_| Err("no"), |e| *e == "busy");
        assert_eq!(r, Err((1, "no")));
        let r = retried(
            3,
            Duration::ZERO,
            |n| if n < 2 { Err("busy") } else { Ok(n) },
            |_| true,
        );
        assert_eq!(r, Ok(2));
    }

    #[test]
    fn urls() {
        let p = |u| parse_url(u, 8080);
        assert_eq!(
            p("http://127.0.0.1:9/"),
            Some(("127.0.0.1:9".into(), "".into()))
        );
        assert_eq!(p("http://h/x/"), Some(("h:8080".into(), "/x".into())));
        assert_eq!(p("https://h"), None);
        assert_eq!(p("http://u@h"), None);
        assert_eq!(p("http://h/?a"), None);
        assert_eq!(p("h:1"), None);
    }
}
