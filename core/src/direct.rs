//! Writing a new file around the page cache (`O_DIRECT`), from aligned buffers: the one
//! home of narfs's direct writes, used by the CAR file writer (`car::direct`, on a
//! thread of its own) and by the CLI's named output files ([`DirectFile`], on the
//! caller's thread — decode already writes behind itself).
//!
//! Why: a large file narfs writes (a CAR, a decoded NAR) is written once, synced and
//! usually not read back at once, so copying it into the page cache first buys
//! nothing, and on this project's 2-core VM that copy was the bottleneck (`perf`: 60%
//! of an encode to a CAR file and 62% of a decode to a file in the kernel's
//! `copy_folio_from_iter_atomic`; `dd bs=1M` of a 1.3 GB NAR: 6.6–10 s through the page
//! cache, 1.5–1.9 s with `oflag=direct`, sync included). With Linux's default
//! `dirty_background_ratio` none of a GB-sized file reached the disk before the final
//! `fsync` either; written directly, the disk works while narfs computes.
//!
//! `O_DIRECT` wants the buffer's address, the file offset and the length aligned to
//! the device's block size: buffers are [`PIECE`] bytes at an [`ALIGN`]-byte boundary
//! and every write but the last is whole. Where the file system refuses `O_DIRECT`
//! (tmpfs, some FUSE and network file systems) or refuses a write for its alignment,
//! [`write_piece`] goes on through the page cache from where it was.

use std::fs::File;
use std::io::{self, Write};

/// Alignment of a buffer's address and of each direct write's length and offset: a
/// multiple of every device's logical block size in use (512 or 4096).
pub const ALIGN: usize = 4096;
/// Bytes per direct write: large enough that the device's latency per request is
/// small beside its transfer (`dd oflag=direct` of 1.3 GB here: bs=4M 1.5–1.95 s, bs=1M
/// 1.8–2.8 s).
pub const PIECE: usize = 4 << 20;

/// A [`PIECE`]-byte slice of a larger allocation, starting at an [`ALIGN`] boundary
/// (found with `align_offset`, so no `unsafe` allocation is needed).
pub struct Aligned {
    raw: Vec<u8>,
    start: usize,
}

/// Where a buffer starts: a huge page's boundary, so that the [`PIECE`] is two whole
/// huge pages where the kernel gives them (`MADV_HUGEPAGE`). A direct write pins its
/// buffer's pages and builds its request page by page: with 4 KiB pages that was 6%
/// of an encode of the small-file NAR to a CAR file (`perf`: `gup_fast_fallback`,
/// `bio_add_page`, `__bio_release_pages` on the writing thread), with huge pages it is
/// one folio per 2 MiB.
const HUGE: usize = 2 << 20;

impl Aligned {
    /// A zeroed buffer (the allocator's fresh pages, touched only as they fill).
    pub fn new() -> Aligned {
        let raw = vec![0u8; PIECE + HUGE];
        let start = raw.as_ptr().align_offset(HUGE);
        #[cfg(target_os = "linux")]
        // SAFETY: the range lies within `raw`'s allocation; MADV_HUGEPAGE only sets
        // how its pages are backed, never their contents. Refused (no THP): ignored.
        unsafe {
            libc::madvise(
                raw.as_ptr().add(start) as *mut libc::c_void,
                PIECE,
                libc::MADV_HUGEPAGE,
            );
        }
        Aligned { raw, start }
    }

    pub fn bytes(&self) -> &[u8] {
        &self.raw[self.start..self.start + PIECE]
    }

    pub fn bytes_mut(&mut self) -> &mut [u8] {
        &mut self.raw[self.start..self.start + PIECE]
    }
}

impl Default for Aligned {
    fn default() -> Aligned {
        Aligned::new()
    }
}

/// Sets or clears `O_DIRECT` on `file`; whether it is set now.
pub fn set_direct(file: &File, on: bool) -> bool {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
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
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, on);
        false
    }
}

/// Writes all of `data` at `file`'s position, directly while `*direct` holds; a write
/// refused as invalid (`EINVAL`: alignment, or `O_DIRECT` at all) clears `O_DIRECT`
/// and `*direct` and goes on through the page cache.
pub fn write_piece(file: &mut File, direct: &mut bool, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if *direct && e.raw_os_error() == Some(libc::EINVAL) => {
                set_direct(file, false);
                *direct = false;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A file written from its start through one aligned buffer, directly when the file
/// system allows it; [`finish`](DirectFile::finish) writes the unaligned tail through
/// the page cache and gives the file back, not yet synced.
pub struct DirectFile {
    file: File,
    buf: Aligned,
    /// Bytes in `buf` not yet written.
    len: usize,
    direct: bool,
}

impl DirectFile {
    /// Writes `file` (empty, or positioned at a multiple of [`ALIGN`]) from here on.
    pub fn new(file: File) -> DirectFile {
        let direct = set_direct(&file, true);
        DirectFile {
            file,
            buf: Aligned::new(),
            len: 0,
            direct,
        }
    }

    /// Writes what is left (the unaligned tail through the page cache) and returns the
    /// file, not yet synced.
    pub fn finish(mut self) -> io::Result<File> {
        let aligned = self.len / ALIGN * ALIGN;
        write_piece(
            &mut self.file,
            &mut self.direct,
            &self.buf.bytes()[..aligned],
        )?;
        if self.direct && aligned < self.len {
            set_direct(&self.file, false);
        }
        self.file.write_all(&self.buf.bytes()[aligned..self.len])?;
        Ok(self.file)
    }
}

impl Write for DirectFile {
    /// Copies `data` into the aligned buffer and writes it when full, or, when the
    /// buffer is empty and `data` starts at an [`ALIGN`] boundary (the pieces of
    /// `narfs_decoder::write_behind`), writes its aligned whole blocks as they are: no
    /// copy, and the caller's piece size is the disk's request size.
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        let whole = data.len() / ALIGN * ALIGN;
        if self.len == 0 && whole > 0 && data.as_ptr().align_offset(ALIGN) == 0 {
            // The file's position is a multiple of ALIGN: every write so far was whole.
            write_piece(&mut self.file, &mut self.direct, &data[..whole])?;
            return Ok(whole);
        }
        let n = data.len().min(PIECE - self.len);
        self.buf.bytes_mut()[self.len..self.len + n].copy_from_slice(&data[..n]);
        self.len += n;
        if self.len == PIECE {
            write_piece(&mut self.file, &mut self.direct, self.buf.bytes())?;
            self.len = 0;
        }
        Ok(n)
    }

    /// Nothing: a direct write must be a whole aligned piece, and the file is complete
    /// only at [`finish`](DirectFile::finish) anyway.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every byte in order, for lengths around the piece and alignment sizes, in
    /// writes of odd sizes; on whatever file system the temporary directory is.
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
            // The same bytes from aligned buffers (written as they are), with an
            // unaligned tail, then copied pieces again, then aligned ones again.
            let path = dir.path().join(format!("a{len}"));
            let mut w = DirectFile::new(File::create(&path).unwrap());
            let mut buf = Aligned::new();
            for (i, part) in data.chunks(PIECE / 2 + 4 * ALIGN + 7).enumerate() {
                if i % 3 == 1 {
                    w.write_all(part).unwrap();
                } else {
                    buf.bytes_mut()[..part.len()].copy_from_slice(part);
                    w.write_all(&buf.bytes()[..part.len()]).unwrap();
                }
            }
            drop(w.finish().unwrap());
            assert!(
                std::fs::read(&path).unwrap() == data,
                "aligned, length {len}"
            );
        }
    }
}
