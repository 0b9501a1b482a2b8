//! The store lock (`flock(2)` on `DIR/lock`) and syncing the file system: writers and
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
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(Error::io(path))?;
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

/// Makes everything written so far to the file system holding `dir` durable: data of
/// the files written and the directory entries renamed. One `syncfs(2)` on Linux
/// (instead of one `fsync` per block), `sync(2)` on other Unixes.
pub(crate) fn sync_fs(dir: &Path) -> Result<(), Error> {
    let f = File::open(dir).map_err(Error::io(dir))?;
    #[cfg(target_os = "linux")]
    {
        // SAFETY: syncfs on a file descriptor we own.
        if unsafe { libc::syncfs(f.as_raw_fd()) } != 0 {
            return Err(Error::io(dir)(std::io::Error::last_os_error()));
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: sync has no arguments and cannot fail.
        unsafe { libc::sync() };
        f.sync_all().map_err(Error::io(dir))?;
    }
    Ok(())
}
