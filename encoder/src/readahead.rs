//! Reading and hashing the NAR on a second thread: the NAR's own sha256 (`NarHash`)
//! costs as much as hashing the leaves, so it runs beside the parse/chunk/hash work
//! instead of before it. Buffers travel through a bounded channel and are recycled,
//! so memory stays at a few MiB whatever the NAR's size.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::{Scope, ScopedJoinHandle};

use sha2::{Digest, Sha256};

const BUF: usize = 1 << 20;
/// Buffers queued for the parser: enough to keep the reading thread ahead (its
/// hashing and the parser's work each take whole buffers), few enough to keep an
/// encode's memory small (four left a store encode over 64 MiB).
const IN_FLIGHT: usize = 2;

/// The consuming end: an ordinary `Read`.
pub struct ReadAhead {
    rx: Receiver<io::Result<Vec<u8>>>,
    back: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
}

/// What the producer thread reports at the end: bytes read and their sha256.
pub type Digest256 = (u64, [u8; 32]);

/// Starts reading `input` on a thread of `scope`; without `hash`, the digest it
/// reports is all zeros.
pub fn spawn<'scope, R: Read + Send + 'scope>(
    scope: &'scope Scope<'scope, '_>,
    mut input: R,
    hash: bool,
) -> (ReadAhead, ScopedJoinHandle<'scope, Digest256>) {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(IN_FLIGHT);
    let (back, recycled) = sync_channel::<Vec<u8>>(IN_FLIGHT + 2);
    let producer = scope.spawn(move || {
        let mut hasher = Sha256::new();
        let mut count = 0u64;
        loop {
            let mut buf = recycled.try_recv().unwrap_or_default();
            buf.resize(BUF, 0);
            let n = match read_some(&mut input, &mut buf) {
                Ok(n) => n,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    break;
                }
            };
            if n == 0 {
                break;
            }
            buf.truncate(n);
            if hash {
                hasher.update(&buf);
            }
            count += n as u64;
            if tx.send(Ok(buf)).is_err() {
                break; // the consumer stopped early
            }
        }
        let digest = if hash {
            hasher.finalize().into()
        } else {
            [0; 32]
        };
        (count, digest)
    });
    let reader = ReadAhead {
        rx,
        back,
        cur: Vec::new(),
        pos: 0,
    };
    (reader, producer)
}

/// How much of a mapped NAR the NarHash thread hashes between two reports of its
/// position ([`crate::mapped::Behind::hashed`]).
pub(crate) const PIECE: usize = 4 << 20;

/// For a mapped NAR ([`crate::MappedNar`]'s bytes only): its length and (with `hash`)
/// its sha256, on a thread of `scope`, beside the parser reading the same bytes; the
/// pages it has read are given back through `behind` once the builder is past them
/// too.
pub fn spawn_hash<'scope>(
    scope: &'scope Scope<'scope, '_>,
    nar: &'scope [u8],
    hash: bool,
    behind: &'scope crate::mapped::Behind<'scope>,
) -> ScopedJoinHandle<'scope, Digest256> {
    scope.spawn(move || {
        if !hash {
            // Past the whole NAR at once, without waiting for the builder.
            drop(behind.hash_done());
            return (nar.len() as u64, [0; 32]);
        }
        // However this thread ends, the builder must not wait for it.
        let _done = behind.hash_done();
        let mut hasher = Sha256::new();
        let mut at = 0;
        for piece in nar.chunks(PIECE) {
            hasher.update(piece);
            at += piece.len();
            behind.hashed(at);
        }
        (nar.len() as u64, hasher.finalize().into())
    })
}

/// Fills `buf` as far as the input allows (fewer, larger messages).
fn read_some(input: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

impl Read for ReadAhead {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.pos == self.cur.len() {
            let done = std::mem::take(&mut self.cur);
            let _ = self.back.try_send(done);
            match self.rx.recv() {
                Ok(Ok(buf)) => {
                    self.cur = buf;
                    self.pos = 0;
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(0),
            }
        }
        let n = out.len().min(self.cur.len() - self.pos);
        out[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}
