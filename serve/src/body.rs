//! Streaming response bodies with bounded memory: a blocking producer (the NAR decoder,
//! the CAR walker) writes into a [`ChannelWriter`] on a blocking thread; chunks go
//! through a bounded channel to a [`ChannelBody`] that hyper sends, in the
//! [`Shape`] the stream was given (small and few while many streams run, large and
//! more while the cores are not all taken). A slow client makes the producer wait; a gone client (or one that
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

/// Bytes per chunk handed to hyper by a [`Shape::NARROW`] stream, within the memory
/// bound per stream (a NAR's decoder also writes behind itself in pieces this size).
pub const CHUNK: usize = 128 << 10;
/// Chunks queued per [`Shape::NARROW`] response: with the one being filled, at most
/// 256 KiB per request, besides the one hyper is writing.
pub const DEPTH: usize = 1;

/// How a body is cut into chunks and how many wait for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Bytes per chunk (one frame for hyper): the most a write is copied into, and
    /// the largest whole leaf sent as it is.
    pub chunk: usize,
    /// Hand-offs queued besides the one being filled (each a wake-up of the
    /// connection's task or of the producer's thread).
    pub depth: usize,
    /// Bytes of chunks handed off together (at least `chunk`): whole leaves smaller
    /// than this go several to a hand-off. `depth` hand-offs are queued besides the
    /// one being filled.
    pub batch: usize,
}

impl Shape {
    /// For a server running more streams than it has cores: memory first, since the
    /// streams between them keep the cores busy (and stalled clients hold this much).
    pub const NARROW: Shape = Shape {
        chunk: CHUNK,
        depth: DEPTH,
        batch: CHUNK,
    };
    /// For a stream that has cores to itself: twice the chunk (half the hand-offs) and
    /// two of them queued, so that the producer verifies its next leaves while the
    /// socket takes the previous ones instead of waiting for it. Larger chunks were
    /// slower (docs/BENCHMARKS.md, the serve runs: 1 MiB × 4 took ~1.6× as long as 256
    /// KiB × 2 on the same NAR): a 256 KiB chunk is one leaf, copied and sent while it
    /// is still in the core's cache. At most as many such streams as cores run at once
    /// ([`crate::AppState::wide`]). Whole leaves go four to a hand-off (1 MiB): a
    /// 256 KiB leaf each was a wake-up of the connection's task and of the decoder's
    /// thread per leaf (docs/BENCHMARKS.md, branch `wide`'s runs).
    pub const WIDE: Shape = Shape {
        chunk: 256 << 10,
        depth: 2,
        batch: 1 << 20,
    };
}

/// One hand-off: chunks in order (copied bytes, or whole verified leaves), together
/// at most [`Shape::batch`] bytes.
type Msg = io::Result<Vec<Bytes>>;

/// A body and the writer that feeds it, [`Shape::NARROW`].
pub fn channel(len: Option<u64>) -> (ChannelWriter, ChannelBody) {
    shaped(len, Shape::NARROW)
}

/// A body and the writer that feeds it, in `shape`.
pub fn shaped(len: Option<u64>, shape: Shape) -> (ChannelWriter, ChannelBody) {
    let (tx, rx) = mpsc::channel(shape.depth.max(1));
    let finished = Arc::new(AtomicBool::new(false));
    (
        ChannelWriter {
            tx,
            chunk: shape.chunk.max(1),
            buf: BytesMut::new(),
            batch: Vec::new(),
            batched: 0,
            batch_bytes: shape.batch.max(shape.chunk).max(1),
            finished: finished.clone(),
        },
        ChannelBody {
            rx,
            batch: Vec::new().into_iter(),
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
    /// Bytes per chunk.
    chunk: usize,
    buf: BytesMut,
    /// Chunks not sent yet, and their bytes: sent together once they make a chunk's
    /// worth, so that whole leaves smaller than a chunk cost one hand-off (a wake-up
    /// of the connection's task, and of this thread) for several.
    batch: Vec<Bytes>,
    batched: usize,
    /// [`Shape::batch`].
    batch_bytes: usize,
    /// Set by `finish`: the producer wrote everything.
    finished: Arc<AtomicBool>,
}

impl ChannelWriter {
    fn send(&mut self, msg: Msg) -> io::Result<()> {
        self.tx
            .blocking_send(msg)
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))
    }

    /// Adds `chunk` to the batch, after sending the batch first if both would exceed
    /// [`Shape::batch`]; sends the batch once it holds that many bytes.
    fn push(&mut self, chunk: Bytes) -> io::Result<()> {
        if self.batched + chunk.len() > self.batch_bytes {
            self.send_batch()?;
        }
        self.batched += chunk.len();
        self.batch.push(chunk);
        if self.batched >= self.batch_bytes {
            self.send_batch()?;
        }
        Ok(())
    }

    fn send_batch(&mut self) -> io::Result<()> {
        if self.batch.is_empty() {
            return Ok(());
        }
        self.batched = 0;
        let batch = std::mem::take(&mut self.batch);
        self.send(Ok(batch))
    }

    /// Adds what is buffered, if anything, to the batch as one chunk.
    fn push_buf(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = self.buf.split().freeze();
        self.push(chunk)
    }

    /// Sends what is buffered and batched.
    fn send_buf(&mut self) -> io::Result<()> {
        self.push_buf()?;
        self.send_batch()
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
        if self.buf.is_empty() && self.buf.capacity() < self.chunk {
            // A new chunk (the last one went to hyper with its memory), made only
            // when there is something to put in it.
            self.buf = BytesMut::with_capacity(self.chunk);
        }
        let room = self.chunk - self.buf.len();
        let n = data.len().min(room);
        self.buf.extend_from_slice(&data[..n]);
        if self.buf.len() >= self.chunk {
            self.push_buf()?;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        // Chunks go out when full; flushing early would only make them smaller.
        Ok(())
    }
}

impl narfs_decoder::BlockWrite for ChannelWriter {
    /// A verified leaf that fits a chunk becomes a chunk of its own as it is
    /// (`Bytes::from_owner`: no copy; its buffer recycled once sent), after the bytes
    /// buffered before it, batched with the chunks around it; a larger one, or one under [`narfs_decoder::WHOLE_BLOCK`], is
    /// copied. No chunk is larger than [`Shape::chunk`] and no hand-off holds more
    /// than [`Shape::batch`] bytes, so what a stream holds keeps its bound.
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        if block.len() < narfs_decoder::WHOLE_BLOCK || block.len() > self.chunk {
            return self.write_all(&block);
        }
        self.push_buf()?;
        // Given back to the decoder's reads once hyper has sent and dropped it.
        let leaf = narfs_core::leaf_buffers::Recycled(block);
        self.push(Bytes::from_owner(leaf))
    }
}

/// The async end, an [`http_body::Body`] with an exact size when one is known.
pub struct ChannelBody {
    rx: mpsc::Receiver<Msg>,
    /// The chunks of the last batch received not sent yet (the first batch's taken by
    /// [`first`](Self::first) too).
    batch: std::vec::IntoIter<Bytes>,
    left: Option<u64>,
    finished: Arc<AtomicBool>,
}

impl ChannelBody {
    /// Waits for the producer's first chunk, so that an error before any byte can
    /// become a proper status code. `Ok(false)`: the body is empty.
    pub async fn first(&mut self) -> io::Result<bool> {
        match self.rx.recv().await {
            Some(Ok(b)) => {
                self.batch = b.into_iter();
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
        let next = loop {
            if let Some(b) = self.batch.next() {
                break Some(Ok(b));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(Ok(batch))) => self.batch = batch.into_iter(),
                Poll::Ready(Some(Err(e))) => break Some(Err(e)),
                Poll::Ready(None) => break None,
                Poll::Pending => return Poll::Pending,
            }
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

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;

    /// The frames of `body` as the connection would take them: their lengths, or the
    /// error that ended it.
    fn frames(mut body: ChannelBody) -> Result<Vec<usize>, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut lens = Vec::new();
            while let Some(f) = std::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await
            {
                let data = f.map_err(|e| e.to_string())?.into_data().unwrap();
                lens.push(data.len());
            }
            Ok(lens)
        })
    }

    #[test]
    fn a_body_comes_in_chunks_of_its_shape_and_ends_only_when_finished() {
        for shape in [
            Shape {
                chunk: 1000,
                depth: 1,
                batch: 1000,
            },
            Shape {
                chunk: 1000,
                depth: 2,
                batch: 3000,
            },
        ] {
            let (mut w, body) = shaped(Some(3500), shape);
            let producer = std::thread::spawn(move || {
                for _ in 0..35 {
                    w.write_all(&[7u8; 100]).unwrap();
                }
                w.finish().unwrap();
            });
            assert_eq!(frames(body), Ok(vec![1000, 1000, 1000, 500]));
            producer.join().unwrap();

            // A producer that stops without `finish` fails the body after what it sent.
            let (mut w, body) = shaped(None, shape);
            let producer = std::thread::spawn(move || {
                w.write_all(&[7u8; 2500]).unwrap();
            });
            let e = frames(body).unwrap_err();
            assert!(e.contains("stopped before the end"), "{e}");
            producer.join().unwrap();
        }
    }

    /// Whole blocks that fit a chunk go as chunks of their own, in order after the
    /// bytes buffered before them; others are copied into chunks.
    #[test]
    fn blocks_that_fit_a_chunk_go_whole() {
        use narfs_decoder::BlockWrite as _;
        let shape = Shape {
            chunk: 64 << 10,
            depth: 2,
            batch: 64 << 10,
        };
        let (mut w, body) = shaped(None, shape);
        let producer = std::thread::spawn(move || {
            w.write_all(&[1u8; 100]).unwrap();
            w.write_block(vec![2u8; 40_000]).unwrap();
            w.write_block(vec![3u8; 100]).unwrap();
            w.write_block(vec![4u8; 70_000]).unwrap();
            w.finish().unwrap();
        });
        assert_eq!(frames(body), Ok(vec![100, 40_000, 65_536, 4_564]));
        producer.join().unwrap();
    }

    /// Whole leaves go several to a hand-off: an unread body queues one batch of
    /// four and the writer fills the next before it waits.
    #[test]
    fn whole_leaves_go_several_to_a_hand_off() {
        use narfs_decoder::BlockWrite as _;
        let shape = Shape {
            chunk: 64 << 10,
            depth: 1,
            batch: 256 << 10,
        };
        let (mut w, body) = shaped(None, shape);
        let (seven, written) = std::sync::mpsc::channel();
        let producer = std::thread::spawn(move || {
            for i in 0..7u8 {
                w.write_block(vec![i; 64 << 10]).unwrap();
            }
            seven.send(()).unwrap();
            w.write_block(vec![7; 64 << 10]).unwrap();
            w.finish().unwrap();
        });
        written
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("seven leaves taken before the body read any");
        assert_eq!(frames(body), Ok(vec![64 << 10; 8]));
        producer.join().unwrap();
    }

    #[test]
    fn a_writer_whose_body_is_gone_fails_with_broken_pipe() {
        let (mut w, body) = shaped(None, Shape::WIDE);
        drop(body);
        let e = w.write_all(&vec![0u8; Shape::WIDE.batch]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }
}
