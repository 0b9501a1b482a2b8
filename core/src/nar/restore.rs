//! Restores a NAR into a new filesystem tree, as `nix-store --restore` does, safely:
//! the tree is built in a fresh temporary directory beside the destination and moved
//! into place only when the whole archive has been read and validated, so an error
//! leaves nothing behind. Entry names are validated by the reader (no `/`, `.`,
//! `..`), every directory on the way is one this restore created, and symlinks are
//! only ever created, never followed, so nothing outside the destination is touched.

use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::{Event, NarError, NarReader};

#[derive(Clone, Copy, Debug, Default)]
pub struct RestoreOptions {
    /// Allow the destination to be an existing empty directory (it is replaced).
    pub allow_empty_dir: bool,
}

/// Restores the NAR read from `input` at `dest`, which must not exist yet (or be an
/// empty directory, when the options allow it).
pub fn restore<R: Read>(input: R, dest: &Path, options: RestoreOptions) -> Result<(), NarError> {
    match fs::symlink_metadata(dest) {
        Ok(meta) => {
            let empty_dir = meta.is_dir()
                && fs::read_dir(dest)
                    .map_err(|e| NarError::fs(dest, e))?
                    .next()
                    .is_none();
            if !(empty_dir && options.allow_empty_dir) {
                return Err(NarError::path(dest, "already exists"));
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(NarError::fs(dest, e)),
    }
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let staging = tempdir_in(&parent, dest)?;
    let root = staging.join("root");
    let result = build(input, &root).and_then(|()| {
        if dest.is_dir() {
            fs::remove_dir(dest).map_err(|e| NarError::fs(dest, e))?;
        }
        fs::rename(&root, dest).map_err(|e| NarError::fs(dest, e))
    });
    let _ = fs::remove_dir_all(&staging);
    result
}

fn tempdir_in(parent: &Path, dest: &Path) -> Result<PathBuf, NarError> {
    let base = dest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    for i in 0..1000u32 {
        let p = parent.join(format!(".{base}.narfs-restore-{}-{i}", std::process::id()));
        match fs::create_dir(&p) {
            Ok(()) => return Ok(p),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(NarError::fs(&p, e)),
        }
    }
    Err(NarError::path(parent, "cannot create a staging directory"))
}

fn build<R: Read>(input: R, root: &Path) -> Result<(), NarError> {
    let mut nar = NarReader::new(input);
    let mut dirs: Vec<PathBuf> = Vec::new();
    while let Some(event) = nar.next()? {
        let here = |name: &[u8]| match dirs.last() {
            None => root.to_path_buf(),
            Some(d) => d.join(std::ffi::OsStr::from_bytes(name)),
        };
        match event {
            Event::Directory { name } => {
                let path = here(name);
                fs::create_dir(&path).map_err(|e| NarError::fs(&path, e))?;
                dirs.push(path);
            }
            Event::DirectoryEnd => {
                dirs.pop();
            }
            Event::Symlink { name, target } => {
                let path = here(name);
                std::os::unix::fs::symlink(std::ffi::OsStr::from_bytes(target), &path)
                    .map_err(|e| NarError::fs(&path, e))?;
            }
            Event::File {
                name,
                executable,
                mut contents,
                ..
            } => {
                let path = here(name);
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o777 } else { 0o666 })
                    .open(&path)
                    .map_err(|e| NarError::fs(&path, e))?;
                loop {
                    let buf = match contents.fill_buf() {
                        Ok(buf) => buf,
                        Err(e) => return Err(contents.error(e)),
                    };
                    if buf.is_empty() {
                        break;
                    }
                    let n = buf.len();
                    file.write_all(buf).map_err(|e| NarError::fs(&path, e))?;
                    contents.consume(n);
                }
            }
        }
    }
    Ok(())
}
