//! The store lock (`flock(2)` on `DIR/lock`, never through a symbolic link): writers and
//! readers hold the lock shared, `gc` exclusive. The kernel releases it when the holder
//! dies, `kill -9` included, so a crash never leaves the store locked.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::Error;

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    _file: File,
}

impl LockGuard {
    /// Blocks until the lock is held (`exclusive` or shared).
    pub(crate) fn acquire(path: &Path, exclusive: bool) -> Result<LockGuard, Error> {
        let file = crate::nofollow::open(
            path,
            OpenOptions::new().create(true).truncate(false).write(true),
        )?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        loop {
            // SAFETY: flock on a file descriptor we own, no memory involved.
            let rc = unsafe { libc::flock(file.as_raw_fd(), op) };
            if rc == 0 {
                return Ok(LockGuard { _file: file });
            }
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::Interrupted {
                return Err(Error::io(path)(err));
            }
        }
    }
}
