//! Reading a binary cache over HTTP, as Nix's substituter does: `nix-cache-info`
//! (its `StoreDir`), `<hash>.narinfo`, then the NAR at the narinfo's `URL`, relative
//! to the cache's address. A running `guix publish` answers the same requests
//! (`/<hash>.narinfo`, `/nar/<compression>/<hash>-<name>`); it may have no
//! `nix-cache-info` (Guix's client never asks), and then the store directory is the
//! one asked for, or the one each narinfo's `StorePath` is in.
//!
//! The server is untrusted. Nothing is buffered past a bound: a narinfo is read up to
//! [`MAX_NARINFO`] + 1 bytes (a `Content-Length` above that is refused unread), a NAR
//! goes through the same [`NarStream`] as a file cache's, cut one byte past
//! `NarSize`, and its compressed bytes through at most `FileSize` (when the narinfo
//! gives it). A redirect is never followed (it could point anywhere). Each answer
//! must start, and each next chunk of it come, within [`HttpOptions::timeout`].
//! Failures that may pass (no connection, a reset, a timeout, a 5xx or 429) are
//! retried with doubling waits, a bounded number of times, until the answer's head
//! is in; a body cut midway fails the entry (a later run resumes it).
//!
//! Connections are hyper's HTTP/1 client (the plumbing `narfs-ipfs` uses too,
//! [`crate::http`]), each on a current-thread runtime of its own so that a reading
//! thread drives its own connection; finished ones wait in a small pool for the
//! next request.

use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, Bytes};
use http::{header, Request, StatusCode};
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;

use crate::cache::CacheError;
use crate::http::{connect, next_data, parse_url, retried, BodyError, ConnectError};
use crate::nar_stream::{decompress, Decompress, NarStream};
use crate::narinfo::{NarInfo, MAX_NARINFO};
use crate::source::{is_plain_relative, BinaryCache};
use crate::store_path::{is_hash_part, StoreDir};

/// Largest `nix-cache-info` read.
const MAX_CACHE_INFO: u64 = 64 << 10;
/// Idle connections kept for the next request.
const POOL: usize = 16;
/// Read buffer in front of a decompressor.
const READ_BUFFER: usize = 256 << 10;
/// The most of an error answer kept for the message.
const MAX_MESSAGE: u64 = 200;

/// How hard an [`HttpCache`] tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpOptions {
    /// Tries per request, the first included.
    pub attempts: u32,
    /// The wait before the first retry; each next one doubles.
    pub backoff: Duration,
    /// The longest wait for an answer to start, or for its next bytes.
    pub timeout: Duration,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            attempts: 4,
            backoff: Duration::from_millis(250),
            timeout: Duration::from_secs(30),
        }
    }
}

/// Why an HTTP request to the cache failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HttpError {
    /// The client's runtime could not start.
    #[error("cannot start the HTTP client")]
    Runtime(#[source] io::Error),
    /// No TCP connection: nothing listens there, or the connection timed out.
    #[error("cannot connect")]
    Connect(#[source] io::Error),
    /// The exchange failed midway (connection reset or closed, malformed HTTP).
    #[error("the HTTP exchange failed")]
    Exchange(#[source] hyper::Error),
    /// Nothing came for this long.
    #[error("no answer for {0:?}")]
    Timeout(Duration),
    /// The server has no such file (404 or 410).
    #[error("the server has no such file ({0})")]
    NotFound(StatusCode),
    /// The server redirects; redirects are never followed.
    #[error("the server redirects ({status}) to {location:?}, which is not followed")]
    Redirect {
        /// The 3xx status.
        status: StatusCode,
        /// Its `Location` (cut to 200 characters).
        location: String,
    },
    /// The server answered with another error status (and maybe a message).
    #[error("the server answered {status}{message}")]
    Status {
        /// The status.
        status: StatusCode,
        /// ": <the first line of its body>", or empty.
        message: String,
    },
    /// The answer is larger than it may be.
    #[error("the answer is larger than {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// Every try failed; the last failure is the source.
    #[error("gave up after {attempts} attempts")]
    GaveUp {
        /// Tries made.
        attempts: u32,
        /// The last failure.
        #[source]
        last: Box<HttpError>,
    },
}

impl From<BodyError> for HttpError {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::Timeout(t) => HttpError::Timeout(t),
            BodyError::Http(e) => HttpError::Exchange(e),
        }
    }
}

impl HttpError {
    /// Whether trying again may help.
    fn passing(&self) -> bool {
        match self {
            HttpError::Connect(_) | HttpError::Exchange(_) | HttpError::Timeout(_) => true,
            HttpError::Status { status, .. } => {
                status.is_server_error() || *status == StatusCode::TOO_MANY_REQUESTS
            }
            _ => false,
        }
    }
}

/// A binary cache at `http://HOST[:PORT][/PREFIX]`; see the module doc.
pub struct HttpCache {
    url: String,
    authority: String,
    prefix: String,
    /// From `nix-cache-info`, or asked for; `None`: each narinfo's own.
    store_dir: Option<StoreDir>,
    options: HttpOptions,
    pool: Arc<Mutex<Vec<Conn>>>,
}

/// One HTTP/1 connection and the runtime that drives it.
struct Conn {
    runtime: tokio::runtime::Runtime,
    sender: SendRequest<Empty<Bytes>>,
}

impl HttpCache {
    /// Opens the cache at `url` (`http://HOST[:PORT][/PREFIX]`): reads its
    /// `nix-cache-info`, whose `StoreDir` must be `store_dir` when that is given. A
    /// cache without one (a `guix publish`) is read in `store_dir`, or in the store
    /// directory each narinfo's `StorePath` names.
    pub fn open(
        url: &str,
        store_dir: Option<StoreDir>,
        options: HttpOptions,
    ) -> Result<HttpCache, CacheError> {
        let (authority, prefix) =
            parse_url(url, 80).ok_or_else(|| CacheError::BadUrl(url.to_string()))?;
        let mut cache = HttpCache {
            url: url.trim_end_matches('/').to_string(),
            authority,
            prefix,
            store_dir,
            options,
            pool: Arc::new(Mutex::new(Vec::new())),
        };
        let info_url = cache.url_of("nix-cache-info");
        let text = match cache.get("nix-cache-info", MAX_CACHE_INFO) {
            Ok(body) => {
                let mut text = Vec::new();
                body.take(MAX_CACHE_INFO)
                    .read_to_end(&mut text)
                    .map_err(|e| cache.http_error(&info_url, e))?;
                String::from_utf8_lossy(&text).into_owned()
            }
            Err(CacheError::Http {
                source: HttpError::NotFound(_),
                ..
            }) => return Ok(cache),
            Err(e) => return Err(e),
        };
        if let Some(found) = text.lines().find_map(|l| l.strip_prefix("StoreDir: ")) {
            let found = found.trim();
            match (StoreDir::from_path(found), store_dir) {
                (Some(dir), None) => cache.store_dir = Some(dir),
                (Some(dir), Some(want)) if dir == want => {}
                (_, want) => {
                    return Err(CacheError::OtherStoreDir {
                        path: PathBuf::from(info_url),
                        found: found.chars().take(200).collect(),
                        expected: want.unwrap_or(StoreDir::Nix),
                    })
                }
            }
        }
        Ok(cache)
    }

    /// The cache's address, without a trailing `/`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The store directory `nix-cache-info` gave or was asked for, if any.
    pub fn store_dir(&self) -> Option<StoreDir> {
        self.store_dir
    }

    fn url_of(&self, rel: &str) -> String {
        format!("{}/{rel}", self.url)
    }

    /// The error of a body read that failed.
    fn http_error(&self, url: &str, e: io::Error) -> CacheError {
        let source = match e.into_inner().map(|i| i.downcast::<HttpError>()) {
            Some(Ok(h)) => *h,
            Some(Err(other)) => HttpError::Connect(io::Error::other(other)),
            None => HttpError::Connect(io::Error::other("the body read failed")),
        };
        CacheError::Http {
            url: url.to_string(),
            source,
        }
    }

    /// `GET PREFIX/rel`, retried as the options say, refused if announced larger than
    /// `limit`: the body, once its head is 200.
    fn get(&self, rel: &str, limit: u64) -> Result<Body, CacheError> {
        let wrap = |source| CacheError::Http {
            url: self.url_of(rel),
            source,
        };
        let path = format!("{}/{rel}", self.prefix);
        let o = &self.options;
        retried(
            o.attempts,
            o.backoff,
            |_| self.get_once(&path, limit),
            HttpError::passing,
        )
        .map_err(|(attempts, e)| match attempts {
            1 => wrap(e),
            _ => wrap(HttpError::GaveUp {
                attempts,
                last: Box::new(e),
            }),
        })
    }

    fn get_once(&self, path: &str, limit: u64) -> Result<Body, HttpError> {
        let pooled = self.pool.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let fresh = pooled.is_none();
        let conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        match self.send(conn, path, limit) {
            // A kept connection the server has closed since: once more on a new one.
            Err(HttpError::Exchange(_)) if !fresh => self.send(self.connect()?, path, limit),
            r => r,
        }
    }

    fn connect(&self) -> Result<Conn, HttpError> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()
            .map_err(HttpError::Runtime)?;
        let sender = runtime
            .block_on(async {
                let (s, _driver) = connect::<Empty<Bytes>>(&self.authority).await?;
                Ok::<_, ConnectError>(s)
            })
            .map_err(|e| match e {
                ConnectError::Tcp(e) => HttpError::Connect(e),
                ConnectError::Http(e) => HttpError::Exchange(e),
            })?;
        Ok(Conn { runtime, sender })
    }

    fn send(&self, mut conn: Conn, path: &str, limit: u64) -> Result<Body, HttpError> {
        let timeout = self.options.timeout;
        let request = Request::get(path)
            .header(header::HOST, &self.authority)
            .body(Empty::<Bytes>::new())
            .map_err(|_| HttpError::Status {
                status: StatusCode::BAD_REQUEST,
                message: format!(": {path:?} is not a request path"),
            })?;
        let Conn { runtime, sender } = &mut conn;
        let response = runtime.block_on(async {
            sender.ready().await.map_err(HttpError::Exchange)?;
            match tokio::time::timeout(timeout, sender.send_request(request)).await {
                Ok(r) => r.map_err(HttpError::Exchange),
                Err(_) => Err(HttpError::Timeout(timeout)),
            }
        })?;
        let (parts, body) = response.into_parts();
        let body = Body {
            conn: Some(conn),
            body,
            chunk: Bytes::new(),
            timeout,
            pool: Arc::clone(&self.pool),
        };
        let status = parts.status;
        if status.is_redirection() {
            let location = parts
                .headers
                .get(header::LOCATION)
                .map(|v| {
                    String::from_utf8_lossy(v.as_bytes())
                        .chars()
                        .take(200)
                        .collect()
                })
                .unwrap_or_default();
            return Err(HttpError::Redirect { status, location });
        }
        if status == StatusCode::NOT_FOUND || status == StatusCode::GONE {
            return Err(HttpError::NotFound(status));
        }
        if status != StatusCode::OK {
            return Err(HttpError::Status {
                status,
                message: body.message(),
            });
        }
        let length = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if length.is_some_and(|n| n > limit) {
            return Err(HttpError::TooLarge { limit });
        }
        Ok(body)
    }

    /// The store directory of a narinfo `text`: the cache's, else the one its
    /// `StorePath` is in.
    fn dir_of(&self, text: &[u8]) -> StoreDir {
        self.store_dir.unwrap_or_else(|| {
            let guix = format!("StorePath: {}/", StoreDir::Guix.as_str());
            let is_guix = text.starts_with(guix.as_bytes())
                || text
                    .windows(guix.len() + 1)
                    .any(|w| w[0] == b'\n' && &w[1..] == guix.as_bytes());
            if is_guix {
                StoreDir::Guix
            } else {
                StoreDir::Nix
            }
        })
    }
}

impl BinaryCache for HttpCache {
    fn location(&self) -> String {
        self.url.clone()
    }

    fn list(&self) -> Result<Option<Vec<PathBuf>>, CacheError> {
        Ok(None)
    }

    fn entry_of(&self, hash_part: &str) -> Option<PathBuf> {
        is_hash_part(hash_part).then(|| PathBuf::from(format!("{hash_part}.narinfo")))
    }

    fn read_narinfo(&self, entry: &Path) -> Result<NarInfo, CacheError> {
        let rel = entry.to_str().unwrap_or_default();
        let hash = rel.strip_suffix(".narinfo").unwrap_or_default();
        if !is_hash_part(hash) {
            return Err(CacheError::BadUrl(rel.to_string()));
        }
        let limit = MAX_NARINFO as u64 + 1;
        let mut bytes = Vec::new();
        self.get(rel, limit)?
            .take(limit)
            .read_to_end(&mut bytes)
            .map_err(|e| self.http_error(&self.url_of(rel), e))?;
        let info = NarInfo::parse_in(self.dir_of(&bytes), &bytes)?;
        if info.hash_part() != hash {
            return Err(CacheError::NameMismatch(info.store_path));
        }
        Ok(info)
    }

    fn open_nar(&self, info: &NarInfo) -> Result<NarStream, CacheError> {
        if !is_plain_relative(&info.url) {
            return Err(CacheError::BadUrl(info.url.clone()));
        }
        // Any compressed stream within FileSize; without one, NarStream's bound is
        // the only one (a compressor that makes a stream twice the size is not one).
        let limit = info
            .nars
            .iter()
            .find(|n| n.url == info.url)
            .and_then(|n| n.file_size)
            .unwrap_or(u64::MAX);
        let url = self.url_of(&info.url);
        let body = self.get(&info.url, limit)?;
        let bounded = Bounded {
            inner: body,
            left: limit,
        };
        let buffered = BufReader::with_capacity(READ_BUFFER, bounded);
        let inner = decompress(&info.compression, buffered).map_err(|e| match e {
            Decompress::Unsupported => CacheError::Compression(info.compression.clone()),
            Decompress::Io(source) => CacheError::Decompress {
                path: PathBuf::from(url),
                source,
            },
        })?;
        Ok(NarStream::new(inner, info.nar_size))
    }
}

/// A reader that fails past `left` bytes (a NAR file longer than its `FileSize`).
struct Bounded<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n as u64 > self.left {
            let limit = self.left;
            return Err(io::Error::other(HttpError::TooLarge { limit }));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// A response body as a [`Read`]: each chunk awaited on its connection's runtime
/// within the timeout. Read to its end, the connection goes back to the pool.
struct Body {
    conn: Option<Conn>,
    body: Incoming,
    chunk: Bytes,
    timeout: Duration,
    pool: Arc<Mutex<Vec<Conn>>>,
}

impl Body {
    /// ": <the first line of an error answer>", or nothing.
    fn message(self) -> String {
        let mut text = Vec::new();
        let _ = self.take(MAX_MESSAGE).read_to_end(&mut text);
        let text = String::from_utf8_lossy(&text);
        match text.lines().next().map(str::trim) {
            Some(line) if !line.is_empty() => format!(": {line}"),
            _ => String::new(),
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.chunk.is_empty() {
            let Some(conn) = self.conn.as_ref() else {
                return Ok(0);
            };
            let next = next_data(&conn.runtime, &mut self.body, self.timeout);
            match next.map_err(|e| io::Error::other(HttpError::from(e)))? {
                Some(data) => self.chunk = data,
                None => {
                    let conn = self.conn.take();
                    let mut pool = self.pool.lock().unwrap_or_else(|p| p.into_inner());
                    if pool.len() < POOL {
                        pool.extend(conn);
                    }
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.chunk.len());
        buf[..n].copy_from_slice(&self.chunk[..n]);
        self.chunk.advance(n);
        Ok(n)
    }
}
