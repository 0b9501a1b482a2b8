//! [`CarReader`]: streams the blocks of a CARv1 (or of the CARv1 payload of a CARv2)
//! from any `Read`, bounding every length before it allocates.

use cid::Cid;
use std::io::{self, BufReader, Read, Seek};

use super::header::{self, Header, MAX_CID_LEN, V2_HEADER_LEN, V2_PRAGMA_LEN};
use super::{io_error, CarError, MAX_HEADER_LEN, MAX_SECTION_LEN};
use crate::varint;

/// A reader that counts the bytes it has read.
#[derive(Debug)]
pub(super) struct Pos<R> {
    pub(super) inner: R,
    pub(super) pos: u64,
}

impl<R: Read> Read for Pos<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<R: Read> Pos<R> {
    pub(super) fn read_exact_or(
        &mut self,
        buf: &mut [u8],
        what: &'static str,
    ) -> Result<(), CarError> {
        let start = self.pos;
        self.read_exact(buf).map_err(|e| io_error(start, e, what))
    }

    /// Reads `len` bytes, growing the buffer only as bytes actually arrive.
    fn read_vec(&mut self, len: u64, what: &'static str) -> Result<Vec<u8>, CarError> {
        let start = self.pos;
        let mut buf = Vec::with_capacity(len.min(64 << 10) as usize);
        self.take(len)
            .read_to_end(&mut buf)
            .map_err(|e| io_error(start, e, what))?;
        if (buf.len() as u64) < len {
            return Err(CarError::Truncated {
                offset: self.pos,
                what,
            });
        }
        Ok(buf)
    }

    /// Reads a varint; `Ok(None)` on a clean end of input before its first byte.
    fn read_varint(&mut self, what: &'static str) -> Result<Option<u64>, CarError> {
        let start = self.pos;
        varint::read(self, varint::MAX_MULTIFORMATS_BYTES).map_err(|e| match e {
            varint::ReadError::Io(e) => io_error(self.pos, e, what),
            varint::ReadError::Truncated => CarError::Truncated {
                offset: self.pos,
                what,
            },
            varint::ReadError::Invalid(reason) => CarError::BadVarint {
                offset: start,
                reason,
            },
        })
    }

    /// Reads a length-prefixed dag-cbor header that must end by `end` (if known).
    fn read_header(&mut self, end: Option<u64>) -> Result<Header, CarError> {
        let offset = self.pos;
        let len = self
            .read_varint("the header length")?
            .ok_or(CarError::Truncated {
                offset,
                what: "a CAR header",
            })?;
        if len > MAX_HEADER_LEN {
            return Err(CarError::HeaderTooLarge {
                offset,
                len,
                max: MAX_HEADER_LEN,
            });
        }
        if end.is_some_and(|end| len > end.saturating_sub(self.pos)) {
            return Err(CarError::Truncated {
                offset,
                what: "the whole header",
            });
        }
        let buf = self.read_vec(len, "the header")?;
        header::parse_header(&buf).map_err(|reason| CarError::BadHeader { offset, reason })
    }
}

/// Streams blocks out of a CAR. Give it a buffered reader: varints are read byte by byte.
#[derive(Debug)]
pub struct CarReader<R> {
    r: Pos<R>,
    pub(super) roots: Vec<Cid>,
    /// Absolute end of the CARv1 payload, when known.
    end: Option<u64>,
    failed: bool,
}

impl<R: Read> CarReader<R> {
    /// Reads and checks the header of a CAR of unknown length.
    pub fn new(r: R) -> Result<Self, CarError> {
        Self::open(r, None)
    }

    /// Like [`new`](Self::new) for an input of `len` bytes: sections claiming more than
    /// what remains are rejected before they are read.
    pub fn with_len(r: R, len: u64) -> Result<Self, CarError> {
        Self::open(r, Some(len))
    }

    fn open(inner: R, len: Option<u64>) -> Result<Self, CarError> {
        let mut r = Pos { inner, pos: 0 };
        let (roots, end) = match r.read_header(len)? {
            Header::V1 { roots } => (roots, len),
            Header::Unsupported { version } => {
                return Err(CarError::UnsupportedVersion { offset: 0, version })
            }
            Header::V2Pragma => {
                let at = r.pos;
                let bad = |reason: String| CarError::BadV2Header { offset: at, reason };
                if at != V2_PRAGMA_LEN {
                    return Err(bad("the pragma is not the canonical 11 bytes".into()));
                }
                let mut fixed = [0u8; V2_HEADER_LEN];
                r.read_exact_or(&mut fixed, "the CARv2 header")?;
                let v2 = header::parse_v2_header(&fixed).map_err(bad)?;
                let end = v2.data_offset + v2.data_size;
                if let Some(len) = len.filter(|&len| end > len) {
                    return Err(bad(format!(
                        "payload ends at byte {end}, past the {len}-byte input"
                    )));
                }
                let pad = v2.data_offset - r.pos;
                let skipped = io::copy(&mut (&mut r).take(pad), &mut io::sink())
                    .map_err(|e| io_error(r.pos, e, "CARv2 padding"))?;
                if skipped < pad {
                    return Err(CarError::Truncated {
                        offset: r.pos,
                        what: "the CARv1 payload",
                    });
                }
                match r.read_header(Some(end))? {
                    Header::V1 { roots } => (roots, Some(end)),
                    _ => return Err(bad("the CARv2 payload is not a CARv1".into())),
                }
            }
        };
        Ok(Self {
            r,
            roots,
            end,
            failed: false,
        })
    }

    /// The root CIDs the header names (possibly none).
    pub fn roots(&self) -> &[Cid] {
        &self.roots
    }

    /// Bytes consumed so far.
    pub fn offset(&self) -> u64 {
        self.r.pos
    }

    /// Reads a section's length varint and bounds it; `None` at the end of the payload.
    /// Returns (section start, length).
    fn next_section_len(&mut self) -> Result<Option<(u64, u64)>, CarError> {
        let offset = self.r.pos;
        if self.end == Some(offset) {
            return Ok(None);
        }
        let Some(len) = self.r.read_varint("a section length")? else {
            return match self.end {
                Some(_) => Err(CarError::Truncated {
                    offset,
                    what: "another section",
                }),
                None => Ok(None),
            };
        };
        if len == 0 {
            return Err(CarError::EmptySection { offset });
        }
        if len > MAX_SECTION_LEN {
            return Err(CarError::SectionTooLarge {
                offset,
                len,
                max: MAX_SECTION_LEN,
            });
        }
        if let Some(end) = self.end {
            let remaining = end.saturating_sub(self.r.pos);
            if len > remaining {
                return Err(CarError::SectionPastEnd {
                    offset,
                    len,
                    remaining,
                });
            }
        }
        Ok(Some((offset, len)))
    }

    /// The next block, or `None` at the end of the CAR.
    pub fn next_block(&mut self) -> Result<Option<(Cid, Vec<u8>)>, CarError> {
        let Some((offset, len)) = self.next_section_len()? else {
            return Ok(None);
        };
        let mut buf = self.r.read_vec(len, "the rest of a section")?;
        let (cid, used) =
            header::parse_cid_prefix(&buf).map_err(|reason| CarError::BadCid { offset, reason })?;
        buf.drain(..used);
        Ok(Some((cid, buf)))
    }
}

impl<R: Read + Seek> CarReader<BufReader<R>> {
    /// The next section as (CID, data offset, data length), skipping over the data.
    pub(super) fn next_entry(&mut self) -> Result<Option<(Cid, u64, u64)>, CarError> {
        let Some((offset, len)) = self.next_section_len()? else {
            return Ok(None);
        };
        let mut prefix = [0u8; MAX_CID_LEN];
        let n = len.min(MAX_CID_LEN as u64) as usize;
        self.r.read_exact_or(&mut prefix[..n], "a CID")?;
        let (cid, used) = header::parse_cid_prefix(&prefix[..n])
            .map_err(|reason| CarError::BadCid { offset, reason })?;
        let data_offset = self.r.pos - n as u64 + used as u64;
        let skip = len - n as u64; // <= MAX_SECTION_LEN, fits in i64
        let at = self.r.pos;
        self.r
            .inner
            .seek_relative(skip as i64)
            .map_err(|e| io_error(at, e, "section data"))?;
        self.r.pos += skip;
        Ok(Some((cid, data_offset, len - used as u64)))
    }
}

impl<R: Read> Iterator for CarReader<R> {
    type Item = Result<(Cid, Vec<u8>), CarError>;

    /// Yields blocks; after the first error, yields nothing more.
    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        let item = self.next_block().transpose();
        self.failed = matches!(item, Some(Err(_)));
        item
    }
}
