//! A client of the IPFS trustless gateway
//! (<https://specs.ipfs.tech/http-gateways/trustless-gateway/>): one block as
//! `GET /ipfs/<cid>?format=raw` (`Accept: application/vnd.ipld.raw`), or a node with
//! its children as `GET /ipfs/<cid>?format=car&dag-scope=all`
//! (`application/vnd.ipld.car`). Nothing a gateway sends is trusted: every block is
//! hashed against its CID before it is handed on, a CAR may hold only the blocks
//! asked for, and no answer is buffered past [`MAX_BLOCK_SIZE`] (a `Content-Length`
//! above it is refused before the body is read).
//!
//! Every request says `Accept-Encoding: zstd`: a gateway that compresses (`narfs
//! serve`) sends CARs and compressible blocks as zstd, one that does not (Kubo) sends
//! them as they are. A zstd answer is decoded with a bounded window
//! ([`narfs_nix::http::decoded`]) and under the same limits as a plain one: a raw block
//! no larger than [`MAX_BLOCK_SIZE`] before or after decoding, a CAR read by
//! [`CarReader`] with its own bounds; any other `Content-Encoding` is refused.
//!
//! A [`Connection`] is one keep-alive HTTP/1 connection (hyper's client, the one
//! [`crate::Kubo`] uses too) on a current-thread runtime of its own, for one thread:
//! the fetcher runs several, one per request in flight. Failures that may pass
//! (connection refused or reset, a timeout, a 5xx or 429) are retried with doubling
//! waits, a bounded number of times; a 4xx or a wrong block is not.

use std::io::{self, BufReader, Read};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{header, Request, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use narfs_core::block::{BlockError, Verified, MAX_BLOCK_SIZE};
use narfs_core::car::{CarError, CarReader};
use narfs_core::Cid;

use crate::http::{
    connect, decoded, next_data, parse_url, retried, BodyError, ConnectError, ContentCoding,
    UnknownCoding, ACCEPT_ENCODING,
};

const RAW: &str = "application/vnd.ipld.raw";
const CAR: &str = "application/vnd.ipld.car";
/// The CAR asked for: depth-first, each block once (what the spec calls `dups=n`).
const CAR_ACCEPT: &str = "application/vnd.ipld.car; version=1; order=dfs; dups=n";
/// The most of an error answer kept for the message.
const MAX_MESSAGE: usize = 200;

/// How hard a [`Connection`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GatewayOptions {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The wait before the first retry; each next one doubles.
    pub backoff: Duration,
    /// The longest wait for the answer to start, or for its next bytes.
    pub timeout: Duration,
}

impl Default for GatewayOptions {
    fn default() -> Self {
        GatewayOptions {
            attempts: 4,
            backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(30),
        }
    }
}

/// A trustless gateway's address, e.g. `http://127.0.0.1:8080`.
#[derive(Clone, Debug)]
pub struct Gateway {
    url: String,
    authority: String,
    prefix: String,
    options: GatewayOptions,
}

/// Why a block did not come from the gateway.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GatewayError {
    /// The address is not `http://HOST[:PORT][/PREFIX]`.
    #[error("{url:?} is not the http://HOST:PORT address of a gateway")]
    Url { url: String },
    /// The client's runtime could not start.
    #[error("cannot start the HTTP client")]
    Runtime(#[source] io::Error),
    /// No TCP connection: nothing listens there, or the connection timed out.
    #[error("cannot connect to the gateway")]
    Connect(#[source] io::Error),
    /// The HTTP exchange failed midway (connection reset or closed, malformed HTTP).
    #[error("the HTTP exchange failed")]
    Http(#[source] hyper::Error),
    /// Nothing came for [`GatewayOptions::timeout`].
    #[error("no answer for {0:?}")]
    Timeout(Duration),
    /// The gateway answered with an error status (and maybe a message).
    #[error("the gateway answered {status}{message}")]
    Status { status: StatusCode, message: String },
    /// The answer is not of the type asked for.
    #[error("the gateway answered {got:?}, not {expected}")]
    ContentType { got: String, expected: &'static str },
    /// The answer has a `Content-Encoding` that was not asked for.
    #[error("the gateway's answer cannot be decoded")]
    Coding(#[source] UnknownCoding),
    /// The zstd-encoded answer does not decode (damaged, or a window over 8 MiB).
    #[error("the gateway's zstd answer does not decode")]
    Decode(#[source] io::Error),
    /// The answer is larger than a block may be.
    #[error("the answer is larger than the block limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// The bytes are not the block the CID names.
    #[error("the gateway sent bytes that are not the block")]
    Block(#[from] BlockError),
    /// The CAR answer is malformed or was cut.
    #[error("the CAR answer is unreadable")]
    Car(#[source] CarError),
    /// The CAR answer holds a block that was not asked for.
    #[error("the CAR answer holds block {0}, which was not asked for")]
    Unexpected(Box<Cid>),
    /// A delta answer ([`crate::delta_wire`]) is malformed, lying or cut.
    #[error("the delta answer is unusable")]
    Delta(#[source] Box<crate::delta_wire::WireError>),
    /// Every try failed; the last failure is the source.
    #[error("gave up after {attempts} attempts")]
    GaveUp {
        attempts: u32,
        #[source]
        last: Box<GatewayError>,
    },
}

impl From<BodyError> for GatewayError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Timeout(t) => GatewayError::Timeout(t),
            BodyError::Http(e) => GatewayError::Http(e),
        }
    }
}

impl GatewayError {
    /// Whether trying again may help.
    fn passing(&self) -> bool {
        match self {
            GatewayError::Connect(_) | GatewayError::Http(_) | GatewayError::Timeout(_) => true,
            GatewayError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            GatewayError::Car(CarError::Io { .. }) => true,
            _ => false,
        }
    }
}

impl Gateway {
    /// Parses `url` (`http://HOST[:PORT][/PREFIX]`, port 80 by default).
    pub fn new(url: &str, options: GatewayOptions) -> Result<Gateway, GatewayError> {
        let (authority, prefix) =
            parse_url(url, 80).ok_or_else(|| GatewayError::Url { url: url.into() })?;
        Ok(Gateway {
            url: url.trim_end_matches('/').to_string(),
            authority,
            prefix,
            options,
        })
    }

    /// The address, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A connection for one thread (connected on its first request).
    pub fn connection(&self) -> Result<Connection<'_>, GatewayError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(GatewayError::Runtime)?;
        Ok(Connection {
            gateway: self,
            runtime,
            sender: None,
            received: 0,
        })
    }
}

/// One keep-alive connection to a [`Gateway`]; see the module doc.
pub struct Connection<'g> {
    gateway: &'g Gateway,
    runtime: tokio::runtime::Runtime,
    sender: Option<SendRequest<Full<Bytes>>>,
    received: u64,
}

impl Connection<'_> {
    /// Body bytes received so far (answers to retried requests included).
    pub fn received(&self) -> u64 {
        self.received
    }

    /// The block `cid`, verified, retried as the options say.
    pub fn block(&mut self, cid: &Cid) -> Result<Verified, GatewayError> {
        self.retried(|c| c.block_once(cid))
    }

    /// `cid` as a CAR of its whole DAG (`dag-scope=all`), one try: each block of it
    /// but `cid` itself, verified, goes to `each`, which may be called for some before
    /// an error. Every block must be `cid` or in `expected`.
    pub fn car(
        &mut self,
        cid: &Cid,
        expected: &dyn Fn(&Cid) -> bool,
        each: &mut dyn FnMut(Verified) -> Result<(), GatewayError>,
    ) -> Result<(), GatewayError> {
        let (body, coding, timeout) = self.get(cid, "car&dag-scope=all", CAR_ACCEPT, CAR)?;
        let reader = BodyReader::new(&self.runtime, body, timeout, &mut self.received, None);
        let reader = decoded(BufReader::with_capacity(64 << 10, reader), coding)
            .map_err(GatewayError::Decode)?;
        let mut car =
            CarReader::new(BufReader::with_capacity(256 << 10, reader)).map_err(car_error)?;
        while let Some((got, data)) = car.next_block().map_err(car_error)? {
            if got == *cid {
                continue;
            }
            if !expected(&got) {
                return Err(GatewayError::Unexpected(Box::new(got)));
            }
            each(Verified::check(&got, data)?)?;
        }
        Ok(())
    }

    fn retried<T>(
        &mut self,
        mut once: impl FnMut(&mut Self) -> Result<T, GatewayError>,
    ) -> Result<T, GatewayError> {
        let options = self.gateway.options;
        let passing = GatewayError::passing;
        retried(
            options.attempts,
            options.backoff,
            |attempt| {
                if attempt > 1 {
                    // A failed exchange may leave the connection unusable: a new one.
                    self.sender = None;
                }
                once(self)
            },
            passing,
        )
        .map_err(|(attempts, e)| match attempts {
            1 => e,
            _ => GatewayError::GaveUp {
                attempts,
                last: Box::new(e),
            },
        })
    }

    fn block_once(&mut self, cid: &Cid) -> Result<Verified, GatewayError> {
        let (body, coding, timeout) = self.get(cid, "raw", RAW, RAW)?;
        let reader = BodyReader::new(
            &self.runtime,
            body,
            timeout,
            &mut self.received,
            Some(MAX_BLOCK_SIZE),
        );
        let reader = decoded(BufReader::new(reader), coding).map_err(GatewayError::Decode)?;
        let mut data = Vec::new();
        // One byte past the limit tells a block too large (a zstd bomb's output stops
        // there too).
        reader
            .take(MAX_BLOCK_SIZE as u64 + 1)
            .read_to_end(&mut data)
            .map_err(|e| match coding {
                ContentCoding::Zstd => decode_error(e),
                ContentCoding::Identity => unwrap_io(e),
            })?;
        if data.len() > MAX_BLOCK_SIZE {
            return Err(GatewayError::TooLarge {
                limit: MAX_BLOCK_SIZE,
            });
        }
        Ok(Verified::check(cid, data)?)
    }

    /// Sends `GET /ipfs/<cid>?format=FORMAT` and checks the answer's head: 200, of
    /// type `expected`, in a coding asked for, not announced larger than a block for a
    /// raw one.
    fn get(
        &mut self,
        cid: &Cid,
        format: &str,
        accept: &str,
        expected: &'static str,
    ) -> Result<(Incoming, ContentCoding, Duration), GatewayError> {
        let g = self.gateway;
        let uri = format!("{}/ipfs/{cid}?format={format}", g.prefix);
        let request = Request::get(uri)
            .header(header::HOST, &g.authority)
            .header(header::ACCEPT, accept)
            .header(header::ACCEPT_ENCODING, ACCEPT_ENCODING)
            .body(Full::new(Bytes::new()))
            .map_err(|_| GatewayError::Url { url: g.url.clone() })?;
        let (parts, body, timeout) = self.send(request, expected)?;
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        let coding = match ContentCoding::of(&parts.headers) {
            Ok(c) => c,
            Err(e) => {
                self.sender = None;
                return Err(GatewayError::Coding(e));
            }
        };
        if expected == RAW && length.is_some_and(|n| n > MAX_BLOCK_SIZE as u64) {
            self.sender = None;
            return Err(GatewayError::TooLarge {
                limit: MAX_BLOCK_SIZE,
            });
        }
        Ok((body, coding, timeout))
    }

    /// Sends `request` on the connection (connecting first if needed) and checks the
    /// answer's head: 200, of type `expected`.
    fn send(
        &mut self,
        request: Request<Full<Bytes>>,
        expected: &'static str,
    ) -> Result<(http::response::Parts, Incoming, Duration), GatewayError> {
        let g = self.gateway;
        let timeout = g.options.timeout;
        let sender = &mut self.sender;
        let response = self.runtime.block_on(async {
            if let Some(s) = sender.as_mut() {
                if s.ready().await.is_err() {
                    *sender = None;
                }
            }
            if sender.is_none() {
                let (s, _conn) = connect(&g.authority).await.map_err(|e| match e {
                    ConnectError::Tcp(e) => GatewayError::Connect(e),
                    ConnectError::Http(e) => GatewayError::Http(e),
                })?;
                *sender = Some(s);
            }
            let s = sender.as_mut().expect("connected above");
            match tokio::time::timeout(timeout, s.send_request(request)).await {
                Ok(r) => r.map_err(GatewayError::Http),
                Err(_) => Err(GatewayError::Timeout(timeout)),
            }
        });
        let response = response.inspect_err(|_| self.sender = None)?;
        let (parts, body) = response.into_parts();
        if parts.status != StatusCode::OK {
            let message = self.message(body, timeout);
            self.sender = None;
            return Err(GatewayError::Status {
                status: parts.status,
                message,
            });
        }
        let content_type = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let media = content_type.split(';').next().unwrap_or_default().trim();
        if !media.eq_ignore_ascii_case(expected) {
            self.sender = None;
            return Err(GatewayError::ContentType {
                got: content_type.to_string(),
                expected,
            });
        }
        Ok((parts, body, timeout))
    }

    /// Drops the connection (the next request makes a new one): after an answer
    /// left unread or wrong.
    pub(crate) fn reset(&mut self) {
        self.sender = None;
    }

    /// The request for `path` under the gateway (`GET` without a body, else `POST`).
    pub(crate) fn request(
        &self,
        path: &str,
        accept: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Request<Full<Bytes>>, GatewayError> {
        let g = self.gateway;
        let builder = match &body {
            None => Request::get(format!("{}{path}", g.prefix)),
            Some((ctype, _)) => {
                Request::post(format!("{}{path}", g.prefix)).header(header::CONTENT_TYPE, *ctype)
            }
        };
        builder
            .header(header::HOST, &g.authority)
            .header(header::ACCEPT, accept)
            .body(Full::new(
                body.map(|(_, b)| Bytes::from(b)).unwrap_or_default(),
            ))
            .map_err(|_| GatewayError::Url { url: g.url.clone() })
    }

    /// Sends `request`, checks that the answer is a 200 of type `expected` without a
    /// `Content-Encoding`, and returns its body as a reader (bytes counted in
    /// [`received`](Self::received), each chunk awaited within the timeout). No
    /// retry: the caller decides.
    pub(crate) fn stream(
        &mut self,
        request: Request<Full<Bytes>>,
        expected: &'static str,
    ) -> Result<impl Read + '_, GatewayError> {
        let (parts, body, timeout) = self.send(request, expected)?;
        if let Some(coding) = parts.headers.get(header::CONTENT_ENCODING) {
            self.sender = None;
            let coding = String::from_utf8_lossy(coding.as_bytes()).into_owned();
            return Err(GatewayError::Coding(UnknownCoding(coding)));
        }
        Ok(BodyReader::new(
            &self.runtime,
            body,
            timeout,
            &mut self.received,
            None,
        ))
    }

    /// ": <the first line of an error answer>", or nothing.
    fn message(&mut self, body: Incoming, timeout: Duration) -> String {
        let mut reader = BodyReader::new(&self.runtime, body, timeout, &mut self.received, None);
        let mut text = Vec::new();
        let _ = (&mut reader)
            .take(MAX_MESSAGE as u64)
            .read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        match text.lines().next().map(str::trim) {
            Some(line) if !line.is_empty() => format!(": {line}"),
            _ => String::new(),
        }
    }
}

/// A response body as a [`Read`], each frame awaited on the connection's runtime
/// with the timeout; past `limit` bytes it fails with [`GatewayError::TooLarge`].
struct BodyReader<'c> {
    runtime: &'c tokio::runtime::Runtime,
    body: Incoming,
    chunk: Bytes,
    timeout: Duration,
    received: &'c mut u64,
    limit: Option<usize>,
}

impl<'c> BodyReader<'c> {
    /// A reader of `body` that waits at most `timeout` for each chunk, counts what it
    /// receives into `received` and refuses more than `limit` bytes.
    fn new(
        runtime: &'c tokio::runtime::Runtime,
        body: Incoming,
        timeout: Duration,
        received: &'c mut u64,
        limit: Option<usize>,
    ) -> Self {
        BodyReader {
            runtime,
            body,
            chunk: Bytes::new(),
            timeout,
            received,
            limit,
        }
    }
}

impl Read for BodyReader<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let next = next_data(self.runtime, &mut self.body, self.timeout);
            let Some(data) = next.map_err(|e| io::Error::other(GatewayError::from(e)))? else {
                return Ok(0);
            };
            *self.received += data.len() as u64;
            if let Some(limit) = self.limit.as_mut() {
                if data.len() > *limit {
                    let limit = MAX_BLOCK_SIZE;
                    return Err(io::Error::other(GatewayError::TooLarge { limit }));
                }
                *limit -= data.len();
            }
            self.chunk = data;
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}

/// The gateway error a body read failed with.
fn unwrap_io(e: io::Error) -> GatewayError {
    match e.into_inner().map(|inner| inner.downcast::<GatewayError>()) {
        Some(Ok(g)) => *g,
        Some(Err(other)) => GatewayError::Connect(io::Error::other(other)),
        None => GatewayError::Connect(io::Error::other("the body read failed")),
    }
}

/// The gateway error under a failed read of a decoded body, or the decoding's own.
fn decode_error(e: io::Error) -> GatewayError {
    if e.get_ref().is_some_and(|i| i.is::<GatewayError>()) {
        unwrap_io(e)
    } else {
        GatewayError::Decode(e)
    }
}

/// A CAR error, or the gateway error under it when reading the body failed.
fn car_error(e: CarError) -> GatewayError {
    if let CarError::Io { source, .. } = &e {
        if source.get_ref().is_some_and(|i| i.is::<GatewayError>()) {
            if let CarError::Io { source, .. } = e {
                return unwrap_io(source);
            }
        }
    }
    GatewayError::Car(e)
}
