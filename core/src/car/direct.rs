//! [`DirectWriter`]: a new file written on a thread of its own, from aligned buffers,
//! with `O_DIRECT` where the file system allows it (see [`crate::direct`], which says
//! why) — the way [`super::CarFileWriter`] writes a CAR file. The encoder's thread only
//! copies each block into a buffer; the writing thread waits for the device. The last
//! buffer is padded with zeros to [`ALIGN`] and the file then cut back to its length.

use std::fs::File;
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use tempfile::NamedTempFile;

use crate::direct::{set_direct, write_piece, Aligned, ALIGN, PIECE as BUF};

/// Buffers in all: one being filled, one being written, one queued between.
const BUFFERS: usize = 3;

/// Writes a [`NamedTempFile`] from its start, sequentially, on a thread of its own;
/// [`finish`](Self::finish) gives the file back complete (not yet synced).
pub(crate) struct DirectWriter {
    tmp: Option<NamedTempFile>,
    cur: Aligned,
    len: usize,
    written: u64,
    allocated: usize,
    tx: Option<SyncSender<(Aligned, usize)>>,
    back: Receiver<Aligned>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl DirectWriter {
    /// Starts writing `tmp` (empty) from its start; `direct: false` writes through
    /// the page cache even where `O_DIRECT` would work.
    pub(crate) fn new(tmp: NamedTempFile, direct: bool) -> io::Result<DirectWriter> {
        let file = tmp.reopen()?;
        // Refused (EINVAL on tmpfs and the like) or not wanted: the page cache.
        let direct = direct && set_direct(&file, true);
        let (tx, rx) = sync_channel::<(Aligned, usize)>(1);
        let (back_tx, back) = sync_channel::<Aligned>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("car-writer".into())
            .spawn(move || write_all(file, direct, rx, back_tx))?;
        Ok(DirectWriter {
            tmp: Some(tmp),
            cur: Aligned::new(),
            len: 0,
            written: 0,
            allocated: 1,
            tx: Some(tx),
            back,
            thread: Some(thread),
        })
    }

    /// Hands the current buffer (its first `len` bytes) to the writing thread and
    /// takes a free one.
    fn send(&mut self, len: usize) -> io::Result<()> {
        let next = match self.back.try_recv() {
            Ok(b) => b,
            Err(_) if self.allocated < BUFFERS => {
                self.allocated += 1;
                Aligned::new()
            }
            // All in the thread's hands: it gives one back when written.
            Err(_) => match self.back.recv() {
                Ok(b) => b,
                Err(_) => return Err(self.stopped()),
            },
        };
        let full = std::mem::replace(&mut self.cur, next);
        let sent = self.tx.as_ref().map(|tx| tx.send((full, len)));
        if !matches!(sent, Some(Ok(()))) {
            return Err(self.stopped());
        }
        self.written += len as u64;
        self.len = 0;
        Ok(())
    }

    /// The writing thread's error, once it has stopped.
    fn stopped(&mut self) -> io::Error {
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => e,
            _ => io::Error::other("the CAR writing thread stopped"),
        }
    }

    /// Writes what is left, waits for the writing thread and gives the file back,
    /// exactly as long as what was written.
    pub(crate) fn finish(mut self) -> io::Result<NamedTempFile> {
        let tail = self.len;
        if tail > 0 {
            let padded = tail.next_multiple_of(ALIGN);
            self.cur.bytes_mut()[tail..padded].fill(0);
            self.send(padded)?;
            self.written -= (padded - tail) as u64;
        }
        self.tx = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(r)) => r?,
            _ => return Err(io::Error::other("the CAR writing thread panicked")),
        }
        let tmp = self.tmp.take().expect("finish runs once");
        tmp.as_file().set_len(self.written)?;
        Ok(tmp)
    }
}

impl Write for DirectWriter {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(BUF - self.len);
        self.cur.bytes_mut()[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == BUF {
            self.send(BUF)?;
        }
        Ok(n)
    }

    /// Nothing: only whole buffers are written before [`DirectWriter::finish`].
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for DirectWriter {
    fn drop(&mut self) {
        // Unfinished: stop the thread before the temporary file goes.
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl std::fmt::Debug for DirectWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DirectWriter")
            .field("written", &(self.written + self.len as u64))
            .finish_non_exhaustive()
    }
}

/// The writing thread: each buffer in turn (directly while that works, see
/// [`write_piece`]), then back for reuse.
fn write_all(
    mut file: File,
    mut direct: bool,
    rx: Receiver<(Aligned, usize)>,
    back: SyncSender<Aligned>,
) -> io::Result<()> {
    for (buf, len) in rx {
        write_piece(&mut file, &mut direct, &buf.bytes()[..len])?;
        let _ = back.try_send(buf);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn roundtrip(direct: bool, sizes: &[usize]) {
        let dir = tempfile::tempdir().unwrap();
        let tmp = NamedTempFile::new_in(dir.path()).unwrap();
        let mut w = DirectWriter::new(tmp, direct).unwrap();
        let mut want = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            let piece: Vec<u8> = (0..n).map(|j| (i * 31 + j * 7) as u8).collect();
            w.write_all(&piece).unwrap();
            want.extend_from_slice(&piece);
        }
        let tmp = w.finish().unwrap();
        let mut got = Vec::new();
        tmp.reopen().unwrap().read_to_end(&mut got).unwrap();
        assert_eq!(got.len(), want.len());
        assert!(got == want, "the file differs from what was written");
    }

    #[test]
    fn writes_exactly_what_it_was_given() {
        for direct in [true, false] {
            // Nothing; less than a page; several buffers with a ragged tail; exactly
            // one buffer; pieces that straddle buffer boundaries.
            roundtrip(direct, &[]);
            roundtrip(direct, &[1, 57]);
            roundtrip(direct, &[BUF - 3, 10, 2 * BUF + 4095, 1]);
            roundtrip(direct, &[BUF]);
            roundtrip(direct, &[(1 << 20) + 13; 13]);
        }
    }
}
