//! LMDB's lock file (`blocks/lock.mdb`): its reader table and its two process-shared
//! mutexes, which LMDB maps and trusts. It holds no data, so at rest it needs no
//! check: the first process to open the environment (the one that gets LMDB's
//! exclusive `fcntl` lock on its first byte) rebuilds it from nothing, whatever it
//! held. Only a file another process has open is taken as it is: LMDB checks its
//! magic and format, then follows its reader count over the reader slots, so a count
//! beyond the file faults (SIGSEGV) and a cut file maps short (SIGBUS). [`check`]
//! refuses such a file before LMDB sees it.
//!
//! Why not `MDB_NOLOCK` (no lock file at all): LMDB then keeps no reader table, and a
//! writer reuses the pages of every snapshot older than the newest but one. narfs's
//! own lock (`lock.rs`) is shared by readers and writers alike (`serve` and `encode`
//! run together), so nothing would keep a writer off the pages a reader is reading.
//! Giving that up would serialise every write transaction against every read.
//!
//! What no check at open can reach: damage to the file while processes have it open
//! (each of them keeps using its map), and the mutexes' words (their layout is
//! glibc's; LMDB reports a mutex it cannot use as an error, and recovers one whose
//! holder died).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::Error;

/// `MDB_MAGIC`, the first 4 bytes.
const MAGIC: u32 = 0xBEEF_C0DE;
/// Where the table's header keeps the last committed transaction and the count of
/// reader slots ever used (after the magic and the format, 4 bytes each).
const TXNID_AT: usize = 8;
const NUMREADERS_AT: usize = 16;
/// `sizeof(MDB_txninfo)`: two 64-byte cache lines (header and read mutex, write
/// mutex) and the first reader slot; each further slot is one more [`SLOT`].
pub(crate) const HEADER: u64 = 128 + SLOT;
pub(crate) const SLOT: u64 = 64;

/// Refuses a lock file at `path` that another process has open and that LMDB could
/// not take as it is; `newest` is the data file's newest committed transaction (read
/// after the lock file's, which never runs ahead of it).
pub(crate) fn check(path: &Path, newest: impl FnOnce() -> Result<u64, Error>) -> Result<(), Error> {
    let file = match crate::nofollow::open(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => f,
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            return Ok(())
        }
        Err(e) => return Err(e),
    };
    if !in_use(&file).map_err(Error::io(path))? {
        return Ok(());
    }
    let damaged = |problem: String| Error::DamagedLockFile {
        path: path.to_path_buf(),
        problem,
    };
    let size = file.metadata().map_err(Error::io(path))?.len();
    if size < HEADER {
        return Err(damaged(format!(
            "{size} bytes, less than its header ({HEADER})"
        )));
    }
    let mut head = [0u8; 24];
    file.read_exact_at(&mut head, 0).map_err(Error::io(path))?;
    let u32_at = |at: usize| u32::from_le_bytes(head[at..at + 4].try_into().unwrap());
    if u32_at(0) != MAGIC {
        return Err(damaged(format!("magic {:#010x}, not LMDB's", u32_at(0))));
    }
    let slots = (size - HEADER) / SLOT + 1;
    let used = u64::from(u32_at(NUMREADERS_AT));
    if used > slots {
        return Err(damaged(format!(
            "{used} reader slots used, the file holds {slots}"
        )));
    }
    let txnid = u64::from_le_bytes(head[TXNID_AT..TXNID_AT + 8].try_into().unwrap());
    let newest = newest()?;
    if txnid > newest {
        return Err(damaged(format!(
            "last transaction {txnid}, the data file's newest is {newest}"
        )));
    }
    Ok(())
}

/// Whether another process has the environment of the lock file at `path` open (see
/// [`in_use`]); a missing file: none has. Closing the probe's descriptor drops this
/// process's own `fcntl` locks on the file (POSIX): call it before opening the
/// environment, or (as `compact` does) just before closing it.
pub(crate) fn open_elsewhere(path: &Path) -> Result<bool, Error> {
    match crate::nofollow::open(path, std::fs::OpenOptions::new().read(true)) {
        Ok(f) => in_use(&f).map_err(Error::io(path)),
        Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether some process holds an `fcntl` lock on the file's first byte (LMDB's, which
/// every process with the environment open holds, shared or exclusive). Only asks:
/// `F_GETLK` takes no lock.
fn in_use(file: &File) -> std::io::Result<bool> {
    // SAFETY: a zeroed `flock` is a valid value of this plain C struct.
    let mut probe: libc::flock = unsafe { std::mem::zeroed() };
    probe.l_type = libc::F_WRLCK as libc::c_short;
    probe.l_whence = libc::SEEK_SET as libc::c_short;
    probe.l_start = 0;
    probe.l_len = 1;
    // SAFETY: F_GETLK on a file descriptor we own, writing only into `probe`.
    if unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLK, &mut probe) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(probe.l_type != libc::F_UNLCK as libc::c_short)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The layout this module reads is the one LMDB writes: a fresh lock file is the
    /// header and one slot per reader, starts with the magic and has no reader used
    /// beyond its slots. Not in use by another process, it passes; a file that is in
    /// use only by this process is not probed as in use (`F_GETLK` ignores our locks).
    #[test]
    fn lmdb_writes_the_layout_read_here() {
        let dir = tempfile::tempdir().unwrap();
        let store = crate::Store::open(dir.path()).unwrap();
        let path = dir.path().join("blocks/lock.mdb");
        let bytes = std::fs::read(&path).unwrap();
        let readers = u64::from(crate::blocks::MAX_READERS);
        assert_eq!(bytes.len() as u64, HEADER + (readers - 1) * SLOT);
        assert_eq!(u32::from_le_bytes(bytes[..4].try_into().unwrap()), MAGIC);
        let used = u32::from_le_bytes(bytes[NUMREADERS_AT..NUMREADERS_AT + 4].try_into().unwrap());
        assert!(u64::from(used) <= readers, "{used} readers");
        let file = File::open(&path).unwrap();
        assert!(!in_use(&file).unwrap());
        drop(store);
    }
}
