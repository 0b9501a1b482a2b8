//! [`CarFile`]: a CAR file indexed once by CID (`CID -> data offset, length`, never the
//! bytes), serving blocks by positioned reads so memory stays bounded by the number of
//! blocks, not their size.

use super::{io_error, CarError, CarReader};
use cid::Cid;
use std::collections::hash_map::{Entry, HashMap};
use std::fs::File;
use std::io::{self, BufReader};
use std::path::Path;

/// A CAR file indexed by CID: blocks are read from disk on demand.
#[derive(Debug)]
pub struct CarFile {
    file: File,
    roots: Vec<Cid>,
    index: HashMap<Cid, (u64, u32)>,
    duplicates: u64,
}

impl CarFile {
    /// Opens and indexes the CAR at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, CarError> {
        let file = File::open(path).map_err(|e| CarError::Io {
            offset: 0,
            source: e,
        })?;
        Self::from_file(file)
    }

    /// Indexes an open CAR file in one pass, reading only lengths and CIDs.
    pub fn from_file(mut file: File) -> Result<Self, CarError> {
        // The index holds absolute offsets: read from the start, wherever the file is.
        io::Seek::rewind(&mut file).map_err(|e| CarError::Io {
            offset: 0,
            source: e,
        })?;
        let len = file
            .metadata()
            .map_err(|e| CarError::Io {
                offset: 0,
                source: e,
            })?
            .len();
        let mut reader = CarReader::with_len(BufReader::with_capacity(64 << 10, &file), len)?;
        let mut index = HashMap::new();
        let mut duplicates = 0;
        while let Some((cid, offset, len)) = reader.next_entry()? {
            // len <= MAX_BLOCK_SIZE, so it fits in u32. The first entry wins.
            match index.entry(cid) {
                Entry::Occupied(_) => duplicates += 1,
                Entry::Vacant(e) => {
                    e.insert((offset, len as u32));
                }
            }
        }
        let roots = std::mem::take(&mut reader.roots);
        drop(reader);
        Ok(Self {
            file,
            roots,
            index,
            duplicates,
        })
    }

    /// The root CIDs the header names.
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Number of distinct blocks.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Whether the CAR holds no block.
    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// Sections whose CID had already been seen (ignored; the first one is served).
    pub fn duplicates(&self) -> u64 {
        self.duplicates
    }

    /// Whether a block with this CID is in the CAR.
    pub fn contains(&self, cid: &Cid) -> bool {
        self.index.contains_key(cid)
    }

    /// Where a block's data is: (byte offset, length).
    pub fn location(&self, cid: &Cid) -> Option<(u64, u64)> {
        self.index.get(cid).map(|&(o, l)| (o, u64::from(l)))
    }

    /// All CIDs in the CAR, in no particular order.
    pub fn cids(&self) -> impl Iterator<Item = &Cid> {
        self.index.keys()
    }

    /// The block's bytes, read from disk (not verified against the CID).
    pub fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, CarError> {
        let Some(&(offset, len)) = self.index.get(cid) else {
            return Ok(None);
        };
        let buf = read_new(&self.file, len as usize, offset)
            .map_err(|e| io_error(offset, e, "block data"))?;
        Ok(Some(buf))
    }
}

/// `len` bytes at `offset`, read into a new buffer that is not zeroed first: on a
/// decode from a CAR, zeroing each leaf's buffer (and faulting its pages in to do it)
/// took 4% of the samples, a pass over every byte that `pread` then overwrites. The
/// buffer is a recycled one where the output gave one back ([`crate::leaf_buffers`]).
#[cfg(target_os = "linux")]
fn read_new(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    use std::os::fd::AsRawFd;
    let mut buf: Vec<u8> = crate::leaf_buffers::take(len);
    while buf.len() < len {
        let done = buf.len();
        let spare = &mut buf.spare_capacity_mut()[..len - done];
        let at = libc::off_t::try_from(offset + done as u64)
            .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: `pread` writes at most `spare.len()` bytes into the vector's spare
        // capacity, which it owns; only the bytes it reports written are then counted.
        let n =
            unsafe { libc::pread(file.as_raw_fd(), spare.as_mut_ptr().cast(), spare.len(), at) };
        match n {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n if n < 0 => {
                let e = io::Error::last_os_error();
                if e.kind() != io::ErrorKind::Interrupted {
                    return Err(e);
                }
            }
            // SAFETY: the first `done + n` bytes are initialised (by earlier reads and
            // this one), and `done + n <= len <= capacity`.
            n => unsafe { buf.set_len(done + n as usize) },
        }
    }
    Ok(buf)
}

#[cfg(not(target_os = "linux"))]
fn read_new(file: &File, len: usize, offset: u64) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; len];
    read_at(file, &mut buf, offset)?;
    Ok(buf)
}

#[cfg(all(unix, not(target_os = "linux")))]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(not(unix))]
fn read_at(mut file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    use std::io::{Read, Seek};
    file.seek(io::SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

impl crate::block::BlockSource for CarFile {
    fn get(&self, cid: &Cid) -> Result<Option<Vec<u8>>, crate::block::StoreError> {
        CarFile::get(self, cid).map_err(|e| crate::block::StoreError::Backend(Box::new(e)))
    }

    fn get_many_verified(
        &self,
        cids: &[Cid],
    ) -> Vec<Result<Option<crate::block::Verified>, crate::block::StoreError>> {
        crate::block::get_then_verify(self, cids)
    }
}
