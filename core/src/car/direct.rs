//! [`DirectWriter`]: a new file written on a thread of its own, from aligned buffers,
//! with `O_DIRECT` where the file system allows it — the way [`super::CarFileWriter`]
//! writes a CAR file.
//!
//! Why: a CAR file is written once, synced, and usually not read back at once, so
//! copying it into the page cache first buys nothing, and on the machine issue 19 is
//! measured on that copy is the bottleneck (fresh page-cache pages cost ~5 s per GB
//! there; `dd bs=1M` of a 1.3 GB NAR: 6.6–10 s through the page cache, 1.5–1.9 s with
//! `oflag=direct`, sync included; `perf` showed 60% of an encode to a CAR file in
//! `copy_folio_from_iter_atomic`). With `O_DIRECT` the device reads our buffers
//! directly; the encoder's thread only copies each block into a buffer, and the
//! writing thread waits for the device, not the CPU. Where `O_DIRECT` is refused
//! (tmpfs, some network file systems) the same thread writes through the page cache.
//!
//! `O_DIRECT` wants the buffer's address, the file offset and the length aligned to
//! the device's block size: buffers are [`BUF`] bytes at a [`ALIGN`]-byte boundary
//! and every write but the last is whole; the last is padded with zeros to
//! [`ALIGN`] and the file then cut back to its true length.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::thread::JoinHandle;

use tempfile::NamedTempFile;

/// Bytes per write: large enough that the device's per-request latency is small
/// beside the transfer (`dd oflag=direct`: bs=4M 1.54 s, bs=1M 1.8 s for 1.3 GB).
const BUF: usize = 4 << 20;
/// Buffer and length alignment `O_DIRECT` needs (a page, ≥ any usual block size).
const ALIGN: usize = 4096;
/// Buffers in all: one being filled, one being written, one queued between.
const BUFFERS: usize = 3;

/// A [`BUF`]-byte slice of a larger allocation, starting at an [`ALIGN`] boundary
/// (found with `align_offset`, so no `unsafe` allocation is needed).
struct Aligned {
    raw: Vec<u8>,
    start: usize,
}

impl Aligned {
    fn new() -> Aligned {
        let raw = vec![0u8; BUF + ALIGN];
        let start = raw.as_ptr().align_offset(ALIGN);
        Aligned { raw, start }
    }

    fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + BUF]
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + BUF]
    }
}

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
        let (file, direct) = match direct.then(|| open_direct(&tmp)) {
            Some(Ok(f)) => (f, true),
            // Refused (EINVAL on tmpfs and the like) or not wanted: the page cache.
            _ => (tmp.reopen()?, false),
        };
        let fallback = direct.then(|| tmp.reopen()).transpose()?;
        let (tx, rx) = sync_channel::<(Aligned, usize)>(1);
        let (back_tx, back) = sync_channel::<Aligned>(BUFFERS);
        let thread = std::thread::Builder::new()
            .name("car-writer".into())
            .spawn(move || write_all(file, fallback, rx, back_tx))?;
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

#[cfg(target_os = "linux")]
fn open_direct(tmp: &NamedTempFile) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT)
        .open(tmp.path())
}

#[cfg(not(target_os = "linux"))]
fn open_direct(tmp: &NamedTempFile) -> io::Result<File> {
    let _ = (tmp, OpenOptions::new());
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

/// The writing thread: each buffer in turn, then back for reuse. A direct write
/// refused as invalid (a device wanting larger alignment than [`ALIGN`]) goes on
/// through `fallback`, the same file opened without `O_DIRECT`, from where it was.
fn write_all(
    mut file: File,
    mut fallback: Option<File>,
    rx: Receiver<(Aligned, usize)>,
    back: SyncSender<Aligned>,
) -> io::Result<()> {
    use std::io::{Seek, SeekFrom};
    for (buf, len) in rx {
        let mut data = &buf.bytes()[..len];
        while !data.is_empty() {
            match file.write(data) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => data = &data[n..],
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::InvalidInput && fallback.is_some() => {
                    let at = file.stream_position()?;
                    file = fallback.take().expect("checked");
                    file.seek(SeekFrom::Start(at))?;
                }
                Err(e) => return Err(e),
            }
        }
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
