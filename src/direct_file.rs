//! A new output file written around the page cache (`O_DIRECT`), in aligned pieces of
//! [`PIECE`] bytes.
//!
//! Why: a decode into a file spent most of its writer thread in the kernel's copy into
//! the page cache (`copy_folio_from_iter_atomic`, about 1 GB/s on this project's
//! 2-core machine, for `dd` too), competing with verification for the two cores; and
//! with Linux's default `dirty_background_ratio` (10% of RAM) none of a GB-sized NAR
//! reaches the disk before [`crate::io::Output::commit`]'s `fsync`, so the time was
//! decode, then the whole disk write. Written directly, each piece goes to the disk
//! while the decoder verifies the next ones, and the copy is one `memcpy` into an
//! aligned buffer. `dd bs=4M oflag=direct conv=fsync` writes a 1.3 GB NAR here in
//! about 2 s, buffered 1.7–7 s (`benches/speed.sh` measures both).
//!
//! Where the filesystem refuses `O_DIRECT` (tmpfs, some FUSE), or a write is refused
//! for its alignment, the rest is written through the page cache as before. The tail
//! that is not a multiple of [`ALIGN`] is written buffered by [`DirectFile::finish`].

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;

/// Alignment of the buffer's address, of each direct write's length and offset: a
/// multiple of every device's logical block size in use (512 or 4096).
const ALIGN: usize = 4096;
/// Bytes per direct write: large enough that the device's latency per request is
/// small against its transfer (`dd oflag=direct`: 4 MiB 1.95 s, 1 MiB 2.8 s here).
pub const PIECE: usize = 4 << 20;

/// A file being written from its start, directly when the filesystem allows it.
pub struct DirectFile {
    file: File,
    /// `PIECE + ALIGN` bytes, of which `[start, start + PIECE)` is aligned.
    mem: Vec<u8>,
    start: usize,
    /// Bytes in the aligned window not yet written.
    len: usize,
    direct: bool,
}

impl DirectFile {
    pub fn new(file: File) -> DirectFile {
        let direct = set_direct(&file, true);
        // Zeroed by the allocator's fresh pages, touched only as they fill.
        let mem = vec![0u8; PIECE + ALIGN];
        let start = mem.as_ptr().align_offset(ALIGN);
        DirectFile {
            file,
            mem,
            start,
            len: 0,
            direct,
        }
    }

    /// Writes `len` bytes of the window, directly while that works.
    fn write_window(&mut self, len: usize) -> io::Result<()> {
        let mut done = 0;
        while done < len {
            let part = &self.mem[self.start + done..self.start + len];
            match self.file.write(part) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => done += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Refused for its alignment (or O_DIRECT at all): go on buffered.
                Err(e) if self.direct && e.raw_os_error() == Some(libc::EINVAL) => {
                    set_direct(&self.file, false);
                    self.direct = false;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes what is left (the unaligned tail buffered) and returns the file, not
    /// yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        let aligned = self.len / ALIGN * ALIGN;
        self.write_window(aligned)?;
        if self.direct && aligned < self.len {
            set_direct(&self.file, false);
            self.direct = false;
        }
        let tail = self.start + aligned..self.start + self.len;
        self.file.write_all(&self.mem[tail])?;
        Ok(self.file)
    }
}

impl Write for DirectFile {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let n = data.len().min(PIECE - self.len);
        let at = self.start + self.len;
        self.mem[at..at + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == PIECE {
            self.write_window(PIECE)?;
            self.len = 0;
        }
        Ok(n)
    }

    /// Nothing: a direct write must be a whole aligned piece, and the file is
    /// complete only at [`finish`](DirectFile::finish) anyway (it is a temporary
    /// file until then).
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sets or clears `O_DIRECT` on `file`; whether it is now set.
fn set_direct(file: &File, on: bool) -> bool {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we hold, with integer arguments only.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 {
            return false;
        }
        let want = if on {
            flags | libc::O_DIRECT
        } else {
            flags & !libc::O_DIRECT
        };
        libc::fcntl(fd, libc::F_SETFL, want) == 0 && on
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte in order, for lengths around the piece and alignment sizes, in
    /// writes of odd sizes; on whatever filesystem the temporary directory is.
    #[test]
    fn writes_every_byte_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for len in [
            0,
            1,
            ALIGN - 1,
            ALIGN,
            PIECE - 1,
            PIECE,
            PIECE + ALIGN + 3,
            2 * PIECE + 5,
        ] {
            let data: Vec<u8> = (0..len).map(|i| (i * 131 % 251) as u8).collect();
            let path = dir.path().join(format!("f{len}"));
            let mut w = DirectFile::new(File::create(&path).unwrap());
            for part in data.chunks(1_000_003) {
                w.write_all(part).unwrap();
            }
            w.flush().unwrap();
            drop(w.finish().unwrap());
            assert!(std::fs::read(&path).unwrap() == data, "length {len}");
        }
    }
}
