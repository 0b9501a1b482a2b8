//! The dag-pb codec: [`PBNode`] / [`PBLink`], a canonical encoder and a strict decoder.
//!
//! Encoding is byte-identical to `@ipld/dag-pb` (default `links-first`) and
//! go-codec-dagpb: every `Links` entry (field 2) before `Data` (field 1); inside a link
//! `Hash` (1), `Name` (2), `Tsize` (3), each written when present — an empty `Name` *is*
//! written (`12 00`), as Kubo and the JS importer do for file-chunk links. Links are
//! written in the order given; sorting them by name is the caller's job.
//!
//! Decoding follows the "Protobuf Strictness" rules of the dag-pb spec
//! (<https://ipld.io/specs/codecs/dag-pb/spec/>): unknown fields, wrong wire types,
//! out-of-order or duplicate `PBLink` fields, a duplicate `Data`, a link without `Hash`,
//! bytes that are not exactly one CID, and truncated input are all errors. As the spec
//! (and the UnixFS spec) require, `Data` is accepted before the links as well as after
//! them, but the links must be one contiguous group (`Links, Data, Links` is refused).
//! Beyond the spec, narfs also refuses non-minimal varints and non-UTF-8 names, so that
//! any accepted links-first block re-encodes to exactly its own bytes.
//!
//! The varint/field primitives here are shared with [`crate::unixfs`].

use cid::Cid;

use crate::varint::{self, len as varint_len, put as put_varint};

/// Protobuf wire types used by dag-pb and UnixFS.
pub(crate) const WT_VARINT: u8 = 0;
pub(crate) const WT_LEN: u8 = 2;
pub(crate) const WT_FIXED32: u8 = 5;

/// Appends a length-delimited field: key, length, bytes.
pub(crate) fn put_len_field(out: &mut Vec<u8>, field: u64, bytes: &[u8]) {
    put_varint(out, (field << 3) | u64::from(WT_LEN));
    put_varint(out, bytes.len() as u64);
    out.extend_from_slice(bytes);
}

/// Appends a varint field: key, value.
pub(crate) fn put_varint_field(out: &mut Vec<u8>, field: u64, v: u64) {
    put_varint(out, field << 3);
    put_varint(out, v);
}

/// Low-level protobuf reading errors; offsets are from the start of the block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The input ends inside a field that starts before byte `0`.
    #[error("input ends inside a field at byte {0}")]
    Truncated(usize),
    /// A varint with more than 64 bits of value.
    #[error("varint longer than 64 bits at byte {0}")]
    VarintOverflow(usize),
    /// A varint with a shorter encoding of the same value, which no canonical encoder writes.
    #[error("non-minimal varint at byte {0}")]
    NonMinimalVarint(usize),
}

/// A cursor over a protobuf message, with `base` = offset of `buf` in the whole block.
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }
    /// Absolute offset of the cursor.
    pub(crate) fn offset(&self) -> usize {
        self.base + self.pos
    }
    pub(crate) fn varint(&mut self) -> Result<u64, WireError> {
        let start = self.offset();
        match varint::decode(&self.buf[self.pos..], varint::MAX_PROTOBUF_BYTES) {
            Ok(Some((v, used))) => {
                self.pos += used;
                Ok(v)
            }
            Ok(None) => Err(WireError::Truncated(start)),
            Err(varint::VarintError::NonMinimal) => Err(WireError::NonMinimalVarint(start)),
            Err(_) => Err(WireError::VarintOverflow(start)),
        }
    }
    /// A field key: (field number, wire type, offset of the key).
    pub(crate) fn key(&mut self) -> Result<(u64, u8, usize), WireError> {
        let at = self.offset();
        let k = self.varint()?;
        Ok((k >> 3, (k & 7) as u8, at))
    }
    /// A length-delimited payload and its absolute offset; never trusts the length
    /// beyond the bytes actually present.
    pub(crate) fn bytes(&mut self) -> Result<(&'a [u8], usize), WireError> {
        let start = self.offset();
        let len = self.varint()?;
        let rest = self.buf.len() - self.pos;
        if len > rest as u64 {
            return Err(WireError::Truncated(start));
        }
        let at = self.offset();
        let out = &self.buf[self.pos..self.pos + len as usize];
        self.pos += len as usize;
        Ok((out, at))
    }
    pub(crate) fn fixed32(&mut self) -> Result<u32, WireError> {
        let start = self.offset();
        let Some(b) = self.buf.get(self.pos..self.pos + 4) else {
            return Err(WireError::Truncated(start));
        };
        self.pos += 4;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
}

/// A dag-pb link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PBLink {
    pub hash: Cid,
    /// `Some("")` is written as an empty name, `None` not at all.
    pub name: Option<String>,
    pub tsize: Option<u64>,
}

/// A dag-pb node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PBNode {
    pub links: Vec<PBLink>,
    pub data: Option<Vec<u8>>,
}

/// A borrowed link, for encoding without building a [`PBNode`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PBLinkRef<'a> {
    pub hash: &'a Cid,
    pub name: Option<&'a str>,
    pub tsize: Option<u64>,
}

impl<'a> From<&'a PBLink> for PBLinkRef<'a> {
    fn from(l: &'a PBLink) -> Self {
        PBLinkRef {
            hash: &l.hash,
            name: l.name.as_deref(),
            tsize: l.tsize,
        }
    }
}

/// Why a dag-pb block was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DagPbError {
    /// The protobuf wire format itself is broken.
    #[error("dag-pb")]
    Wire(#[from] WireError),
    /// A field number the dag-pb schema does not have.
    #[error("dag-pb: unknown {message} field {field} at byte {offset}")]
    UnknownField {
        message: &'static str,
        field: u64,
        offset: usize,
    },
    /// A known field with the wrong wire type.
    #[error("dag-pb: {message} field {field} has wire type {wire_type} at byte {offset}")]
    WrongWireType {
        message: &'static str,
        field: u64,
        wire_type: u8,
        offset: usize,
    },
    /// A second `Data` field.
    #[error("dag-pb: duplicate Data field at byte {offset}")]
    DuplicateData { offset: usize },
    /// A `Links` field after `Data`: not the canonical order.
    #[error("dag-pb: Links continue after Data at byte {offset}")]
    InterleavedLinks { offset: usize },
    /// A link repeats one of its fields.
    #[error("dag-pb: link {link}: duplicate field {field} at byte {offset}")]
    DuplicateLinkField {
        link: usize,
        field: u64,
        offset: usize,
    },
    /// A link's fields are not in Hash, Name, Tsize order.
    #[error("dag-pb: link {link}: field {field} out of order at byte {offset}")]
    LinkFieldOrder {
        link: usize,
        field: u64,
        offset: usize,
    },
    /// A link without the CID it links to.
    #[error("dag-pb: link {link} has no Hash")]
    MissingHash { link: usize },
    /// A link's `Hash` is not a canonical CID (`reason` says why, in
    /// [`CidError::detail`](crate::block::CidError::detail)'s words).
    #[error("dag-pb: link {link}: Hash at byte {offset} is not a CID: {reason}")]
    BadCid {
        link: usize,
        offset: usize,
        reason: String,
    },
    /// A link's `Name` is not UTF-8.
    #[error("dag-pb: link {link}: Name at byte {offset} is not UTF-8")]
    InvalidName { link: usize, offset: usize },
}

/// Bytes `link` adds to a PBNode: key, length and the link message.
pub fn link_encoded_len(hash_len: usize, name_len: Option<usize>, tsize: Option<u64>) -> usize {
    let inner = link_inner_len(hash_len, name_len, tsize);
    1 + varint_len(inner as u64) + inner
}

fn link_inner_len(hash_len: usize, name_len: Option<usize>, tsize: Option<u64>) -> usize {
    let mut n = 1 + varint_len(hash_len as u64) + hash_len;
    if let Some(l) = name_len {
        n += 1 + varint_len(l as u64) + l;
    }
    if let Some(t) = tsize {
        n += 1 + varint_len(t);
    }
    n
}

/// Bytes a `Data` field of `data_len` bytes adds to a PBNode.
pub fn data_encoded_len(data_len: usize) -> usize {
    1 + varint_len(data_len as u64) + data_len
}

/// Encodes a node from borrowed parts, replacing the contents of `out` (reuse `out`
/// across calls to avoid allocating). Links are written in the given order.
pub fn encode_node_into<'a, I>(links: I, data: Option<&[u8]>, out: &mut Vec<u8>)
where
    I: IntoIterator<Item = PBLinkRef<'a>>,
{
    out.clear();
    for link in links {
        let hash_len = link.hash.encoded_len();
        let inner = link_inner_len(hash_len, link.name.map(str::len), link.tsize);
        out.push(0x12); // field 2, length-delimited
        put_varint(out, inner as u64);
        out.push(0x0a); // Hash: field 1, length-delimited
        put_varint(out, hash_len as u64);
        // Writing into a Vec cannot fail.
        let _ = link.hash.write_bytes(&mut *out);
        if let Some(name) = link.name {
            put_len_field(out, 2, name.as_bytes());
        }
        if let Some(tsize) = link.tsize {
            put_varint_field(out, 3, tsize);
        }
    }
    if let Some(data) = data {
        put_len_field(out, 1, data);
    }
}

impl PBNode {
    /// The canonical encoding, replacing the contents of `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        encode_node_into(
            self.links.iter().map(PBLinkRef::from),
            self.data.as_deref(),
            out,
        );
    }

    /// The canonical encoding.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        self.encode_into(&mut out);
        out
    }

    /// Length of [`Self::encode`]'s output, computed without encoding.
    pub fn encoded_len(&self) -> usize {
        let links: usize = self
            .links
            .iter()
            .map(|l| {
                link_encoded_len(
                    l.hash.encoded_len(),
                    l.name.as_ref().map(String::len),
                    l.tsize,
                )
            })
            .sum();
        links + self.data.as_ref().map_or(0, |d| data_encoded_len(d.len()))
    }

    /// Strict decoding (see the module documentation).
    pub fn decode(bytes: &[u8]) -> Result<Self, DagPbError> {
        let mut r = Reader::new(bytes, 0);
        let mut node = PBNode::default();
        let mut links_closed = false;
        while !r.is_empty() {
            let (field, wire_type, offset) = r.key()?;
            if field != 1 && field != 2 {
                return Err(DagPbError::UnknownField {
                    message: "PBNode",
                    field,
                    offset,
                });
            }
            if wire_type != WT_LEN {
                return Err(DagPbError::WrongWireType {
                    message: "PBNode",
                    field,
                    wire_type,
                    offset,
                });
            }
            let (payload, at) = r.bytes()?;
            if field == 1 {
                if node.data.is_some() {
                    return Err(DagPbError::DuplicateData { offset });
                }
                node.data = Some(payload.to_vec());
                links_closed = !node.links.is_empty();
            } else {
                if links_closed {
                    return Err(DagPbError::InterleavedLinks { offset });
                }
                let index = node.links.len();
                node.links.push(decode_link(payload, at, index)?);
            }
        }
        Ok(node)
    }
}

fn decode_link(bytes: &[u8], base: usize, link: usize) -> Result<PBLink, DagPbError> {
    let mut r = Reader::new(bytes, base);
    let mut hash = None;
    let mut name = None;
    let mut tsize = None;
    let mut last = 0;
    while !r.is_empty() {
        let (field, wire_type, offset) = r.key()?;
        if !(1..=3).contains(&field) {
            return Err(DagPbError::UnknownField {
                message: "PBLink",
                field,
                offset,
            });
        }
        if field == last {
            return Err(DagPbError::DuplicateLinkField {
                link,
                field,
                offset,
            });
        }
        if field < last {
            return Err(DagPbError::LinkFieldOrder {
                link,
                field,
                offset,
            });
        }
        last = field;
        let expected = if field == 3 { WT_VARINT } else { WT_LEN };
        if wire_type != expected {
            return Err(DagPbError::WrongWireType {
                message: "PBLink",
                field,
                wire_type,
                offset,
            });
        }
        match field {
            1 => {
                let (b, at) = r.bytes()?;
                hash = Some(parse_cid(b).map_err(|reason| DagPbError::BadCid {
                    link,
                    offset: at,
                    reason,
                })?);
            }
            2 => {
                let (b, at) = r.bytes()?;
                let s = std::str::from_utf8(b)
                    .map_err(|_| DagPbError::InvalidName { link, offset: at })?;
                name = Some(s.to_owned());
            }
            _ => tsize = Some(r.varint()?),
        }
    }
    let hash = hash.ok_or(DagPbError::MissingHash { link })?;
    Ok(PBLink { hash, name, tsize })
}

/// Exactly one canonical CID, nothing after it.
fn parse_cid(bytes: &[u8]) -> Result<Cid, String> {
    crate::block::cid_exact(bytes).map_err(|e| e.detail())
}

#[cfg(test)]
#[path = "dagpb_tests.rs"]
mod tests;
