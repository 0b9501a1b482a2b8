//! Tests of [`super`]: the writer behind the decode.

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
        let ((), out) = write_behind(Gathers(Vec::new(), Vec::new(), limit), PIECE, true, |w| {
            for i in 0..40 {
                let head = block(i + 1000, 1 + i % 13);
                w.write_all(&head).unwrap();
                expected.extend_from_slice(&head);
                let len = [
                    WHOLE_BLOCK,
                    3 * WHOLE_BLOCK + 1,
                    WHOLE_BLOCK - 1,
                    10,
                    70_000,
                ][i % 5];
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
        for part in data[3..].chunks(WHOLE_BLOCK * 2 + 5) {
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
