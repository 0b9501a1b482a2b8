//! The UnixFS `Data` message (the bytes inside a dag-pb node's `Data`): encode + strict decode.
//!
//! ```protobuf
//! message Data {
//!   enum DataType { Raw = 0; Directory = 1; File = 2; Metadata = 3; Symlink = 4; HAMTShard = 5; }
//!   required DataType Type = 1;
//!   optional bytes Data = 2;
//!   optional uint64 filesize = 3;
//!   repeated uint64 blocksizes = 4;   // proto2: NOT packed
//!   optional uint64 hashType = 5;
//!   optional uint64 fanout = 6;
//!   optional uint32 mode = 7;
//!   optional UnixTime mtime = 8;
//! }
//! message UnixTime { required int64 Seconds = 1; optional fixed32 FractionalNanoseconds = 2; }
//! ```
//!
//! [`UnixFsData::encode`] writes the present fields in field-number order, one key per
//! blocksize, which is what boxo (gogo-protobuf) and js `ipfs-unixfs` (protons) produce.
//! What is *present* is the constructors' business; they follow js `ipfs-unixfs` 13
//! `marshal()` and Kubo:
//! - directory: `Type=1` only (`08 01`); a mode of 0o755 is the default and omitted;
//! - file: `Type=2`, `filesize` always (even 0), the `blocksizes`, no `Data` when the
//!   leaves are separate blocks; a mode of 0o644 is the default and omitted, any other
//!   (narfs: 0o755 on executables) is written;
//! - symlink: `Type=4`, `Data` = the target, no `filesize`;
//! - HAMT shard: `Type=5`, `Data` = bitfield, `hashType`, `fanout`.
//!
//! JS also drops an empty `Data`; the constructors do the same.
//!
//! Decoding is strict, mirroring [`crate::dagpb`]: fields must appear in field-number
//! order, only `blocksizes` may repeat (consecutively, unpacked), unknown fields, wrong
//! wire types, unknown `Type` values, a `mode` above `u32::MAX`, non-minimal varints and
//! truncation are errors, and `Type` (and `Seconds` in an mtime) must be present.

use crate::dagpb::{put_len_field, put_varint_field, Reader, WireError};
use crate::dagpb::{WT_FIXED32, WT_LEN, WT_VARINT};
use crate::varint::put as put_varint;

/// The `hashType` of UnixFS HAMT shards: murmur3-x64-64.
pub const HAMT_HASH_MURMUR3: u64 = 0x22;
/// Default mode of files, omitted when encoding.
pub const DEFAULT_FILE_MODE: u32 = 0o644;
/// Default mode of directories, omitted when encoding.
pub const DEFAULT_DIRECTORY_MODE: u32 = 0o755;

/// UnixFS node types.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DataType {
    Raw = 0,
    Directory = 1,
    File = 2,
    Metadata = 3,
    Symlink = 4,
    HamtShard = 5,
}

impl DataType {
    /// The type with this protobuf enum value.
    pub const fn from_u64(v: u64) -> Option<Self> {
        Some(match v {
            0 => DataType::Raw,
            1 => DataType::Directory,
            2 => DataType::File,
            3 => DataType::Metadata,
            4 => DataType::Symlink,
            5 => DataType::HamtShard,
            _ => return None,
        })
    }
}

/// A modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct UnixTime {
    pub seconds: i64,
    pub fractional_nanoseconds: Option<u32>,
}

/// The UnixFS `Data` message.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UnixFsData {
    pub data_type: DataType,
    pub data: Option<Vec<u8>>,
    pub filesize: Option<u64>,
    pub blocksizes: Vec<u64>,
    pub hash_type: Option<u64>,
    pub fanout: Option<u64>,
    pub mode: Option<u32>,
    pub mtime: Option<UnixTime>,
}

/// Why a UnixFS `Data` message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UnixFsError {
    /// The protobuf wire format itself is broken.
    #[error("unixfs")]
    Wire(#[from] WireError),
    /// A field number the UnixFS `Data` schema does not have.
    #[error("unixfs: unknown {message} field {field} at byte {offset}")]
    UnknownField {
        message: &'static str,
        field: u64,
        offset: usize,
    },
    /// A known field with the wrong wire type.
    #[error("unixfs: {message} field {field} has wire type {wire_type} at byte {offset}")]
    WrongWireType {
        message: &'static str,
        field: u64,
        wire_type: u8,
        offset: usize,
    },
    /// Fields not in field-number order, or one repeated that may appear once.
    #[error("unixfs: {message} field {field} out of order or repeated at byte {offset}")]
    FieldOrder {
        message: &'static str,
        field: u64,
        offset: usize,
    },
    /// No `Type`, which every UnixFS node has.
    #[error("unixfs: no Type field")]
    MissingType,
    /// A `Type` number UnixFS does not define.
    #[error("unixfs: unknown Type {0}")]
    UnknownType(u64),
    /// A `mode` over 32 bits.
    #[error("unixfs: mode {0} does not fit 32 bits")]
    ModeOutOfRange(u64),
    /// An `mtime` message without its required `Seconds`.
    #[error("unixfs: mtime without Seconds")]
    MissingSeconds,
}

impl UnixFsData {
    /// A message of `data_type` with no other field set.
    pub fn new(data_type: DataType) -> Self {
        Self {
            data_type,
            data: None,
            filesize: None,
            blocksizes: Vec::new(),
            hash_type: None,
            fanout: None,
            mode: None,
            mtime: None,
        }
    }

    /// A plain directory: `08 01`.
    pub fn directory() -> Self {
        Self::new(DataType::Directory)
    }

    /// A file node over separate leaves: `filesize` = sum of `blocksizes`; `mode` is
    /// dropped when it is the default 0o644.
    pub fn file(blocksizes: Vec<u64>, mode: Option<u32>) -> Self {
        let filesize = blocksizes.iter().fold(0u64, |a, &b| a.saturating_add(b));
        Self {
            filesize: Some(filesize),
            blocksizes,
            mode: mode.filter(|&m| m != DEFAULT_FILE_MODE),
            ..Self::new(DataType::File)
        }
    }

    /// A symlink: the target as `Data` (omitted when empty), no `filesize`.
    pub fn symlink(target: &[u8]) -> Self {
        Self {
            data: non_empty(target),
            ..Self::new(DataType::Symlink)
        }
    }

    /// A HAMT shard node with murmur3 hashing.
    pub fn hamt_shard(bitfield: &[u8], fanout: u64) -> Self {
        Self {
            data: non_empty(bitfield),
            hash_type: Some(HAMT_HASH_MURMUR3),
            fanout: Some(fanout),
            ..Self::new(DataType::HamtShard)
        }
    }

    /// Encodes, replacing the contents of `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.clear();
        put_varint_field(out, 1, self.data_type as u64);
        if let Some(data) = &self.data {
            put_len_field(out, 2, data);
        }
        if let Some(v) = self.filesize {
            put_varint_field(out, 3, v);
        }
        for &v in &self.blocksizes {
            put_varint_field(out, 4, v);
        }
        if let Some(v) = self.hash_type {
            put_varint_field(out, 5, v);
        }
        if let Some(v) = self.fanout {
            put_varint_field(out, 6, v);
        }
        if let Some(v) = self.mode {
            put_varint_field(out, 7, u64::from(v));
        }
        if let Some(t) = &self.mtime {
            let mut inner = Vec::with_capacity(16);
            put_varint_field(&mut inner, 1, t.seconds as u64);
            if let Some(n) = t.fractional_nanoseconds {
                put_varint(&mut inner, (2 << 3) | u64::from(WT_FIXED32));
                inner.extend_from_slice(&n.to_le_bytes());
            }
            put_len_field(out, 8, &inner);
        }
    }

    /// The encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + self.blocksizes.len() * 4);
        self.encode_into(&mut out);
        out
    }

    /// Strict decoding (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Self, UnixFsError> {
        let mut r = Reader::new(bytes, 0);
        let mut msg = Self::new(DataType::Raw);
        let mut seen_type = false;
        let mut last = 0u64;
        while !r.is_empty() {
            let (field, wire_type, offset) = r.key()?;
            if !(1..=8).contains(&field) {
                return Err(UnixFsError::UnknownField {
                    message: "Data",
                    field,
                    offset,
                });
            }
            if field < last || (field == last && field != 4) {
                return Err(UnixFsError::FieldOrder {
                    message: "Data",
                    field,
                    offset,
                });
            }
            last = field;
            let expected = if field == 2 || field == 8 {
                WT_LEN
            } else {
                WT_VARINT
            };
            if wire_type != expected {
                return Err(UnixFsError::WrongWireType {
                    message: "Data",
                    field,
                    wire_type,
                    offset,
                });
            }
            match field {
                1 => {
                    let v = r.varint()?;
                    msg.data_type = DataType::from_u64(v).ok_or(UnixFsError::UnknownType(v))?;
                    seen_type = true;
                }
                2 => msg.data = Some(r.bytes()?.0.to_vec()),
                3 => msg.filesize = Some(r.varint()?),
                4 => msg.blocksizes.push(r.varint()?),
                5 => msg.hash_type = Some(r.varint()?),
                6 => msg.fanout = Some(r.varint()?),
                7 => {
                    let v = r.varint()?;
                    msg.mode = Some(u32::try_from(v).map_err(|_| UnixFsError::ModeOutOfRange(v))?);
                }
                _ => {
                    let (inner, at) = r.bytes()?;
                    msg.mtime = Some(decode_time(inner, at)?);
                }
            }
        }
        if !seen_type {
            return Err(UnixFsError::MissingType);
        }
        Ok(msg)
    }
}

fn non_empty(bytes: &[u8]) -> Option<Vec<u8>> {
    (!bytes.is_empty()).then(|| bytes.to_vec())
}

fn decode_time(bytes: &[u8], base: usize) -> Result<UnixTime, UnixFsError> {
    let mut r = Reader::new(bytes, base);
    let mut seconds = None;
    let mut nanos = None;
    let mut last = 0u64;
    while !r.is_empty() {
        let (field, wire_type, offset) = r.key()?;
        if field != 1 && field != 2 {
            return Err(UnixFsError::UnknownField {
                message: "UnixTime",
                field,
                offset,
            });
        }
        if field <= last {
            return Err(UnixFsError::FieldOrder {
                message: "UnixTime",
                field,
                offset,
            });
        }
        last = field;
        let expected = if field == 1 { WT_VARINT } else { WT_FIXED32 };
        if wire_type != expected {
            return Err(UnixFsError::WrongWireType {
                message: "UnixTime",
                field,
                wire_type,
                offset,
            });
        }
        if field == 1 {
            // int64: negative values are the 10-byte two's complement varint.
            seconds = Some(r.varint()? as i64);
        } else {
            nanos = Some(r.fixed32()?);
        }
    }
    Ok(UnixTime {
        seconds: seconds.ok_or(UnixFsError::MissingSeconds)?,
        fractional_nanoseconds: nanos,
    })
}

#[cfg(test)]
#[path = "unixfs_tests.rs"]
mod tests;
