//! Small HTTP documents fetched whole: what a substituter proxy asks an upstream
//! binary cache for (`/nix-cache-info`, `/<hash>.narinfo`). Async, on the caller's
//! tokio runtime (the connection's driver is spawned there), over the same hyper
//! HTTP/1 client as the gateway and Kubo clients. Nothing is buffered past the
//! caller's limit, and the whole exchange is bounded by one timeout, so an upstream
//! that trickles or sends too much costs a bounded amount of time and memory.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt, Empty};

use crate::http::{connect, parse_url, ConnectError, ContentCoding, UnknownCoding};

/// The most of an error answer kept for the message.
const MAX_MESSAGE: usize = 200;

/// Why a document did not come.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DocumentError {
    /// The address is not `http://HOST[:PORT][/PREFIX]`.
    #[error("{url:?} is not an http://HOST:PORT address")]
    Url {
        /// The address as given.
        url: String,
    },
    /// No TCP connection: nothing listens there, or the connection timed out.
    #[error("cannot connect to {url}")]
    Connect {
        /// The server's address.
        url: String,
        #[source]
        source: io::Error,
    },
    /// The HTTP exchange failed midway (connection reset or closed, malformed HTTP).
    #[error("the HTTP exchange with {url} failed")]
    Http {
        /// The server's address.
        url: String,
        #[source]
        source: hyper::Error,
    },
    /// The whole exchange took longer than the timeout.
    #[error("{url} did not answer within {timeout:?}")]
    Timeout {
        /// The server's address.
        url: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The server answered with a status other than 200 or 404.
    #[error("{url} answered {status}{message}")]
    Status {
        /// The document's address.
        url: String,
        /// The status.
        status: StatusCode,
        /// `": "` and the first line of the answer, or empty.
        message: String,
    },
    /// The answer is encoded (`Content-Encoding`) though no coding was asked for.
    #[error("{url} sent an encoded answer")]
    Coding {
        /// The document's address.
        url: String,
        #[source]
        source: UnknownCoding,
    },
    /// The answer is larger than the limit.
    #[error("{url} sent more than {limit} bytes")]
    TooLarge {
        /// The document's address.
        url: String,
        /// The limit.
        limit: usize,
    },
}

/// `GET base + path`: the body if 200, `None` if 404; at most `limit` bytes, the
/// whole exchange within `timeout`.
pub async fn get_document(
    base: &str,
    path: &str,
    limit: usize,
    timeout: Duration,
) -> Result<Option<Bytes>, DocumentError> {
    let url = format!("{}{path}", base.trim_end_matches('/'));
    match tokio::time::timeout(timeout, get(base, path, &url, limit)).await {
        Ok(r) => r,
        Err(_) => Err(DocumentError::Timeout { url, timeout }),
    }
}

async fn get(
    base: &str,
    path: &str,
    url: &str,
    limit: usize,
) -> Result<Option<Bytes>, DocumentError> {
    let bad_url = || DocumentError::Url { url: base.into() };
    let (authority, prefix) = parse_url(base, 80).ok_or_else(bad_url)?;
    let request = Request::get(format!("{prefix}{path}"))
        .header(header::HOST, &authority)
        .body(Empty::<Bytes>::new())
        .map_err(|_| bad_url())?;
    let http = |source| DocumentError::Http {
        url: url.into(),
        source,
    };
    let (mut sender, _conn) = connect(&authority).await.map_err(|e| match e {
        ConnectError::Tcp(source) => DocumentError::Connect {
            url: base.into(),
            source,
        },
        ConnectError::Http(e) => http(e),
    })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    // No `Accept-Encoding` was sent: only the bytes as they are will do.
    match ContentCoding::of(response.headers()) {
        Ok(ContentCoding::Identity) => {}
        Ok(ContentCoding::Zstd) => {
            return Err(DocumentError::Coding {
                url: url.into(),
                source: UnknownCoding("zstd".into()),
            })
        }
        Err(source) => {
            return Err(DocumentError::Coding {
                url: url.into(),
                source,
            })
        }
    }
    let mut body = response.into_body();
    let keep = if status == StatusCode::OK {
        limit
    } else {
        MAX_MESSAGE
    };
    let mut data = BytesMut::new();
    while let Some(frame) = body.frame().await {
        if let Ok(chunk) = frame.map_err(http)?.into_data() {
            if data.len() + chunk.len() > keep {
                if status == StatusCode::OK {
                    return Err(DocumentError::TooLarge {
                        url: url.into(),
                        limit,
                    });
                }
                data.extend_from_slice(&chunk[..keep - data.len()]);
                break;
            }
            data.extend_from_slice(&chunk);
        }
    }
    match status {
        StatusCode::OK => Ok(Some(data.freeze())),
        StatusCode::NOT_FOUND => Ok(None),
        status => {
            let text = String::from_utf8_lossy(&data);
            let message = match text.lines().next().map(str::trim) {
                Some(line) if !line.is_empty() => format!(": {line}"),
                _ => String::new(),
            };
            Err(DocumentError::Status {
                url: url.into(),
                status,
                message,
            })
        }
    }
}
