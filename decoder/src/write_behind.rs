//! Output written behind the decoder, on a thread of its own, in large aligned pieces.
//!
//! Decoding a run of leaves (reading and verifying them on both cores) and writing
//! the previous run (a `write` into a pipe, a page cache or a socket; for a checked
//! decode also the NarHash stream) are independent; done one after the other, each
//! leaves a core idle. [`write_behind`] copies what the decoder writes into pieces
//! (at most [`MAX_PIECE`] bytes) and hands them to a writer thread through a channel
//! of [`PIECES`] slots, recycling them: memory stays bounded (`PIECES + 2` pieces, two
//! when they are 4 MiB) and
//! every `write` the output sees is one piece (few system calls, large pipe writes).
//! Each piece starts at an [`ALIGN`]-byte boundary, so that an `O_DIRECT` file
//! ([`narfs_core::direct::DirectFile`]) writes it to the disk as it is, without a copy
//! into a buffer of its own: a decode to a file then overlaps the disk's writes of one
//! piece with the decoding of the next, as `dd oflag=direct` overlaps nothing.
//!
//! The first error of the output is kept and returned, as it is, by the decoder's
//! next write (so a [`crate::Checked`] mismatch still reaches the decoder as its own
//! error) or by the end of [`write_behind`].

use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::{Arc, Mutex};

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

/// Pieces of `piece` bytes alive at most: within [`HELD`] bytes, at least two and at
/// most `PIECES + 2` (one filled, `PIECES` queued, one written).
fn alive(piece: usize) -> usize {
    (HELD / piece).clamp(2, PIECES + 2)
}

/// A buffer of up to `piece` bytes whose first byte is at an [`ALIGN`] boundary of one
/// allocation that never moves (it is made large enough once; found with
/// `align_offset`, so no `unsafe` allocation is needed).
struct Piece {
    raw: Vec<u8>,
    start: usize,
}

impl Piece {
    fn new(piece: usize) -> Piece {
        let mut raw: Vec<u8> = Vec::with_capacity(piece + ALIGN);
        let start = raw.as_ptr().align_offset(ALIGN).min(ALIGN);
        raw.resize(start, 0);
        Piece { raw, start }
    }

    fn len(&self) -> usize {
        self.raw.len() - self.start
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..]
    }

    fn clear(&mut self) {
        self.raw.truncate(self.start);
    }
}

/// The decoder's end: a `Write` that fills pieces and sends them.
pub struct Behind {
    piece: usize,
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
        let n = data.len().min(self.piece - self.buf.len());
        // Within the capacity made for it: the allocation does not move.
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

/// Runs `produce` with a [`Behind`] whose bytes reach `out` on another thread in
/// writes of `piece` bytes (at most [`MAX_PIECE`]), then waits for them to be written
/// (not flushed: the caller decides) and returns what `produce` returned with `out`,
/// or the output's first error.
pub fn write_behind<W: Write + Send, R>(
    out: W,
    piece: usize,
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
                if let Err(e) = out.write_all(piece.bytes()) {
                    if let Ok(mut f) = failed2.lock() {
                        *f = Some(e);
                    }
                    // Dropping the channels makes the producer's next send fail.
                    return None;
                }
                piece.clear();
                let _ = empty_tx.try_send(piece);
            }
            Some(out)
        });
        let mut behind = Behind {
            piece,
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
        let (r, out) = write_behind(Lengths(Vec::new(), Vec::new()), PIECE, |w| {
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
            let ((), out) = write_behind(Starts(0, true), piece, |w| {
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
        let (seen, out) = write_behind(Refuses, 1000, |w| {
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
