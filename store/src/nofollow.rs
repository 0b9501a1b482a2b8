//! Paths inside the store are the store's own: none is followed out of it. Every
//! directory and file the store opens, creates or deletes by name is checked not to be
//! a symbolic link (directories with `symlink_metadata`, files opened `O_NOFOLLOW`), so
//! a link planted at `tmp`, `roots`, `blocks`, a shard, the lock or a record is a clear
//! error, and whatever it points to is never read, written or deleted.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use crate::Error;

/// The error for a symbolic link at `path`.
pub(crate) fn refused(path: &Path) -> Error {
    Error::Symlink {
        path: path.to_path_buf(),
    }
}

/// Makes sure `path` is a directory of its own (creating it if missing).
pub(crate) fn real_dir(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(path)),
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory {
            path: path.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            match fs::create_dir(path) {
                // Created meanwhile by a concurrent opener: check what is there.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => real_dir(path),
                r => r.map_err(Error::io(path)),
            }
        }
        Err(e) => Err(Error::io(path)(e)),
    }
}

/// An error if `path` exists and is a symbolic link.
pub(crate) fn not_a_link(path: &Path) -> Result<(), Error> {
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => Err(refused(path)),
        _ => Ok(()),
    }
}

/// `options` opening `path` without following a symbolic link in its last component
/// (`ELOOP` becomes [`refused`]).
pub(crate) fn open(path: &Path, options: &mut OpenOptions) -> Result<File, Error> {
    options
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => refused(path),
            _ => Error::io(path)(e),
        })
}

/// The bytes of the regular file at `path`, at most `max` of them (more is an error).
pub(crate) fn read(path: &Path, max: u64) -> Result<Vec<u8>, Error> {
    let f = open(path, OpenOptions::new().read(true))?;
    let mut bytes = Vec::new();
    f.take(max + 1)
        .read_to_end(&mut bytes)
        .map_err(Error::io(path))?;
    if bytes.len() as u64 > max {
        return Err(Error::TooLong {
            path: path.to_path_buf(),
            max,
        });
    }
    Ok(bytes)
}

/// Removes everything in `dir` (never following a link: a link is removed itself);
/// how many entries.
pub(crate) fn clear_dir(dir: &Path) -> Result<u64, Error> {
    let mut n = 0;
    for e in fs::read_dir(dir).map_err(Error::io(dir))? {
        let e = e.map_err(Error::io(dir))?;
        let p = e.path();
        let is_dir = e.file_type().map_err(Error::io(&p))?.is_dir();
        let removed = if is_dir {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        };
        removed.map_err(Error::io(&p))?;
        n += 1;
    }
    Ok(n)
}
