//! The delta transfer's wire format, a narfs extension beside the trustless gateway,
//! shared by the client ([`crate::delta_fetch`]) and `narfs serve`. Why: an update
//! rebuilds most of its large files, so their blocks are new to the client although
//! they differ from the previous version's in a small part of their bytes; zstd with
//! that earlier file as a reference prefix (what `zstd --patch-from` does) sends only
//! the difference. The client rebuilds the reference itself from blocks it holds and
//! verified, and verifies every block it decompresses against its CID: a delta costs
//! no trust.
//!
//! - `GET /narfs/v1/names/<cid>` ([`NAMES_PATH`]) answers `200` with
//!   [`NAMES_TYPE`]: one name per line, those the server's records give the root
//!   (maybe none). A client asks it once per fetch: anything else than that answer (a
//!   Kubo's 404, say) means the server does not speak delta, and the fetch uses the
//!   trustless gateway alone. The name serves to find the base by default
//!   ([`crate::delta_base`]).
//! - `POST /narfs/v1/delta` ([`DELTA_PATH`]), body [`REQUEST_TYPE`]: one item per line,
//!   `CID` or `CID BASE` (at most [`MAX_ITEMS`] lines, [`MAX_REQUEST`] bytes): the DAG
//!   under each CID is wanted, and for a file, BASE is a file the client holds. The
//!   answer, [`RESPONSE_TYPE`], is a sequence of parts ([`PartHead`]), items in
//!   request order, each at most once (a server lacking an item leaves it out):
//!   `'D' item ref_len` then one zstd frame whose reference prefix is the first
//!   `ref_len` bytes (≤ [`MAX_REF`]) of the item's BASE file; `'P' first count` then
//!   one zstd frame for a run of items sent without a reference (compressed
//!   together); `'E'` at the end, after which nothing may follow. Varints are
//!   `narfs_core::varint`'s. A frame's window is at most 2^[`WINDOW_LOG_MAX`].
//! - A frame decompresses to its items' blocks, each as `varint(len) bytes`, in the
//!   order [`Sequence`] gives: depth-first from the item, links in node order, every
//!   block once per response. CIDs are not sent: both sides know which block comes
//!   next (the client from the nodes it has received), so a block that is not the
//!   one expected fails its verification. A frame may stop early, at a block
//!   boundary (the server lacks the rest): the client fetches what did not come by
//!   the trustless gateway.

use std::collections::HashSet;
use std::io::{self, Read, Write};

use narfs_core::block::{BlockSource, DAG_PB, MAX_BLOCK_SIZE};
use narfs_core::dagpb::PBNode;
use narfs_core::unixfs::UnixFsData;
use narfs_core::varint;
use narfs_core::Cid;
use narfs_decoder::DecodeError;

/// The probe and the names of a root: `GET NAMES_PATH<cid>`.
pub const NAMES_PATH: &str = "/narfs/v1/names/";
/// The batched delta request: `POST DELTA_PATH`.
pub const DELTA_PATH: &str = "/narfs/v1/delta";
/// The probe's answer type.
pub const NAMES_TYPE: &str = "text/vnd.narfs.names.v1";
/// The request body's type.
pub const REQUEST_TYPE: &str = "text/vnd.narfs.delta-request.v1";
/// The answer's type.
pub const RESPONSE_TYPE: &str = "application/vnd.narfs.delta.v1";
/// Items in one request: the client sends several requests for more (a few for the
/// largest updates); the server refuses more with a 413.
pub const MAX_ITEMS: usize = 4096;
/// Bytes of a request body (4096 lines of two CIDs take about half of it).
pub const MAX_REQUEST: usize = 1 << 20;
/// The most bytes of a base file used as reference: a larger file is a reference by
/// its first `MAX_REF` bytes. Both sides hold the reference in memory while its part
/// streams, beside the zstd window.
pub const MAX_REF: u64 = 64 << 20;
/// The largest zstd window (2^27 = 128 MiB): a reference and the file after it fit,
/// for files up to 64 MiB; the decoder refuses larger windows.
pub const WINDOW_LOG_MAX: u32 = 27;
/// The zstd level of delta parts and plain runs. Measured against level 2 (the
/// gateway's `Content-Encoding`) on the large corpus: see the README's transfer table.
pub const LEVEL: i32 = 3;
/// The most names a probe answer lists.
pub const MAX_NAMES: usize = 16;
/// The most bytes of a probe answer the client reads.
pub const MAX_NAMES_BYTES: usize = 16 << 10;

/// Why a request or answer does not parse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A request line is not `CID` or `CID BASE`.
    #[error("request line {line}: not `CID` or `CID BASE`")]
    BadLine { line: usize },
    /// More items than [`MAX_ITEMS`], or a body over [`MAX_REQUEST`].
    #[error("more than {MAX_ITEMS} items or {MAX_REQUEST} bytes in one delta request")]
    TooMany,
    /// A part's head is not one of `D`, `P`, `E`, or its numbers are out of range.
    #[error("a part head is malformed")]
    BadHead,
    /// A part names items out of order, out of range, or a base the client did not
    /// send, or a reference longer than the base or [`MAX_REF`].
    #[error("a part names {what}")]
    Lying { what: String },
    /// A block of the answer is not the one that comes next.
    #[error("a part holds a block that is not {cid}")]
    WrongBlock {
        cid: Box<Cid>,
        #[source]
        source: narfs_core::block::BlockError,
    },
    /// A block's length is over [`MAX_BLOCK_SIZE`].
    #[error("a block of {0} bytes is over the block limit")]
    TooLarge(u64),
    /// Bytes follow the end, or a frame goes on past its items' blocks.
    #[error("bytes follow the end of {0}")]
    Trailing(&'static str),
    /// The answer ends inside a part or before `E`.
    #[error("the answer was cut")]
    Truncated,
    /// Reading or decompressing failed.
    #[error("reading the answer failed")]
    Io(#[source] io::Error),
    /// The reference cannot be read from the local store.
    #[error("the reference {0} cannot be read")]
    Reference(Box<Cid>, #[source] Box<DecodeError>),
}

/// One wanted DAG: its root, and the file the client holds to compress it against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Item {
    pub cid: Cid,
    pub base: Option<Cid>,
}

/// The request body for `items` (at most [`MAX_ITEMS`]).
pub fn request_body(items: &[Item]) -> Vec<u8> {
    let mut out = Vec::with_capacity(items.len() * 128);
    for i in items {
        match &i.base {
            Some(b) => writeln!(out, "{} {b}", i.cid),
            None => writeln!(out, "{}", i.cid),
        }
        .expect("writes to a Vec");
    }
    out
}

/// Parses a request body (bounded by the caller to [`MAX_REQUEST`]).
pub fn parse_request(body: &[u8]) -> Result<Vec<Item>, WireError> {
    if body.len() > MAX_REQUEST {
        return Err(WireError::TooMany);
    }
    let text = std::str::from_utf8(body).map_err(|_| WireError::BadLine { line: 1 })?;
    let mut items = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.is_empty() {
            continue;
        }
        if items.len() == MAX_ITEMS {
            return Err(WireError::TooMany);
        }
        let bad = || WireError::BadLine { line: n + 1 };
        let mut words = line.split(' ');
        let cid = words.next().and_then(|w| w.parse().ok()).ok_or_else(bad)?;
        let base = match words.next() {
            None => None,
            Some(w) => Some(w.parse().map_err(|_| bad())?),
        };
        if words.next().is_some() {
            return Err(bad());
        }
        items.push(Item { cid, base });
    }
    Ok(items)
}

/// A part's head.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartHead {
    /// Item `item`, compressed against the first `ref_len` bytes of its base.
    Delta { item: usize, ref_len: u64 },
    /// Items `first..first + count`, compressed together without a reference.
    Plain { first: usize, count: usize },
    /// The answer's end.
    End,
}

impl PartHead {
    pub fn write(&self, w: &mut dyn Write) -> io::Result<()> {
        let mut out = Vec::with_capacity(24);
        match *self {
            PartHead::Delta { item, ref_len } => {
                out.push(b'D');
                varint::put(&mut out, item as u64);
                varint::put(&mut out, ref_len);
            }
            PartHead::Plain { first, count } => {
                out.push(b'P');
                varint::put(&mut out, first as u64);
                varint::put(&mut out, count as u64);
            }
            PartHead::End => out.push(b'E'),
        }
        w.write_all(&out)
    }

    /// Reads a head; the numbers are checked by the caller.
    pub fn read(r: &mut dyn Read) -> Result<PartHead, WireError> {
        let mut kind = [0u8];
        read_exact(r, &mut kind)?;
        let mut num = || -> Result<u64, WireError> { read_varint(r)?.ok_or(WireError::Truncated) };
        let small = |v: u64| usize::try_from(v).map_err(|_| WireError::BadHead);
        Ok(match kind[0] {
            b'D' => PartHead::Delta {
                item: small(num()?)?,
                ref_len: num()?,
            },
            b'P' => PartHead::Plain {
                first: small(num()?)?,
                count: small(num()?)?,
            },
            b'E' => PartHead::End,
            _ => return Err(WireError::BadHead),
        })
    }
}

fn read_exact(r: &mut dyn Read, buf: &mut [u8]) -> Result<(), WireError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => WireError::Truncated,
        _ => WireError::Io(e),
    })
}

/// A varint, or `None` at a clean end of input before its first byte.
fn read_varint(r: &mut dyn Read) -> Result<Option<u64>, WireError> {
    varint::read(r, varint::MAX_MULTIFORMATS_BYTES).map_err(|e| match e {
        varint::ReadError::Io(e) => WireError::Io(e),
        varint::ReadError::Truncated => WireError::Truncated,
        _ => WireError::BadHead,
    })
}

/// Writes one block of a frame.
pub fn write_block(w: &mut dyn Write, data: &[u8]) -> io::Result<()> {
    let mut head = Vec::with_capacity(4);
    varint::put(&mut head, data.len() as u64);
    w.write_all(&head)?;
    w.write_all(data)
}

/// Reads one block of a frame: `None` where the frame ends (at a block boundary).
/// Its length is checked against [`MAX_BLOCK_SIZE`] before anything is allocated.
pub fn read_block(r: &mut dyn Read) -> Result<Option<Vec<u8>>, WireError> {
    let Some(len) = read_varint(r)? else {
        return Ok(None);
    };
    if len > MAX_BLOCK_SIZE as u64 {
        return Err(WireError::TooLarge(len));
    }
    let mut data = vec![0u8; len as usize];
    read_exact(r, &mut data)?;
    Ok(Some(data))
}

/// The order of a part's blocks, the same on both sides: depth-first from each item,
/// links in node order, a block already sent in this answer left out. Its memory is
/// the links still to visit (bounded by the DAG's depth times a node's links).
#[derive(Debug, Default)]
pub struct Sequence {
    stack: Vec<Cid>,
}

impl Sequence {
    /// Starts an item's DAG.
    pub fn start(&mut self, item: Cid) {
        self.stack.push(item);
    }

    /// The next block to send (or expect), none once the items are done.
    pub fn next(&mut self, sent: &HashSet<Cid>) -> Option<Cid> {
        while let Some(cid) = self.stack.pop() {
            if !sent.contains(&cid) {
                return Some(cid);
            }
        }
        None
    }

    /// Block `cid` (verified) was sent: its links come next. A dag-pb node that does
    /// not parse has none (both sides parse with the same code).
    pub fn sent(&mut self, cid: &Cid, data: &[u8]) {
        if cid.codec() != DAG_PB {
            return;
        }
        if let Ok(node) = PBNode::decode(data) {
            self.stack.extend(node.links.iter().rev().map(|l| l.hash));
        }
    }

    /// The blocks still to come, none of them sent yet (for the client: what to
    /// fetch another way when a frame stopped early).
    pub fn rest(self, sent: &HashSet<Cid>) -> Vec<Cid> {
        let mut seen = HashSet::new();
        self.stack
            .into_iter()
            .filter(|c| !sent.contains(c) && seen.insert(*c))
            .collect()
    }
}

/// The first `len` bytes of the file `base` from `source` (each block verified as
/// read); an error if it has fewer. Read depth-first, one block at a time, on the
/// caller's thread: not through the decoder's `FileReader`, whose parallel reads use
/// rayon's pool, which a fetch's decoder may hold while it waits for the very blocks
/// this reference is for.
pub fn read_reference(
    source: &impl BlockSource,
    base: &Cid,
    len: u64,
) -> Result<Vec<u8>, WireError> {
    let bad = |e: DecodeError| WireError::Reference(Box::new(*base), Box::new(e));
    let mut out: Vec<u8> = Vec::with_capacity(len.min(MAX_REF) as usize);
    let mut stack = vec![*base];
    while let Some(cid) = stack.pop() {
        let left = (len - out.len() as u64) as usize;
        if left == 0 {
            break;
        }
        let data = narfs_decoder::fetch(source, &cid, "").map_err(bad)?;
        if cid.codec() != DAG_PB {
            out.extend_from_slice(&data[..data.len().min(left)]);
            continue;
        }
        let fs = PBNode::decode(&data).ok().and_then(|node| {
            let fs = UnixFsData::decode(node.data.as_deref()?).ok()?;
            Some((node, fs))
        });
        let Some((node, fs)) = fs else {
            return Err(lying(format!("a base {cid} that is not a UnixFS file")));
        };
        let inline = fs.data.as_deref().unwrap_or_default();
        out.extend_from_slice(&inline[..inline.len().min(left)]);
        stack.extend(node.links.iter().rev().map(|l| l.hash));
    }
    if (out.len() as u64) < len {
        return Err(lying(format!(
            "a reference of {len} bytes, more than its base {base} holds"
        )));
    }
    Ok(out)
}

fn lying(what: String) -> WireError {
    WireError::Lying { what }
}

/// The size of the file `cid` as its root block says (a raw leaf: its length).
pub fn file_size(cid: &Cid, block: &[u8]) -> Option<u64> {
    if cid.codec() != DAG_PB {
        return Some(block.len() as u64);
    }
    let node = PBNode::decode(block).ok()?;
    let fs = UnixFsData::decode(node.data.as_deref()?).ok()?;
    matches!(
        fs.data_type,
        narfs_core::unixfs::DataType::File | narfs_core::unixfs::DataType::Raw
    )
    .then_some(fs.filesize.unwrap_or(0))
}

/// The window log for a reference of `ref_len` bytes followed by `size` bytes: the
/// smallest that reaches back over both, at most [`WINDOW_LOG_MAX`].
pub fn window_log(ref_len: u64, size: u64) -> u32 {
    let span = (ref_len + size).max(1 << 10);
    (64 - (span - 1).leading_zeros()).clamp(10, WINDOW_LOG_MAX)
}

/// The probe's answer body.
pub fn names_body(names: &[String]) -> String {
    let mut out = String::new();
    for n in names.iter().take(MAX_NAMES) {
        if !n.contains('\n') {
            out.push_str(n);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cid(n: u8) -> Cid {
        narfs_core::block::cid_for(
            narfs_core::block::RAW,
            narfs_core::block::HashAlg::Sha2_256,
            &[n],
        )
    }

    #[test]
    fn requests_round_trip_and_bad_ones_are_refused() {
        let items = vec![
            Item {
                cid: cid(1),
                base: Some(cid(2)),
            },
            Item {
                cid: cid(3),
                base: None,
            },
        ];
        assert_eq!(parse_request(&request_body(&items)).unwrap(), items);
        assert!(matches!(
            parse_request(b"x\n"),
            Err(WireError::BadLine { line: 1 })
        ));
        let three = format!("{} {} {}\n", cid(1), cid(2), cid(3));
        assert!(parse_request(three.as_bytes()).is_err());
        let many = request_body(&vec![
            Item {
                cid: cid(1),
                base: None
            };
            MAX_ITEMS + 1
        ]);
        assert!(matches!(parse_request(&many), Err(WireError::TooMany)));
    }

    #[test]
    fn heads_and_blocks_round_trip() {
        let mut out = Vec::new();
        let heads = [
            PartHead::Delta {
                item: 3,
                ref_len: 1 << 30,
            },
            PartHead::Plain {
                first: 0,
                count: 300,
            },
            PartHead::End,
        ];
        for h in &heads {
            h.write(&mut out).unwrap();
        }
        write_block(&mut out, b"hello").unwrap();
        let mut r = &out[..];
        for h in &heads {
            assert_eq!(&PartHead::read(&mut r).unwrap(), h);
        }
        assert_eq!(read_block(&mut r).unwrap().unwrap(), b"hello");
        assert!(read_block(&mut r).unwrap().is_none());
        assert!(matches!(
            PartHead::read(&mut &b"X"[..]),
            Err(WireError::BadHead)
        ));
        assert!(matches!(
            PartHead::read(&mut &b"D\x80"[..]),
            Err(WireError::Truncated)
        ));
        // A length over the block limit is refused before any allocation.
        let mut big = Vec::new();
        varint::put(&mut big, 1 << 40);
        assert!(matches!(
            read_block(&mut &big[..]),
            Err(WireError::TooLarge(_))
        ));
        assert!(matches!(
            read_block(&mut &[5, 1, 2][..]),
            Err(WireError::Truncated)
        ));
    }

    #[test]
    fn window_logs_reach_over_reference_and_file() {
        assert_eq!(window_log(0, 0), 10);
        assert_eq!(window_log(1 << 20, 1 << 20), 21);
        assert_eq!(window_log(MAX_REF, MAX_REF), WINDOW_LOG_MAX);
        assert_eq!(window_log(u64::MAX / 4, 0), WINDOW_LOG_MAX);
    }
}
