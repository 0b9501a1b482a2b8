//! Streaming response bodies with bounded memory: a blocking producer (the NAR decoder,
//! the CAR walker) writes into a [`ChannelWriter`] on a blocking thread; chunks of
//! [`CHUNK`] bytes go through a channel of [`DEPTH`] slots to a [`ChannelBody`] that
//! hyper sends. A slow client makes the producer wait; a gone client (or one that
//! stopped reading, cut by [`crate::stall`]) makes its next write fail with
//! `BrokenPipe`, which stops it. A body ends cleanly only after
//! [`ChannelWriter::finish`]: a producer that stopped any other way makes it fail, so
//! that hyper cuts the response (sized or chunked) instead of ending it.

use std::io::{self, Write};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http_body::{Frame, SizeHint};
use tokio::sync::mpsc;

/// Bytes per chunk handed to hyper: few hand-offs between the producer's thread
/// and the connection's task (each one a wake-up on both sides), within the memory
/// bound per stream (a NAR's decoder also writes behind itself in pieces this size).
pub const CHUNK: usize = 128 << 10;
/// Chunks queued per response: with the one being filled, at most 256 KiB per
/// request, besides the one hyper is writing.
pub const DEPTH: usize = 1;

type Msg = io::Result<Bytes>;

/// A body and the writer that feeds it.
pub fn channel(len: Option<u64>) -> (ChannelWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(DEPTH);
    let finished = Arc::new(AtomicBool::new(false));
    (
        ChannelWriter {
            tx,
            buf: BytesMut::with_capacity(CHUNK),
            finished: finished.clone(),
        },
        ChannelBody {
            rx,
            first: None,
            left: len,
            finished,
        },
    )
}

/// The blocking end: buffers writes into chunks and sends them. Call
/// [`finish`](Self::finish) at the end or [`fail`](Self::fail) on an error; dropped
/// without either, the body fails and hyper cuts the response.
pub struct ChannelWriter {
    tx: mpsc::Sender<Msg>,
    buf: BytesMut,
    /// Set by `finish`: the producer wrote everything.
    finished: Arc<AtomicBool>,
}

impl ChannelWriter {
    fn send(&mut self, msg: Msg) -> io::Result<()> {
        self.tx
            .blocking_send(msg)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    fn send_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.buf.reserve(CHUNK);
        self.send(Ok(chunk))
    }

    /// Sends what is buffered; the body then ends.
    pub fn finish(mut self) -> io::Result<()> {
        self.send_buf()?;
        self.finished.store(true, Ordering::Release);
        Ok(())
    }

    /// Ends the body with an error (hyper then cuts the connection, so that the client
    /// cannot take a truncated body for a whole one).
    pub fn fail(mut self, why: String) {
        let _ = self.send_buf();
        let _ = self.send(Err(io::Error::other(why)));
    }
}

impl Write for ChannelWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let room = CHUNK - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= CHUNK {
            self.send_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full; flushing early would only make them smaller.
        Ok(())
    }
}

/// The async end, an [`http_body::Body`] with an exact size when one is known.
pub struct ChannelBody {
    rx: mpsc::Receiver<Msg>,
    /// A chunk taken by [`first`](Self::first), to be sent first.
    first: Option<Bytes>,
    left: Option<u64>,
    finished: Arc<AtomicBool>,
}

impl ChannelBody {
    /// Waits for the producer's first chunk, so that an error before any byte can
    /// become a proper status code. `Ok(false)`: the body is empty.
    pub async fn first(&mut self) -> io::Result<bool> {
        match self.rx.recv().await {
            Some(Ok(b)) => {
                self.first = Some(b);
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None if self.finished.load(Ordering::Acquire) => Ok(false),
            None => Err(io::Error::other("the producer stopped before any byte")),
        }
    }
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let next = match self.first.take() {
            Some(b) => Some(Ok(b)),
            None => match self.rx.poll_recv(cx) {
                Poll::Ready(m) => m,
                Poll::Pending => return Poll::Pending,
            },
        };
        Poll::Ready(match next {
            Some(Ok(b)) => {
                if let Some(left) = &mut self.left {
                    *left = left.saturating_sub(b.len() as u64);
                }
                Some(Ok(Frame::data(b)))
            }
            Some(Err(e)) => Some(Err(e)),
            None if self.finished.load(Ordering::Acquire) => None,
            None => Some(Err(io::Error::other(
                "the producer stopped before the end of the body",
            ))),
        })
    }

    fn size_hint(&self) -> SizeHint {
        match self.left {
            Some(n) => SizeHint::with_exact(n),
            None => SizeHint::default(),
        }
    }
}
