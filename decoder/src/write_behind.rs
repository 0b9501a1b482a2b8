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

use crate::BlockWrite;

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
/// Blocks at least this large are taken whole when gathering; smaller ones are copied
/// (a copy of a few KiB costs less than an `iovec`, a later `free` and a cache miss).
const WHOLE: usize = 16 << 10;
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
        self.blocks.clear();
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
        if !self.gather || block.len() < WHOLE {
            return self.write_all(&block);
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
                // The blocks are freed here, off the decoder's thread.
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
mod tests {
    use super::*;

    #[test]
    fn every_byte_in_order_in_large_writes() {
        /// Records the length of every write.
        struct Lengths(Vec<u8>, Vec<usize>);
        impl Write for Lengths {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(b);
                self.1.push(b.len());
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        const PIECE: usize = 100_000;
        let data: Vec<u8> = (0..5 * PIECE + 123).map(|i| (i * 31 % 251) as u8).collect();
        let (r, out) = write_behind(Lengths(Vec::new(), Vec::new()), PIECE, false, |w| {
            for part in data.chunks(7777) {
                w.write_all(part).unwrap();
            }
            7
        });
        let out = out.unwrap();
        assert_eq!(r, 7);
        assert!(out.0 == data, "bytes differ");
        assert_eq!(out.1[..5], [PIECE; 5]);
        assert_eq!(out.1[5..], [123]);
    }

    /// Gathered: copied bytes and whole blocks (large ones taken, small ones copied)
    /// reach the output in order, in `writev`s of at least `piece` bytes (but the
    /// last) and at most `piece` plus one block, through an output that takes only a
    /// few bytes of the first buffer per call (a short write every time).
    #[test]
    fn gathered_blocks_arrive_in_order_in_large_vectored_writes() {
        /// Takes at most `.2` bytes per call when `.2 > 0`, recording each call's offer.
        struct Gathers(Vec<u8>, Vec<usize>, usize);
        impl Write for Gathers {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.write_vectored(&[IoSlice::new(b)])
            }
            fn write_vectored(&mut self, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
                self.1.push(bufs.iter().map(|b| b.len()).sum());
                let mut left = if self.2 > 0 { self.2 } else { usize::MAX };
                let mut n = 0;
                for b in bufs {
                    let take = b.len().min(left);
                    self.0.extend_from_slice(&b[..take]);
                    n += take;
                    left -= take;
                    if left == 0 {
                        break;
                    }
                }
                Ok(n)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        const PIECE: usize = 100_000;
        let block = |i: usize, len: usize| -> Vec<u8> {
            (0..len).map(|j| ((i * 7 + j * 31) % 251) as u8).collect()
        };
        for limit in [0, 777] {
            let mut expected = Vec::new();
            let ((), out) =
                write_behind(Gathers(Vec::new(), Vec::new(), limit), PIECE, true, |w| {
                    for i in 0..40 {
                        let head = block(i + 1000, 1 + i % 13);
                        w.write_all(&head).unwrap();
                        expected.extend_from_slice(&head);
                        let len = [WHOLE, 3 * WHOLE + 1, WHOLE - 1, 10, 70_000][i % 5];
                        let b = block(i, len);
                        expected.extend_from_slice(&b);
                        w.write_block(b).unwrap();
                    }
                });
            let out = out.unwrap();
            assert!(out.0 == expected, "bytes differ (limit {limit})");
            if limit == 0 {
                let (last, rest) = out.1.split_last().unwrap();
                assert!(*last > 0);
                for &n in rest {
                    assert!(
                        (PIECE..=PIECE + 70_000).contains(&n),
                        "a write of {n} bytes"
                    );
                }
            }
        }
    }

    /// Without gathering, whole blocks are copied into aligned pieces like any bytes.
    #[test]
    fn blocks_are_copied_when_not_gathering() {
        struct Starts(Vec<u8>, bool);
        impl Write for Starts {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.extend_from_slice(b);
                self.1 &= b.as_ptr().align_offset(ALIGN) == 0;
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let data: Vec<u8> = (0..1_000_000).map(|i| (i % 253) as u8).collect();
        let ((), out) = write_behind(Starts(Vec::new(), true), 64 * ALIGN, false, |w| {
            w.write_all(&data[..3]).unwrap();
            for part in data[3..].chunks(WHOLE * 2 + 5) {
                w.write_block(part.to_vec()).unwrap();
            }
        });
        let out = out.unwrap();
        assert!(out.0 == data, "bytes differ");
        assert!(out.1, "a piece was written unaligned");
    }

    /// Every piece reaches the output at an [`ALIGN`] boundary, the largest ones too,
    /// whatever the allocator returned: what lets a direct file write it as it is.
    #[test]
    fn pieces_are_aligned() {
        /// Records whether every write started at an aligned address.
        struct Starts(usize, bool);
        impl Write for Starts {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0 += b.len();
                self.1 &= b.as_ptr().align_offset(ALIGN) == 0;
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        for piece in [ALIGN, 3 * ALIGN + 5, MAX_PIECE] {
            let data = vec![7u8; 3 * piece + 11];
            let ((), out) = write_behind(Starts(0, true), piece, false, |w| {
                // Small allocations in between move the allocator's next address.
                for (i, part) in data.chunks(1000).enumerate() {
                    let _noise = vec![0u8; i % 97];
                    w.write_all(part).unwrap();
                }
            });
            let out = out.unwrap();
            assert_eq!(out.0, data.len());
            assert!(out.1, "a piece of {piece} bytes was written unaligned");
        }
    }

    /// Pieces alive stay within [`HELD`] bytes for large pieces, never fewer than two.
    #[test]
    fn pieces_alive_are_bounded_in_bytes() {
        assert_eq!(alive(MAX_PIECE), 2);
        assert_eq!(alive(1 << 20), PIECES + 2);
        assert_eq!(alive(32 << 10), PIECES + 2);
        assert_eq!(alive(HELD), 2);
        for piece in [1, 4096, 1 << 20, 3 << 20, MAX_PIECE] {
            assert!(alive(piece) * piece <= HELD.max(2 * piece));
        }
    }

    #[test]
    fn the_outputs_own_error_reaches_the_producer() {
        /// Fails every write with a recognisable error.
        struct Refuses;
        impl Write for Refuses {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"))
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (seen, out) = write_behind(Refuses, 1000, true, |w| {
            let piece = vec![0u8; 1000];
            // The producer writes until the writer's failure comes back to it.
            (0..100)
                .find_map(|_| w.write_all(&piece).err())
                .map(|e| e.kind())
        });
        let out_err = out.err().map(|e| e.kind());
        // The error is told once: to the producer, or else at the end.
        let kinds: Vec<_> = [seen, out_err].into_iter().flatten().collect();
        assert!(kinds.contains(&io::ErrorKind::StorageFull), "{kinds:?}");
    }
}
