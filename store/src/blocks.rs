//! Block files: where a CID lives (`blocks/XY/<cid>` or `<cid>.zst`), writing one
//! (compressed when that pays, writeback started at once), reading one back
//! (decompressed), and listing them all.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use narfs_core::Cid;

use crate::Error;

/// Suffix of a zstd-compressed block file.
pub(crate) const ZST: &str = ".zst";
/// The largest block narfs reads back (a sanity bound on decompression): 4 MiB, twice
/// the largest block the IPFS bitswap protocol carries.
pub(crate) const MAX_BLOCK: u64 = 4 << 20;

/// One stored block file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockInfo {
    pub cid: Cid,
    /// Bytes on disk (compressed size for `.zst` files).
    pub stored: u64,
    pub compressed: bool,
    pub path: PathBuf,
}

/// The shard directory of a CID string: the two characters before the last one, as
/// Kubo's `next-to-last/2` (the end of a CID is digest, so shards fill evenly).
pub(crate) fn shard(name: &str) -> &str {
    let n = name.len();
    if n < 3 {
        return "_";
    }
    name.get(n - 3..n - 1).unwrap_or("_")
}

/// The path of the raw block file of `cid` (add [`ZST`] for the compressed one).
pub(crate) fn path(dir: &Path, cid: &Cid) -> PathBuf {
    let name = cid.to_string();
    dir.join("blocks").join(shard(&name)).join(name)
}

/// Blocks longer than this are compressed only if a [`SAMPLE`]-byte piece of their
/// middle compresses (most of an incompressible block's zstd time is then saved).
const SAMPLE_ABOVE: usize = 64 << 10;
const SAMPLE: usize = 16 << 10;

/// A writer thread's zstd state: one compression context reused for every block.
pub(crate) struct Packer {
    zstd: Option<zstd::bulk::Compressor<'static>>,
    buf: Vec<u8>,
}

impl Packer {
    /// `level: None` stores every block raw.
    pub(crate) fn new(level: Option<i32>) -> Packer {
        Packer {
            zstd: level.and_then(|l| zstd::bulk::Compressor::new(l).ok()),
            buf: Vec::new(),
        }
    }

    /// The zstd frame of `data` if it is at least 1/8 smaller, else `None` (store raw).
    pub(crate) fn pack(&mut self, data: &[u8]) -> Option<&[u8]> {
        let z = self.zstd.as_mut()?;
        if data.len() > SAMPLE_ABOVE {
            let mid = data.len() / 2 - SAMPLE / 2;
            let sample = &data[mid..mid + SAMPLE];
            if !fits(z, sample, &mut self.buf) {
                return None;
            }
        }
        fits(z, data, &mut self.buf).then_some(self.buf.as_slice())
    }
}

/// Compresses `data` into `buf`; whether it saved at least 1/8.
fn fits(z: &mut zstd::bulk::Compressor<'static>, data: &[u8], buf: &mut Vec<u8>) -> bool {
    buf.clear();
    buf.reserve(zstd::zstd_safe::compress_bound(data.len()));
    match z.compress_to_buffer(data, buf) {
        Ok(n) => n <= data.len() - data.len() / 8,
        Err(_) => false,
    }
}

/// Creates `path` holding `bytes` and starts writing it to disk right away (Linux:
/// `sync_file_range(WRITE)`, which does not wait), so that the `syncfs` which must
/// precede the rename finds little left to write.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = fs::File::create(path)?;
    f.write_all(bytes)?;
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: a hint on a file descriptor we own; no memory is passed.
        unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
    }
    Ok(())
}

/// Makes sure the shard directory `blocks/XY` of `dest` exists, once per shard per
/// writer (`known` remembers the ones seen).
pub(crate) fn ensure_shard(
    dest: &Path,
    known: &mut std::collections::HashSet<PathBuf>,
) -> Result<(), Error> {
    let Some(parent) = dest.parent() else {
        return Ok(());
    };
    if known.contains(parent) {
        return Ok(());
    }
    match fs::create_dir(parent) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(Error::io(parent)(e)),
    }
    known.insert(parent.to_path_buf());
    Ok(())
}

fn zst_path(raw: &Path) -> PathBuf {
    let mut s = raw.as_os_str().to_owned();
    s.push(ZST);
    PathBuf::from(s)
}

/// The stored file of `cid`, if any, and whether it is compressed.
pub(crate) fn find(dir: &Path, cid: &Cid) -> Option<(PathBuf, bool)> {
    let raw = path(dir, cid);
    if raw.exists() {
        return Some((raw, false));
    }
    let zst = zst_path(&raw);
    zst.exists().then_some((zst, true))
}

/// The block's bytes (decompressed), or `None` if it is not stored.
pub(crate) fn read(dir: &Path, cid: &Cid) -> Result<Option<Vec<u8>>, Error> {
    let raw = path(dir, cid);
    match fs::read(&raw) {
        Ok(b) => return Ok(Some(b)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&raw)(e)),
    }
    let zst = zst_path(&raw);
    match fs::File::open(&zst) {
        Ok(f) => decompress(f).map(Some).map_err(Error::io(&zst)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::io(&zst)(e)),
    }
}

/// Reads a block file as stored: decompressing it if `compressed`.
pub(crate) fn read_file(info: &BlockInfo) -> Result<Vec<u8>, Error> {
    let f = fs::File::open(&info.path).map_err(Error::io(&info.path))?;
    if info.compressed {
        decompress(f).map_err(Error::io(&info.path))
    } else {
        let mut out = Vec::new();
        f.take(MAX_BLOCK + 1)
            .read_to_end(&mut out)
            .map_err(Error::io(&info.path))?;
        Ok(out)
    }
}

/// zstd-decompresses at most [`MAX_BLOCK`] bytes; more is an error, not an allocation.
fn decompress(f: fs::File) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    zstd::Decoder::new(f)?
        .take(MAX_BLOCK + 1)
        .read_to_end(&mut out)?;
    if out.len() as u64 > MAX_BLOCK {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a compressed block decompresses to more than 4 MiB",
        ));
    }
    Ok(out)
}

/// Every block file, plus the paths under `blocks/` that are not block files.
pub(crate) fn scan(dir: &Path) -> Result<(Vec<BlockInfo>, Vec<PathBuf>), Error> {
    let root = dir.join("blocks");
    let mut out = Vec::new();
    let mut strays = Vec::new();
    for shard_entry in fs::read_dir(&root).map_err(Error::io(&root))? {
        let shard_entry = shard_entry.map_err(Error::io(&root))?;
        let shard_dir = shard_entry.path();
        if !shard_entry
            .file_type()
            .map_err(Error::io(&shard_dir))?
            .is_dir()
        {
            strays.push(shard_dir);
            continue;
        }
        for e in fs::read_dir(&shard_dir).map_err(Error::io(&shard_dir))? {
            let e = e.map_err(Error::io(&shard_dir))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            let (stem, compressed) = match name.strip_suffix(ZST) {
                Some(s) => (s, true),
                None => (name.as_str(), false),
            };
            let meta = e.metadata().map_err(Error::io(&path))?;
            match Cid::from_str(stem) {
                Ok(cid) if meta.is_file() && shard(stem) == shard_entry.file_name() => {
                    out.push(BlockInfo {
                        cid,
                        stored: meta.len(),
                        compressed,
                        path,
                    })
                }
                _ => strays.push(path),
            }
        }
    }
    Ok((out, strays))
}

/// Every block file.
pub(crate) fn list(dir: &Path) -> Result<Vec<BlockInfo>, Error> {
    Ok(scan(dir)?.0)
}
