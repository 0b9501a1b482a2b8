//! Decoding against what a root record says the NAR is (Nix's `NarHash` and
//! `NarSize`), checked as the bytes stream: a record whose root CID, size or hash was
//! changed must never yield a NAR that a reader takes for the recorded one.
//!
//! [`Checked`] sits between the decoder and its output. It refuses the write that would
//! pass `NarSize`, passes the write that completes `NarSize` bytes only if the whole
//! NAR hashes to `NarHash` (when [`Expect::stream_hash`]), and always holds the last
//! byte it was given until the next write or, at the end, until the decoder has
//! finished cleanly and the size is complete. So whatever the consumer (a file renamed
//! into place, a pipe into `restore`, an HTTP body sized by `NarSize`), a mismatch of
//! any kind leaves it short of the NAR's last byte, and it cannot take what it got for
//! complete.
//!
//! The NarHash stream is one serial SHA-256 over the whole NAR (~1.2 GB/s on one core
//! here), slower than the rest of a decode; so it is skipped for a record whose binding
//! of root to NarHash was established when it was written and whose stored form's
//! checksum held when it was read (a store's `sealed` record, ARCHITECTURE.md's
//! invariant "NarHash is checked where a record is written"). NarSize is always
//! checked; `narfs store verify`, `decode --check-nar-hash`, records of an older
//! narfs and NarHashes from elsewhere (a proxy's upstream narinfo) take the stream.

use std::io::{self, Write};
use std::ops::Deref;

use narfs_core::block::BlockSource;
use narfs_core::{Cid, Encoding};
use narfs_nix::base32 as nixbase32;
use sha2::{Digest, Sha256};

use crate::block_write::{write_all_vectored, BlockWrite, Copying};
use crate::{DecodeError, Limits, Problem};

/// The NAR a root record promises.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expect {
    /// sha256 of the NAR (Nix's `NarHash`).
    pub nar_sha256: [u8; 32],
    /// Length of the NAR in bytes (Nix's `NarSize`).
    pub nar_size: u64,
    /// Whether the output is hashed against `nar_sha256` as it streams. False only
    /// when the binding of this root to this NarHash is already established (see the
    /// module's doc): the size is checked either way.
    pub stream_hash: bool,
}

/// A record's `NarHash` that is not `sha256:` and 52 Nix base32 characters.
#[derive(Debug, thiserror::Error)]
#[error("the recorded NarHash {0:?} is not sha256:<52 Nix base32 characters>")]
#[non_exhaustive]
pub struct BadNarHash(
    /// The `NarHash` as recorded.
    pub String,
);

impl Expect {
    /// From a record's `NarHash` as narfs records it (`sha256:<nix base32>`) and its
    /// `NarSize`.
    pub fn from_record(nar_hash: &str, nar_size: u64) -> Result<Expect, BadNarHash> {
        nar_hash
            .strip_prefix("sha256:")
            .and_then(nixbase32::decode::<32>)
            .map(|nar_sha256| Expect {
                nar_sha256,
                nar_size,
                stream_hash: true,
            })
            .ok_or_else(|| BadNarHash(nar_hash.to_string()))
    }

    /// The same, hashing the output as it streams only if `stream_hash`.
    pub fn with_stream_hash(self, stream_hash: bool) -> Expect {
        Expect {
            stream_hash,
            ..self
        }
    }

    fn nar_hash(&self) -> String {
        nar_hash(&self.nar_sha256)
    }
}

fn nar_hash(sha256: &[u8; 32]) -> String {
    narfs_nix::narinfo::nar_hash_string(sha256)
}

/// [`crate::decode`], with the output checked against `expect` as it streams and
/// bounded by its `nar_size`. On a mismatch `out` has received fewer than `nar_size`
/// bytes and the error says what differs.
///
/// The output is hashed and written behind the decoder, on a thread of its own
/// ([`crate::write_behind`]): the NarHash stream is one core's work, done while the
/// decoder reads and verifies the next blocks.
pub fn decode_checked<S: BlockSource + Sync, W: Write + Send>(
    source: &S,
    root: &Cid,
    encoding: Encoding,
    expect: &Expect,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    decode_checked_to(source, root, encoding, expect, Copying(out), limits).map(|c| c.0)
}

/// [`decode_checked`] into a [`BlockWrite`]: written on the decoder's thread
/// (`output_piece` 0), the tree's verified leaves reach it whole (serve's body channel
/// sends them as they are).
pub fn decode_checked_to<S: BlockSource + Sync, W: BlockWrite + Send>(
    source: &S,
    root: &Cid,
    encoding: Encoding,
    expect: &Expect,
    out: W,
    limits: &Limits,
) -> Result<W, DecodeError> {
    // The record's size is the output limit, so that the walk refuses a file too large
    // for it before reading any of it.
    let lowered = expect.nar_size < limits.max_output;
    let limits = Limits {
        max_output: limits.max_output.min(expect.nar_size),
        ..*limits
    };
    let checked = Checked::new(out, *expect);
    let (decoded, checked) = match limits.output_piece {
        0 => {
            // A mismatch reaches the decoder as its own write error (`walk::nar_error`
            // makes it the problem), so the output has no error of its own to give.
            let mut checked = checked;
            let decoded = crate::decode_to(source, root, encoding, &mut checked, &limits).map(drop);
            (decoded, Ok(checked))
        }
        piece => crate::write_behind(checked, piece, limits.output_gather, |w| {
            crate::decode_to(source, root, encoding, w, &limits).map(drop)
        }),
    };
    let output = |e: io::Error| match mismatch(&e) {
        Some(p) => p,
        None => Problem::Output(e),
    };
    let refused = checked.as_ref().err().and_then(mismatch);
    match (decoded, refused) {
        (Ok(()), _) => checked
            .map_err(output)
            .and_then(Checked::finish)
            .map_err(|p| DecodeError::new(root, "", p)),
        // The output refused bytes before the point the decoder stopped at (the
        // decoder runs ahead of its output): that refusal is the first problem.
        (Err(_), Some(p)) => Err(DecodeError::new(root, "", p)),
        (Err(mut e), None) => {
            // The walk stopped at the record's size (its limit), or the fallback's
            // NAR, cut one byte past it, did not end where the record says it does.
            let at_size = checked
                .as_ref()
                .is_ok_and(|c| c.seen == expect.nar_size && expect.nar_size > 0);
            let over = matches!(*e.problem, Problem::TooLarge(n) if n == expect.nar_size);
            if lowered && (over || at_size) {
                *e.problem = Problem::LongerThanRecorded(expect.nar_size);
            }
            Err(e)
        }
    }
}

/// Decodes the NAR under `root` to nowhere, checking it against `expect`, NarHash
/// included whatever `expect.stream_hash` says: what `verify` does for every recorded
/// root.
pub fn check<S: BlockSource + Sync>(
    source: &S,
    root: &Cid,
    encoding: Encoding,
    expect: &Expect,
    limits: &Limits,
) -> Result<(), DecodeError> {
    let expect = expect.with_stream_hash(true);
    decode_checked(source, root, encoding, &expect, io::sink(), limits).map(drop)
}

/// The writer error that carries a mismatch out through the NAR writer.
#[derive(Debug)]
enum Mismatch {
    Longer(u64),
    Hash { got: [u8; 32], recorded: String },
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.problem())
    }
}

impl std::error::Error for Mismatch {}

impl Mismatch {
    fn problem(&self) -> Problem {
        match self {
            Mismatch::Longer(n) => Problem::LongerThanRecorded(*n),
            Mismatch::Hash { got, recorded } => Problem::NarHashMismatch {
                got: nar_hash(got),
                recorded: recorded.clone(),
            },
        }
    }
}

/// The problem a write error of [`Checked`] stands for, if it is one.
pub(crate) fn mismatch(e: &io::Error) -> Option<Problem> {
    e.get_ref()
        .and_then(|i| i.downcast_ref::<Mismatch>())
        .map(Mismatch::problem)
}

/// The output, hashed and counted against an [`Expect`] (see the module's doc).
pub struct Checked<W> {
    inner: W,
    expect: Expect,
    /// The NarHash stream, when `expect.stream_hash`.
    hasher: Option<Sha256>,
    /// Bytes accepted, the held one included.
    seen: u64,
    /// The last byte written so far (or the last whole block, when given one), held
    /// until the next write or [`finish`](Self::finish).
    held: Option<Held>,
}

/// What [`Checked`] holds back: the last byte of a write, or a whole block given as
/// one ([`BlockWrite`]), so that it is passed on whole, not copied, when released.
enum Held {
    Byte(u8),
    Block(Vec<u8>),
}

/// Blocks at most this large are held whole; a larger one is written but its last byte
/// (what a stream holds besides its queue stays within the body channel's chunk).
const HELD_BLOCK: usize = 256 << 10;

impl<W: BlockWrite> Checked<W> {
    pub fn new(inner: W, expect: Expect) -> Self {
        Checked {
            inner,
            expect,
            hasher: expect.stream_hash.then(Sha256::new),
            seen: 0,
            held: None,
        }
    }

    /// Called once the producer has written the whole NAR: checks that it was all
    /// of it and hashes to `NarHash`, then writes the held last byte and flushes.
    pub fn finish(mut self) -> Result<W, Problem> {
        if self.seen < self.expect.nar_size {
            return Err(Problem::ShorterThanRecorded {
                got: self.seen,
                recorded: self.expect.nar_size,
            });
        }
        if let Some(hasher) = self.hasher.take() {
            let got: [u8; 32] = hasher.finalize().into();
            if got != self.expect.nar_sha256 {
                return Err(Mismatch::Hash {
                    got,
                    recorded: self.expect.nar_hash(),
                }
                .problem());
            }
        }
        write_after(&mut self.inner, self.held.take(), &[]).map_err(Problem::Output)?;
        self.inner.flush().map_err(Problem::Output)?;
        Ok(self.inner)
    }

    /// Checks `parts`, the next bytes of the NAR, before any of them goes out: they
    /// must not run past NarSize, and the write that completes NarSize must make the
    /// whole NAR hash to NarHash. Returns their length.
    fn admit<P: Deref<Target = [u8]>>(&self, parts: &[P]) -> io::Result<u64> {
        let len: u64 = parts.iter().map(|p| p.len() as u64).sum();
        let left = self.expect.nar_size - self.seen;
        if len > left {
            return Err(io::Error::other(Mismatch::Longer(self.expect.nar_size)));
        }
        if let (true, Some(hasher)) = (len == left, &self.hasher) {
            let mut all = hasher.clone();
            parts.iter().for_each(|p| all.update(&**p));
            let got: [u8; 32] = all.finalize().into();
            if got != self.expect.nar_sha256 {
                let recorded = self.expect.nar_hash();
                return Err(io::Error::other(Mismatch::Hash { got, recorded }));
            }
        }
        Ok(len)
    }

    /// Counts `parts` (`len` bytes, [`admit`](Self::admit)ted) as accepted.
    fn accepted<P: Deref<Target = [u8]>>(&mut self, parts: &[P], len: u64) {
        if let Some(h) = &mut self.hasher {
            parts.iter().for_each(|p| h.update(&**p));
        }
        self.seen += len;
    }
}

impl<W: BlockWrite> Write for Checked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some((&last, body)) = buf.split_last() else {
            return Ok(0);
        };
        let len = self.admit(&[buf])?;
        // The last byte so far always waits: for the next write, or for `finish`.
        write_after(&mut self.inner, self.held.take(), body)?;
        self.held = Some(Held::Byte(last));
        self.accepted(&[buf], len);
        Ok(buf.len())
    }

    /// All of `bufs` as one write of the output (the writer behind the decoder
    /// gathers whole leaves into one `writev`): the same checks as `write`, on their
    /// total.
    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let Some(end) = bufs.iter().rposition(|b| !b.is_empty()) else {
            return Ok(0);
        };
        let len = self.admit(bufs)?;
        let (&last, body) = bufs[end].split_last().expect("not empty");
        let held = match self.held.take() {
            Some(Held::Byte(b)) => Some([b]),
            Some(Held::Block(b)) => {
                self.inner.write_block(b)?;
                None
            }
            None => None,
        };
        let mut out: Vec<io::IoSlice<'_>> = Vec::with_capacity(end + 2);
        out.extend(held.as_ref().map(|h| io::IoSlice::new(h)));
        out.extend(bufs[..end].iter().map(|b| io::IoSlice::new(b)));
        out.push(io::IoSlice::new(body));
        write_all_vectored(&mut self.inner, &mut out)?;
        self.held = Some(Held::Byte(last));
        self.accepted(bufs, len);
        Ok(len as usize)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: BlockWrite> BlockWrite for Checked<W> {
    /// The same checks as `write`; the block is then held whole (when small enough)
    /// and passed on as it is once released.
    fn write_block(&mut self, block: Vec<u8>) -> io::Result<()> {
        if block.len() > HELD_BLOCK {
            return self.write_all(&block);
        }
        if block.is_empty() {
            return Ok(());
        }
        let len = self.admit(&[&block[..]])?;
        write_after(&mut self.inner, self.held.take(), &[])?;
        self.accepted(&[&block[..]], len);
        self.held = Some(Held::Block(block));
        Ok(())
    }
}

/// Writes `held` (if any) then `body` to `out`, a held byte and `body` in one
/// `writev` where `out` has one: a held byte written on its own would cost a system
/// call (and a reader's wake-up) per piece, and leave every write into a file
/// unaligned. A held block goes whole.
fn write_after<W: BlockWrite>(out: &mut W, held: Option<Held>, body: &[u8]) -> io::Result<()> {
    let b = match held {
        None => return out.write_all(body),
        Some(Held::Block(block)) => {
            out.write_block(block)?;
            return out.write_all(body);
        }
        Some(Held::Byte(b)) => b,
    };
    let first = [b];
    loop {
        match out.write_vectored(&[io::IoSlice::new(&first), io::IoSlice::new(body)]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => return out.write_all(&body[n - 1..]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
#[path = "expect_tests.rs"]
mod tests;
