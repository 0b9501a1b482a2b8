//! The update cost with a delta on the wire: what an update would move if each file
//! it changes travelled compressed against the same path's file in the version the
//! client already holds (zstd with that file as a reference prefix, as
//! `zstd --patch-from` does), rather than compressed on its own.
//!
//! Why measure it: dedup finds nothing in a file that was rebuilt (every shared
//! object of a minor release), and zstd alone only shrinks it as much as the seed's
//! NAR does; but two builds of the same source differ in a small part of their bytes
//! (`zstd -19 --patch-from` of scipy 1.11.4's NAR against 1.12.0's gives 0.26 of
//! 1.12.0's `zstd -19` NAR). The client can rebuild the reference itself from blocks
//! it holds and has verified, so a delta costs no trust. This module measures the
//! file part: for every regular file of an update that no file of the previous
//! version has (by content), its compressed size with the previous version's file at
//! the same path as the reference (none if there is no such file, or it is larger
//! than [`MAX_REF`]); [`crate::update`] adds the DAG's new inner nodes.
//!
//! NARs are read twice, streaming: once to list each file's path, offset and digest,
//! and once for the changed files; a reference is read back from the earlier NAR by
//! its offset (one file in memory at a time, at most [`MAX_REF`] bytes).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::unix::fs::FileExt;

use narfs_core::nar::{Event, NarReader};
use sha2::{Digest, Sha256};

use crate::corpus::Item;
use crate::runner::ZSTD_LEVEL;
use crate::seed::Count;
use crate::Error;

/// The largest reference file used (a larger earlier file is not used as one: the
/// decompressor's window must hold it, and a client's memory bounds that window).
pub const MAX_REF: u64 = 64 << 20;

/// Where a regular file of a NAR is, and what it holds.
#[derive(Clone, Copy, Debug)]
struct FileAt {
    offset: u64,
    size: u64,
    digest: [u8; 32],
}

/// The regular files of one NAR, by path, and the set of their digests.
#[derive(Debug, Default)]
struct NarFiles {
    by_path: HashMap<Vec<u8>, FileAt>,
    digests: HashSet<[u8; 32]>,
}

/// For every item that has an earlier version of its package (the one just before
/// it), the compressed bytes of its changed files, each against the earlier
/// version's file at the same path; None for the first version of a package.
/// `progress` is told the NAR bytes done.
pub(crate) fn file_deltas(
    items: &[Item],
    progress: &mut dyn FnMut(u64),
) -> Result<Vec<Option<u64>>, Error> {
    let mut last: HashMap<&str, (usize, NarFiles)> = HashMap::new();
    let mut out = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        let files = index(item).map_err(|e| nar_error(item, e))?;
        let delta = match last.get(item.package.as_str()) {
            None => None,
            Some((prev, prev_files)) => Some(
                delta(item, &files, &items[*prev], prev_files).map_err(|e| nar_error(item, e))?,
            ),
        };
        out.push(delta);
        progress(item.size);
        last.insert(&item.package, (i, files));
    }
    Ok(out)
}

fn nar_error(item: &Item, e: io::Error) -> Error {
    Error::ReadNar {
        path: item.path.clone(),
        source: e,
    }
}

/// Lists the regular files of `item`'s NAR.
fn index(item: &Item) -> io::Result<NarFiles> {
    let mut files = NarFiles::default();
    walk(item, |path, offset, size, contents| {
        let mut h = Sha256::new();
        io::copy(contents, &mut HashWriter(&mut h))?;
        let digest: [u8; 32] = h.finalize().into();
        files.digests.insert(digest);
        files.by_path.insert(
            path.to_vec(),
            FileAt {
                offset,
                size,
                digest,
            },
        );
        Ok(())
    })?;
    Ok(files)
}

/// The compressed bytes of the files of `item` that `prev` lacks.
fn delta(item: &Item, files: &NarFiles, prev: &Item, prev_files: &NarFiles) -> io::Result<u64> {
    let prev_nar = File::open(&prev.path)?;
    let mut total = 0u64;
    let mut reference = Vec::new();
    walk(item, |path, _, size, contents| {
        let digest = files.by_path.get(path).map(|f| f.digest);
        if digest.is_some_and(|d| prev_files.digests.contains(&d)) {
            return Ok(()); // the client holds these bytes: dedup sends nothing
        }
        reference.clear();
        if let Some(old) = prev_files.by_path.get(path).filter(|f| f.size <= MAX_REF) {
            reference.resize(old.size as usize, 0);
            prev_nar.read_exact_at(&mut reference, old.offset)?;
        }
        total += compressed(&reference, size, contents)?;
        Ok(())
    })?;
    Ok(total)
}

/// zstd of `size` bytes from `contents` with `reference` as the prefix, its window
/// large enough to reach back over the whole reference.
fn compressed(reference: &[u8], size: u64, contents: &mut dyn Read) -> io::Result<u64> {
    let mut z = zstd::stream::Encoder::with_ref_prefix(Count(0), ZSTD_LEVEL, reference)?;
    if !reference.is_empty() {
        let span = (reference.len() as u64 + size).max(1 << 10);
        let log = (64 - (span - 1).leading_zeros()).clamp(10, 27);
        z.window_log(log)?;
        z.long_distance_matching(true)?;
    }
    io::copy(contents, &mut z)?;
    Ok(z.finish()?.0)
}

/// Calls `file` for each regular file of `item`'s NAR with its path (components
/// joined by `/`), the offset of its contents in the NAR, its size and a reader of
/// them.
fn walk(
    item: &Item,
    mut file: impl FnMut(&[u8], u64, u64, &mut dyn Read) -> io::Result<()>,
) -> io::Result<()> {
    let mut nar = NarReader::new(BufReader::new(File::open(&item.path)?));
    // The path of the directory being read, and where each open level's name starts.
    let mut path: Vec<u8> = Vec::new();
    let mut starts: Vec<usize> = Vec::new();
    while let Some(event) = nar.next().map_err(io::Error::other)? {
        match event {
            Event::Directory { name } => {
                starts.push(path.len());
                push(&mut path, name);
            }
            Event::DirectoryEnd => {
                let at = starts.pop().unwrap_or(0);
                path.truncate(at);
            }
            Event::File {
                name,
                size,
                mut contents,
                ..
            } => {
                let at = path.len();
                push(&mut path, name);
                let offset = contents.nar_offset();
                file(&path, offset, size, &mut contents)?;
                path.truncate(at);
            }
            Event::Symlink { .. } => {}
        }
    }
    Ok(())
}

fn push(path: &mut Vec<u8>, name: &[u8]) {
    if !name.is_empty() {
        path.push(b'/');
        path.extend_from_slice(name);
    }
}

struct HashWriter<'a>(&'a mut Sha256);

impl Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::nar::NarWriter;

    use narfs_core::noise::bytes as noise;

    fn nar(dir: &std::path::Path, name: &str, files: &[(&[u8], &[u8])]) -> Item {
        let mut w = NarWriter::new(Vec::new());
        w.directory(b"").unwrap();
        w.directory(b"lib").unwrap();
        for (n, data) in files {
            w.file(n, false, data.len() as u64, &mut &data[..]).unwrap();
        }
        w.end_directory().unwrap();
        w.end_directory().unwrap();
        let bytes = w.finish().unwrap();
        let path = dir.join(name);
        std::fs::write(&path, &bytes).unwrap();
        Item {
            name: name.into(),
            path,
            size: bytes.len() as u64,
            package: "p".into(),
        }
    }

    #[test]
    fn a_rebuilt_file_costs_its_difference_and_a_kept_one_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let lib = noise(1, 200_000);
        let mut rebuilt = lib.clone();
        rebuilt[1000..1016].copy_from_slice(&[0xAA; 16]);
        let kept = noise(2, 50_000);
        let moved = noise(3, 30_000);
        let new = noise(4, 20_000);
        let v1 = nar(
            dir.path(),
            "p-1.nar",
            &[(b"a.so", &lib), (b"b", &kept), (b"c", &moved)],
        );
        let v2 = nar(
            dir.path(),
            "p-2.nar",
            &[
                (b"a.so", &rebuilt),
                (b"b", &kept),
                (b"d", &moved),
                (b"e", &new),
            ],
        );
        let mut done = 0;
        let d = file_deltas(&[v1, v2], &mut |n| done += n).unwrap();
        assert_eq!(d[0], None, "the first version is no update");
        let d = d[1].unwrap();
        // `b` is unchanged and `d` is `c` renamed: both held. `e` is new noise
        // (incompressible, ~20 kB); `a.so` differs in 16 bytes: tens of bytes.
        assert!(d > 20_000 && d < 20_000 + 1_000, "{d}");
        assert!(done > 0);
    }

    #[test]
    fn a_file_without_an_earlier_one_at_its_path_is_compressed_alone() {
        let dir = tempfile::tempdir().unwrap();
        let text = b"the same line again\n".repeat(5_000);
        let v1 = nar(dir.path(), "p-1.nar", &[(b"x", b"old")]);
        let v2 = nar(dir.path(), "p-2.nar", &[(b"y", &text)]);
        let d = file_deltas(&[v1, v2], &mut |_| {}).unwrap()[1].unwrap();
        assert!(d > 0 && d < text.len() as u64 / 20, "{d}");
    }
}
