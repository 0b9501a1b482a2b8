//! Output written behind the decoder, on a thread of its own, in large writes.
//!
//! Decoding a run of leaves (reading and verifying them on both cores) and writing
//! the previous run (a `write` into a pipe, a page cache or a socket; for a checked
//! decode also the NarHash stream) are independent; done one after the other, each
//! leaves a core idle. [`write_behind`] gathers what the decoder writes into batches
//! of about `piece` bytes and hands them to a writer thread through a channel of
//! [`PIECES`] slots, recycling them: memory stays bounded (`PIECES + 2` batches, two
//! when they are 4 MiB) and every write the output sees is one batch (few system
//! calls, large pipe writes).
//!
//! A batch is a buffer of copied bytes (NAR headers, small files) with, when
//! gathering, verified blocks inserted whole between them ([`BlockWrite`]: a raw leaf
//! read into a buffer of its own is handed over as it is, not copied), written with
//! one `writev`: the decoder's thread then copies nothing but the small parts, and
//! goes on verifying while the writer writes. Without gathering every byte is copied
//! into pieces that each start at an [`ALIGN`]-byte boundary, so that an `O_DIRECT`
//! file ([`narfs_core::direct::DirectFile`]) writes them to the disk as they are,
//! without a copy into a buffer of its own: a decode to a file then overlaps the
//! disk's writes of one piece with the decoding of the next, as `dd oflag=direct`
//! overlaps nothing.
//!
//! The first error of the output is kept and returned, as it is, by the decoder's
//! next write (so a [`crate::Checked`] mismatch still reaches the decoder as its own
//! error) or by the end of [`write_behind`].

use std::io::{self, IoSlice, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

use crate::{BlockWrite, WHOLE_BLOCK};

/// The largest piece: one `write` of the output (as large as a direct file's write,
/// [`narfs_core::direct::PIECE`]).
pub const MAX_PIECE: usize = 4 << 20;
/// Alignment of every piece's first byte: [`narfs_core::direct::ALIGN`].
const ALIGN: usize = narfs_core::direct::ALIGN;
/// Pieces waiting for the writer thread at most.
pub const PIECES: usize = 1;
/// Bytes of pieces alive at most, when that still leaves two (one being filled while
/// one is written): the largest pieces (a direct file's 4 MiB) are double-buffered
/// rather than queued, so that a decode to a file holds no more than it did with 1 MiB
/// pieces and a 4 MiB direct-write buffer of its own.
const HELD: usize = 8 << 20;
/// Most blocks in one batch: one `writev` takes at most `IOV_MAX` (1024) buffers, and
/// each block can sit between two copied parts.
const MAX_BLOCKS: usize = 500;

/// Pieces of `piece` bytes alive at most: within [`HELD`] bytes, at least two and at
/// most `PIECES + 2` (one filled, `PIECES` queued, one written).
fn alive(piece: usize) -> usize {
    (HELD / piece).clamp(2, PIECES + 2)
}

/// A buffer of up to `piece` bytes whose first byte is at an [`ALIGN`] boundary of one
/// allocation that never moves (it is made large enough once; found with
/// `align_offset`, so no `unsafe` allocation is needed), and the whole blocks that go
/// between its bytes: `(at, block)`, the block written after the first `at` bytes.
struct Piece {
    raw: Vec<u8>,
    start: usize,
    blocks: Vec<(usize, Vec<u8>)>,
    /// Bytes of `blocks`.
    in_blocks: usize,
}

impl Piece {
    fn new(piece: usize) -> Piece {
        let mut raw: Vec<u8> = Vec::with_capacity(piece + ALIGN);
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        raw.resize(start, 0);
        Piece {
            raw,
            start,
            blocks: Vec::new(),
            in_blocks: 0,
        }
    }

    /// Copied bytes.
    fn copied(&self) -> usize {
        self.raw.len() - self.start
    }

    /// All bytes: copied and whole blocks.
    fn len(&self) -> usize {
        self.copied() + self.in_blocks
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    fn clear(&mut self) {
        self.raw.truncate(self.start);
        for (_, block) in self.blocks.drain(..) {
            narfs_core::leaf_buffers::give(block);
        }
        self.in_blocks = 0;
    }

    /// Writes every byte in order: the copied bytes as one write, or, with blocks,
    /// copied parts and blocks by `writev`.
    fn write_to(&self, out: &mut impl Write) -> io::Result<()> {
        if self.blocks.is_empty() {
            return out.write_all(self.bytes());
        }
        let bytes = self.bytes();
        let mut slices = Vec::with_capacity(2 * self.blocks.len() + 1);
        let mut from = 0;
        for (at, block) in &self.blocks {
            slices.push(IoSlice::new(&bytes[from..*at]));
            slices.push(IoSlice::new(block));
            from = *at;
        }
        slices.push(IoSlice::new(&bytes[from..]));
        slices.retain(|s| !s.is_empty());
        crate::block_write::write_all_vectored(out, &mut slices)
    }
}

/// The decoder's end: a `Write` that fills pieces and sends them.
pub struct Behind {
    piece: usize,
    /// Whether whole blocks are taken ([`BlockWrite`]) rather than copied.
    gather: bool,
    buf: Piece,
    full: Option<SyncSender<Piece>>,
    empty: Receiver<Piece>,
    /// Pieces made so far (at most [`alive`]).
    made: usize,
    failed: Arc<Mutex<Option<io::Error>>>,
}

impl Behind {
    /// The output's error, taken (the writer thread stopped), or a stand-in.
    fn failure(&mut self) -> io::Error {
        self.failed
            .lock()
            .map(|mut f| f.take())
            .ok()
            .flatten()
            .unwrap_or_else(|| io::Error::new(io::ErrorKind::BrokenPipe, "the output stopped"))
    }

    fn send(&mut self) -> io::Result<()> {
        if self.buf.len() == 0 {
            return Ok(());
        }
        let next = match self.empty.try_recv() {
            Ok(b) => b,
            Err(_) if self.made < alive(self.piece) => {
                self.made += 1;
                Piece::new(self.piece)
            }
            // Every piece is in flight: wait for the writer to give one back.
            Err(_) => match self.empty.recv() {
                Ok(b) => b,
                Err(_) => return Err(self.failure()),
            },
        };
        let full = std::mem::replace(&mut self.buf, next);
        let sent = self.full.as_ref().map(|tx| tx.send(full));
        match sent {
            Some(Ok(())) => Ok(()),
            _ => Err(self.failure()),
        }
    }
}

impl Write for Behind {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        if self.buf.len() >= self.piece {
            self.send()?;
        }
        // Copied bytes (at most `len`) stay within the capacity made for them: the
        // allocation does not move.
        let n = data.len().min(self.piece - self.buf.len());
        self.buf.raw.extend_from_slice(&data[..n]);
        Ok(n)
    }

    fn write_all(&mut self, mut data: &[u8]) -> io::Result<()> {
        while !data.is_empty() {
            let n = self.write(data)?;
            data = &data[n..];
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Pieces go out when full; the last one at the end of `write_behind`.
        Ok(())
    }
}

impl BlockWrite for Behind {
    /// Takes `block` whole into the batch when gathering and it is large enough;
    /// copies it otherwise. A batch holds at most `piece` bytes plus one block.
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        if !self.gather || block.len() < WHOLE_BLOCK {
            self.write_all(&block)?;
            narfs_core::leaf_buffers::give(block);
            return Ok(());
        }
        if self.buf.len() >= self.piece {
            self.send()?;
        }
        let at = self.buf.copied();
        self.buf.in_blocks += block.len();
        self.buf.blocks.push((at, block));
        if self.buf.len() >= self.piece || self.buf.blocks.len() >= MAX_BLOCKS {
            self.send()?;
        }
        Ok(())
    }
}

/// Runs `produce` with a [`Behind`] whose bytes reach `out` on another thread in
/// writes of about `piece` bytes (at most [`MAX_PIECE`] copied; whole blocks taken
/// into them when `gather`, else every byte copied into aligned pieces), then waits
/// for them to be written (not flushed: the caller decides) and returns what
/// `produce` returned with `out`, or the output's first error.
pub fn write_behind<W: Write + Send, R>(
    out: W,
    piece: usize,
    gather: bool,
    produce: impl FnOnce(&mut Behind) -> R,
) -> (R, io::Result<W>) {
    let piece = piece.clamp(1, MAX_PIECE);
    // Two alive: a rendezvous, the decoder's send waits for the writer to take it.
    let (full_tx, full_rx) = sync_channel::<Piece>(alive(piece) - 2);
    let (empty_tx, empty_rx) = sync_channel::<Piece>(alive(piece));
    let failed = Arc::new(Mutex::new(None));
    std::thread::scope(|scope| {
        let failed2 = failed.clone();
        let writer = scope.spawn(move || {
            let mut out = out;
            for mut piece in full_rx {
                if let Err(e) = piece.write_to(&mut out) {
                    if let Ok(mut f) = failed2.lock() {
                        *f = Some(e);
                    }
                    // Dropping the channels makes the producer's next send fail.
                    return None;
                }
                // The blocks are given back here (or freed), off the decoder's thread.
                piece.clear();
                let _ = empty_tx.try_send(piece);
            }
            Some(out)
        });
        let mut behind = Behind {
            piece,
            gather,
            buf: Piece::new(piece),
            full: Some(full_tx),
            empty: empty_rx,
            made: 1,
            failed: failed.clone(),
        };
        let r = produce(&mut behind);
        let sent = behind.send();
        behind.full = None;
        let out = writer.join().expect("the writer thread does not panic");
        let out = match (out, sent) {
            (Some(out), Ok(())) => Ok(out),
            (Some(_), Err(e)) => Err(e),
            (None, _) => Err(behind.failure()),
        };
        (r, out)
    })
}

#[cfg(test)]
#[path = "write_behind_tests.rs"]
mod tests;
