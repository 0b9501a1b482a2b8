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

#[cfg(test)]
mod tests {
    use super::parse_url;

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
