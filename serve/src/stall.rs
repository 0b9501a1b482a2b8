//! Cutting clients that stop reading: every accepted connection is wrapped in a
//! [`StallGuard`], whose writes fail with `TimedOut` once the socket has not taken a
//! byte for the send timeout. hyper then drops the connection, its response body with
//! it, and the producer behind the body (a decoder on a blocking thread) stops at its
//! next write: a stalled client holds its buffers and its thread for that long at most.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A listener whose connections are [`StallGuard`]s.
pub struct StallListener {
    inner: TcpListener,
    timeout: Duration,
}

impl StallListener {
    pub fn new(inner: TcpListener, timeout: Duration) -> Self {
        StallListener { inner, timeout }
    }
}

impl axum::serve::Listener for StallListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (io, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        (StallGuard::new(io, self.timeout), addr)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// A connection whose pending writes time out.
pub struct StallGuard<T> {
    io: T,
    timeout: Duration,
    /// Running while a write waits for the socket; reset by any progress.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<T> StallGuard<T> {
    pub fn new(io: T, timeout: Duration) -> Self {
        StallGuard {
            io,
            timeout,
            stalled: None,
        }
    }

    /// Passes a ready write on (and forgets any stall); on a pending one, starts or
    /// polls the stall timer, and fails once it has run out.
    fn guard<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("the client read nothing for {timeout:?}"),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write(cx, buf);
        self.guard(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.guard(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_flush(cx);
        self.guard(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.io).poll_shutdown(cx);
        self.guard(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn a_write_the_peer_never_takes_times_out_and_progress_resets_the_timer() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            // A duplex pipe of 1 KiB that nobody reads: the second KiB never goes.
            let (a, mut b) = tokio::io::duplex(1024);
            let mut g = StallGuard::new(a, Duration::from_millis(200));
            let start = std::time::Instant::now();
            g.write_all(&[7; 1024]).await.unwrap();
            let e = g.write_all(&[7; 1024]).await.unwrap_err();
            assert_eq!(e.kind(), io::ErrorKind::TimedOut);
            assert!(start.elapsed() >= Duration::from_millis(200));
            drop(g);

            // A reader that takes a byte now and then keeps it alive past the timeout.
            let (a, mut b2) = tokio::io::duplex(1);
            let mut g = StallGuard::new(a, Duration::from_millis(200));
            let reader = tokio::spawn(async move {
                use tokio::io::AsyncReadExt;
                let mut got = Vec::new();
                let mut byte = [0u8; 1];
                while b2.read_exact(&mut byte).await.is_ok() {
                    got.push(byte[0]);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                got.len()
            });
            g.write_all(&[1; 10]).await.unwrap();
            drop(g);
            assert_eq!(reader.await.unwrap(), 10);
            let mut rest = Vec::new();
            use tokio::io::AsyncReadExt;
            b.read_to_end(&mut rest).await.unwrap();
            assert_eq!(rest.len(), 1024);
        });
    }
}
