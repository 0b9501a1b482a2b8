//! The HTTP plumbing narfs's clients share (the Kubo RPC client and the gateway
//! client of `narfs-ipfs`, and [`crate::HttpCache`]): how an
//! `http://HOST[:PORT][/PREFIX]` address is read, and how a connection is opened
//! (hyper's HTTP/1 client over a tokio TCP stream, with a connect timeout). It lives
//! here, the lowest crate with an HTTP client, because the binary cache reader needs
//! it and cannot depend on `narfs-ipfs`, which sits above the store.

use std::io;
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
    use super::{parse_url, retried};
    use std::time::Duration;

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
