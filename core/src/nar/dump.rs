//! Serialises a filesystem tree as a NAR exactly as `nix-store --dump` does:
//! executable means the owner-execute bit, symlinks are not followed, entries are
//! sorted bytewise, and anything that is not a file, directory or symlink is refused.

use std::fs::{self, File};
use std::io::{BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{NarError, NarWriter};

/// Writes the NAR of the tree at `path` to `out`. Walks iteratively, so the depth of
/// the tree costs heap, not stack.
pub fn dump_path<W: Write>(path: &Path, out: W) -> Result<W, NarError> {
    let mut nar = NarWriter::new(out);
    // Each open directory: its path and its remaining entry names, reversed.
    let mut stack: Vec<(PathBuf, Vec<Vec<u8>>)> = Vec::new();
    dump_node(&mut nar, path, b"", &mut stack)?;
    while let Some((dir, names)) = stack.last_mut() {
        match names.pop() {
            Some(name) => {
                let child = dir.join(std::ffi::OsStr::from_bytes(&name));
                dump_node(&mut nar, &child, &name, &mut stack)?;
            }
            None => {
                stack.pop();
                nar.end_directory()?;
            }
        }
    }
    nar.finish()
}

fn dump_node<W: Write>(
    nar: &mut NarWriter<W>,
    path: &Path,
    name: &[u8],
    stack: &mut Vec<(PathBuf, Vec<Vec<u8>>)>,
) -> Result<(), NarError> {
    let meta = fs::symlink_metadata(path).map_err(|e| NarError::fs(path, e))?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        let target = fs::read_link(path).map_err(|e| NarError::fs(path, e))?;
        nar.symlink(name, target.as_os_str().as_bytes())
    } else if kind.is_file() {
        let executable = meta.permissions().mode() & 0o100 != 0;
        let file = File::open(path).map_err(|e| NarError::fs(path, e))?;
        let mut data = BufReader::with_capacity(256 * 1024, file);
        nar.file(name, executable, meta.len(), &mut data)
            .map_err(|e| match e {
                NarError::Usage(why) => {
                    NarError::path(path, format!("{why} (file changed while reading?)"))
                }
                e => e,
            })
    } else if kind.is_dir() {
        let mut names = Vec::new();
        for entry in fs::read_dir(path).map_err(|e| NarError::fs(path, e))? {
            let entry = entry.map_err(|e| NarError::fs(path, e))?;
            names.push(entry.file_name().as_bytes().to_vec());
        }
        names.sort_unstable_by(|a, b| b.cmp(a));
        nar.directory(name)?;
        stack.push((path.to_path_buf(), names));
        Ok(())
    } else {
        let what = if kind.is_socket() {
            "a socket"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_block_device() || kind.is_char_device() {
            "a device"
        } else {
            "an unsupported file type"
        };
        Err(NarError::path(
            path,
            format!("is {what}; a NAR holds only files, directories and symlinks"),
        ))
    }
}
