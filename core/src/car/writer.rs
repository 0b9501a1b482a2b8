//! CARv1 writers: [`CarWriter`] streams a CAR to any `Write` when the root is known up
//! front; [`CarFileWriter`] writes a CAR file whose root is only known at the end and
//! makes the file appear (atomically, by rename) only once it is complete.
//!
//! Format (<https://ipld.io/specs/transport/car/carv1/>): `varint(len) | dag-cbor header`
//! then sections `varint(len(cid) + len(data)) | cid bytes | data`. The header is
//! `{"roots": [CID...], "version": 1}` in dag-cbor canonical key order (length first, so
//! "roots" before "version"), each CID as tag 42 over a byte string whose first byte is
//! the 0x00 multibase-identity prefix — byte for byte what @ipld/car and go-car write.

use cid::Cid;

use super::cid_set::CidSet;
use super::direct::DirectWriter;
use super::encode_header;
use crate::block::MAX_BLOCK_SIZE;
use crate::varint;
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tempfile::NamedTempFile;

/// Errors from writing a CAR.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CarWriteError {
    /// The underlying writer failed.
    #[error("writing CAR")]
    Io(#[from] io::Error),
    /// A block is larger than [`MAX_BLOCK_SIZE`].
    #[error("block {cid} is {len} bytes, more than the {max}-byte limit of CAR readers")]
    BlockTooLarge { cid: Cid, len: usize, max: usize },
    /// The temporary file next to the target could not be created.
    #[error("cannot create a temporary CAR file in {dir}")]
    Create {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A CAR streamed with one root in its header was finished with another (the
    /// input changed between an encoder's two passes).
    #[error("the CAR's header names {header} but its DAG's root is {root}")]
    RootChanged { header: Box<Cid>, root: Box<Cid> },
    /// The finished CAR could not be renamed into place.
    #[error("cannot move the finished CAR into place at {path}")]
    Persist {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Streams a CARv1 to `W`. Blocks with a CID already written are skipped, so the CAR
/// holds each block once however often the DAG builder emits it.
#[derive(Debug)]
pub struct CarWriter<W: Write> {
    w: W,
    seen: CidSet,
    bytes: u64,
    scratch: Vec<u8>,
}

impl<W: Write> CarWriter<W> {
    /// Writes the header with the single root `root` and returns the writer.
    pub fn new(w: W, root: &Cid) -> Result<Self, CarWriteError> {
        Self::with_roots(w, std::slice::from_ref(root))
    }

    /// Writes the header with any number of roots and returns the writer.
    pub fn with_roots(mut w: W, roots: &[Cid]) -> Result<Self, CarWriteError> {
        let header = encode_header(roots);
        w.write_all(&header)?;
        Ok(Self::headerless(w, header.len() as u64))
    }

    /// A writer whose first `offset` bytes (the header) were written by somebody else.
    fn headerless(w: W, offset: u64) -> Self {
        Self {
            w,
            seen: CidSet::default(),
            bytes: offset,
            scratch: Vec::with_capacity(128),
        }
    }

    /// Appends one block. Returns `false` (and writes nothing) when a block with this CID
    /// was already written. The data is not checked against the CID.
    pub fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<bool, CarWriteError> {
        self.put_with(cid, data, |w, data| w.write_all(data))
    }

    /// [`put`](Self::put), the block's bytes written by `write` into the underlying
    /// writer after their section's header (`narfs serve` hands a verified leaf to its
    /// body whole, `Vec` and all, rather than copying it).
    pub fn put_with<D: AsRef<[u8]>>(
        &mut self,
        cid: &Cid,
        data: D,
        write: impl FnOnce(&mut W, D) -> io::Result<()>,
    ) -> Result<bool, CarWriteError> {
        let len = data.as_ref().len();
        if len > MAX_BLOCK_SIZE {
            return Err(CarWriteError::BlockTooLarge {
                cid: *cid,
                len,
                max: MAX_BLOCK_SIZE,
            });
        }
        // One lookup: the CID is taken back if the section cannot be written.
        if !self.seen.insert(*cid) {
            return Ok(false);
        }
        let written = self.section(cid, len, data, write);
        if written.is_err() {
            self.seen.remove(cid);
        }
        written.map(|()| true)
    }

    fn section<D>(
        &mut self,
        cid: &Cid,
        len: usize,
        data: D,
        write: impl FnOnce(&mut W, D) -> io::Result<()>,
    ) -> Result<(), CarWriteError> {
        self.scratch.clear();
        let cid_len = cid.encoded_len();
        varint::put(&mut self.scratch, (cid_len + len) as u64);
        cid.write_bytes(&mut self.scratch).map_err(cid_io_error)?;
        self.w.write_all(&self.scratch)?;
        write(&mut self.w, data)?;
        self.bytes += (self.scratch.len() + len) as u64;
        Ok(())
    }

    /// Whether a block with this CID was already written.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.seen.contains(cid)
    }

    /// Number of distinct blocks written.
    pub fn blocks_written(&self) -> usize {
        self.seen.len()
    }

    /// Total bytes written so far, header included.
    pub fn bytes_written(&self) -> u64 {
        self.bytes
    }

    /// Flushes and returns the inner writer.
    pub fn finish(mut self) -> Result<W, CarWriteError> {
        self.w.flush()?;
        Ok(self.w)
    }
}

fn cid_io_error(e: cid::Error) -> io::Error {
    io::Error::other(e)
}

/// Writes a CAR file whose root is known only at the end.
///
/// Blocks go to a temporary file in the target's directory, after room reserved for the
/// header of a 36-byte root CID (CIDv1 with any one-byte codec and a 32-byte sha2-256 or
/// blake3 digest — every root narfs makes). [`finish`](Self::finish) writes the header
/// into that room (or, for a root of another length, copies the blocks after a fresh
/// header), syncs, and renames the file into place. Dropping the writer, or any error,
/// leaves no file at the target path.
///
/// `/dev/null` as the target is a true null sink: nothing is written anywhere (a
/// benchmark's way to measure encoding alone).
#[derive(Debug)]
pub struct CarFileWriter {
    path: PathBuf,
    /// The target is a device or FIFO (e.g. `/dev/stdout`): written through at the
    /// end, never renamed over.
    device: bool,
    dir: PathBuf,
    inner: Target,
    reserved: u64,
}

/// Where the blocks go until [`CarFileWriter::finish`].
#[derive(Debug)]
enum Target {
    /// A temporary file next to the target (or in `$TMPDIR` for a device), written
    /// by a thread of its own, around the page cache where it can
    /// ([`DirectWriter`]).
    Spool(CarWriter<DirectWriter>),
    /// Written through to a device or pipe whose root was known up front
    /// ([`CarFileWriter::stream`]).
    Stream(CarWriter<BufWriter<std::fs::File>>, Cid),
    /// The target is `/dev/null`: blocks are only counted.
    Discard(CarWriter<io::Sink>),
}

/// Whether `path` is the null device.
fn is_dev_null(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{FileTypeExt, MetadataExt};
        let (Ok(m), Ok(null)) = (std::fs::metadata(path), std::fs::metadata("/dev/null")) else {
            return false;
        };
        m.file_type().is_char_device() && m.rdev() == null.rdev()
    }
    #[cfg(not(unix))]
    {
        let _ = path;
        false
    }
}

/// Root CID length the header room is reserved for.
const RESERVED_CID_LEN: usize = 36;

fn temp_in(dir: &Path) -> Result<NamedTempFile, CarWriteError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".narfs-car-").suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        // Like File::create: 0o666 minus the umask, instead of tempfile's 0o600.
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .map_err(|source| CarWriteError::Create {
            dir: dir.to_path_buf(),
            source,
        })
}

impl CarFileWriter {
    /// Starts a CAR that will appear at `path` when [`finish`](Self::finish) succeeds.
    pub fn create(path: impl AsRef<Path>) -> Result<Self, CarWriteError> {
        let path = path.as_ref().to_path_buf();
        if is_dev_null(&path) {
            return Ok(Self {
                dir: PathBuf::new(),
                path,
                device: true,
                inner: Target::Discard(CarWriter::headerless(io::sink(), 0)),
                reserved: 0,
            });
        }
        let device = std::fs::metadata(&path).is_ok_and(|m| !m.is_file() && !m.is_dir());
        let dir = match path.parent() {
            _ if device => std::env::temp_dir(),
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        // A device's spool is read back at once (copied to the device), so it stays
        // in the page cache; a file's is only synced.
        let mut w = DirectWriter::new(temp_in(&dir)?, !device)?;
        let reserved = reserved_header_len();
        w.write_all(&vec![0u8; reserved])?;
        Ok(Self {
            path,
            device,
            dir,
            inner: Target::Spool(CarWriter::headerless(w, reserved as u64)),
            reserved: reserved as u64,
        })
    }

    /// A CAR of the root `root`, known before its blocks (an encoder's second pass
    /// over an input it can read again), written through to the device or pipe at
    /// `path` as blocks come: no spool, no copy at the end. [`finish`](Self::finish)
    /// must then be given the same root.
    pub fn stream(path: impl AsRef<Path>, root: &Cid) -> Result<Self, CarWriteError> {
        let path = path.as_ref().to_path_buf();
        let dest = std::fs::OpenOptions::new().write(true).open(&path)?;
        let w = CarWriter::new(BufWriter::with_capacity(1 << 20, dest), root)?;
        Ok(Self {
            path,
            device: true,
            dir: PathBuf::new(),
            inner: Target::Stream(w, *root),
            reserved: 0,
        })
    }

    /// Whether `path` is a device or FIFO other than `/dev/null`: where
    /// [`create`](Self::create) spools the whole CAR and [`stream`](Self::stream)
    /// can write it through once the root is known.
    pub fn spools(path: impl AsRef<Path>) -> bool {
        let path = path.as_ref();
        !is_dev_null(path) && std::fs::metadata(path).is_ok_and(|m| !m.is_file() && !m.is_dir())
    }

    /// Appends one block; see [`CarWriter::put`].
    pub fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<bool, CarWriteError> {
        match &mut self.inner {
            Target::Spool(w) => w.put(cid, data),
            Target::Stream(w, _) => w.put(cid, data),
            Target::Discard(w) => w.put(cid, data),
        }
    }

    /// Whether a block with this CID was already written.
    pub fn contains(&self, cid: &Cid) -> bool {
        match &self.inner {
            Target::Spool(w) => w.contains(cid),
            Target::Stream(w, _) => w.contains(cid),
            Target::Discard(w) => w.contains(cid),
        }
    }

    /// Number of distinct blocks written.
    pub fn blocks_written(&self) -> usize {
        match &self.inner {
            Target::Spool(w) => w.blocks_written(),
            Target::Stream(w, _) => w.blocks_written(),
            Target::Discard(w) => w.blocks_written(),
        }
    }

    /// The path the CAR will have once finished.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes the header for `root`, syncs and renames the CAR into place, replacing any
    /// file there. Returns the CAR's size in bytes.
    pub fn finish(self, root: &Cid) -> Result<u64, CarWriteError> {
        let header = encode_header(std::slice::from_ref(root));
        let spool = match self.inner {
            Target::Spool(w) => w,
            Target::Discard(w) => return Ok(header.len() as u64 + w.bytes_written()),
            Target::Stream(w, streamed) => {
                if streamed != *root {
                    return Err(CarWriteError::RootChanged {
                        header: Box::new(streamed),
                        root: Box::new(*root),
                    });
                }
                let bytes = w.bytes_written();
                w.finish()?;
                return Ok(bytes);
            }
        };
        let mut tmp = spool.finish()?.finish()?;
        let end = tmp.as_file_mut().seek(SeekFrom::End(0))?;
        let body_len = end - self.reserved;
        if self.device {
            let mut dest = std::fs::OpenOptions::new().write(true).open(&self.path)?;
            dest.write_all(&header)?;
            tmp.as_file_mut().seek(SeekFrom::Start(self.reserved))?;
            let copied = io::copy(tmp.as_file_mut(), &mut dest)?;
            if copied != body_len {
                return Err(io::Error::other("temporary CAR changed while copying").into());
            }
            return Ok(header.len() as u64 + body_len);
        }
        let out = if header.len() as u64 == self.reserved {
            tmp.as_file_mut().seek(SeekFrom::Start(0))?;
            tmp.as_file_mut().write_all(&header)?;
            tmp
        } else {
            let mut out = temp_in(&self.dir)?;
            out.as_file_mut().write_all(&header)?;
            tmp.as_file_mut().seek(SeekFrom::Start(self.reserved))?;
            let copied = io::copy(tmp.as_file_mut(), out.as_file_mut())?;
            if copied != body_len {
                return Err(io::Error::other("temporary CAR changed while copying").into());
            }
            out
        };
        out.as_file().sync_all()?;
        out.persist(&self.path)
            .map_err(|e| CarWriteError::Persist {
                path: self.path.clone(),
                source: e.error,
            })?;
        Ok(header.len() as u64 + body_len)
    }
}

/// Header length for a single root of [`RESERVED_CID_LEN`] bytes.
fn reserved_header_len() -> usize {
    // varint(1 byte) + a2 + 65 "roots" + 81 + d8 2a + 58 len + 00 + cid + 67 "version" + 01
    1 + 1 + 6 + 1 + 2 + 2 + 1 + RESERVED_CID_LEN + 8 + 1
}

impl crate::block::BlockSink for CarFileWriter {
    fn put(&mut self, cid: &Cid, data: &[u8]) -> Result<(), crate::block::StoreError> {
        CarFileWriter::put(self, cid, data)
            .map(|_| ())
            .map_err(|e| crate::block::StoreError::Backend(Box::new(e)))
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
