//! The CAR header both ways ([`encode_header`] writes it), and low-level CAR parsing shared by the streaming reader and the file index: bounded
//! varints, the strict dag-cbor header (`{"roots": [CID...], "version": 1}`, or the
//! CARv2 pragma `{"version": 2}`), the CARv2 fixed header, and CIDs at section starts.
//! Nothing here allocates more than the caller already bounded.

use cid::Cid;

/// The longest CID accepted (CIDv1 with 9-byte codec and hash code varints and a 64-byte
/// digest is 84 bytes).
pub(crate) const MAX_CID_LEN: usize = 128;
/// Size of the CARv2 fixed header that follows the pragma.
pub(crate) const V2_HEADER_LEN: usize = 40;
/// Length of the CARv2 pragma, its varint included.
pub(crate) const V2_PRAGMA_LEN: u64 = 11;

/// What a CAR header says.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Header {
    V1 {
        roots: Vec<Cid>,
    },
    /// The CARv2 pragma; the fixed v2 header follows.
    V2Pragma,
    /// A well-formed header of a version this reader does not know.
    Unsupported {
        version: u64,
    },
}

/// A tiny strict reader for the dag-cbor subset a CAR header uses.
struct Cbor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cbor<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let rest = self.buf.len() - self.pos;
        if n > rest as u64 {
            return Err(format!(
                "item of {n} bytes but only {rest} left in the header"
            ));
        }
        let s = &self.buf[self.pos..self.pos + n as usize];
        self.pos += n as usize;
        Ok(s)
    }

    /// Reads a head: (major type, argument). Rejects indefinite lengths, simple values,
    /// floats and non-minimal arguments, as dag-cbor does.
    fn head(&mut self) -> Result<(u8, u64), String> {
        let at = self.pos;
        let b = self.take(1)?[0];
        let (major, info) = (b >> 5, b & 0x1f);
        let arg = match info {
            0..=23 => u64::from(info),
            24..=27 => {
                let bytes = self.take(1 << (info - 24))?;
                let arg = bytes.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x));
                let min = match info {
                    24 => 24,
                    25 => 0x100,
                    26 => 0x1_0000,
                    _ => 0x1_0000_0000,
                };
                if arg < min {
                    return Err(format!("non-minimal CBOR integer at header byte {at}"));
                }
                arg
            }
            _ => {
                return Err(format!(
                    "unsupported CBOR item 0x{b:02x} at header byte {at}"
                ))
            }
        };
        if major == 7 {
            return Err(format!(
                "unexpected CBOR simple value/float at header byte {at}"
            ));
        }
        Ok((major, arg))
    }

    fn expect(&mut self, want: u8, what: &str) -> Result<u64, String> {
        let at = self.pos;
        let (major, arg) = self.head()?;
        if major != want {
            return Err(format!(
                "expected {what} at header byte {at}, found CBOR major type {major}"
            ));
        }
        Ok(arg)
    }

    fn cid(&mut self) -> Result<Cid, String> {
        let at = self.pos;
        let tag = self.expect(6, "a tag-42 CID")?;
        if tag != 42 {
            return Err(format!(
                "expected tag 42 at header byte {at}, found tag {tag}"
            ));
        }
        let len = self.expect(2, "CID bytes")?;
        let bytes = self.take(len)?;
        match bytes.split_first() {
            Some((0, cid)) => match parse_cid_prefix(cid)
                .map_err(|e| format!("bad CID at header byte {at}: {e}"))?
            {
                (c, used) if used == cid.len() => Ok(c),
                _ => Err(format!("trailing bytes after the CID at header byte {at}")),
            },
            _ => Err(format!(
                "CID at header byte {at} lacks the 0x00 multibase prefix"
            )),
        }
    }
}

/// Parses the dag-cbor header body (without its length varint).
pub(crate) fn parse_header(buf: &[u8]) -> Result<Header, String> {
    let mut c = Cbor { buf, pos: 0 };
    let entries = c.expect(5, "a map")?;
    let (mut version, mut roots) = (None, None);
    for _ in 0..entries {
        let len = c.expect(3, "a text key")?;
        match c.take(len)? {
            b"version" if version.is_none() => {
                version = Some(c.expect(0, "an unsigned version")?);
            }
            b"roots" if roots.is_none() => {
                let n = c.expect(4, "an array of roots")?;
                // Every CID takes well over one byte, so `n` is bounded by the input.
                if n > (buf.len() - c.pos) as u64 {
                    return Err(format!("{n} roots cannot fit in the header"));
                }
                let mut v = Vec::with_capacity(n as usize);
                for _ in 0..n {
                    v.push(c.cid()?);
                }
                roots = Some(v);
            }
            key => {
                return Err(format!(
                    "unexpected or repeated key {:?}",
                    String::from_utf8_lossy(key)
                ))
            }
        }
    }
    if c.pos != buf.len() {
        return Err(format!(
            "{} trailing bytes after the header map",
            buf.len() - c.pos
        ));
    }
    match (version, roots) {
        (Some(1), Some(roots)) => Ok(Header::V1 { roots }),
        (Some(1), None) => Err("version 1 header without roots".into()),
        (Some(2), None) => Ok(Header::V2Pragma),
        (Some(2), Some(_)) => Err("version 2 pragma with roots".into()),
        (Some(version), _) => Ok(Header::Unsupported { version }),
        (None, _) => Err("header without a version".into()),
    }
}

/// The fixed CARv2 header: where the CARv1 payload is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct V2Header {
    pub data_offset: u64,
    pub data_size: u64,
}

pub(crate) fn parse_v2_header(b: &[u8; V2_HEADER_LEN]) -> Result<V2Header, String> {
    let u64_at = |i: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&b[i..i + 8]);
        u64::from_le_bytes(a)
    };
    let (data_offset, data_size) = (u64_at(16), u64_at(24));
    if data_offset < V2_PRAGMA_LEN + V2_HEADER_LEN as u64 {
        return Err(format!(
            "data offset {data_offset} points inside the v2 header"
        ));
    }
    if data_offset.checked_add(data_size).is_none() {
        return Err(format!(
            "data offset {data_offset} + size {data_size} overflows"
        ));
    }
    Ok(V2Header {
        data_offset,
        data_size,
    })
}

/// Parses the CID at the front of `buf` (see [`crate::block::cid_prefix`]).
pub(crate) fn parse_cid_prefix(buf: &[u8]) -> Result<(Cid, usize), String> {
    crate::block::cid_prefix(buf).map_err(|e| e.detail())
}

/// Appends the minimal CBOR head for `major` type with argument `n`.
fn cbor_head(out: &mut Vec<u8>, major: u8, n: u64) {
    let m = major << 5;
    match n {
        0..=23 => out.push(m | n as u8),
        24..=0xff => out.extend_from_slice(&[m | 24, n as u8]),
        0x100..=0xffff => {
            out.push(m | 25);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(m | 26);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
        _ => {
            out.push(m | 27);
            out.extend_from_slice(&n.to_be_bytes());
        }
    }
}

/// The complete CARv1 header for `roots`: length varint followed by the dag-cbor map.
pub fn encode_header(roots: &[Cid]) -> Vec<u8> {
    let mut body = Vec::with_capacity(24 + roots.len() * 40);
    cbor_head(&mut body, 5, 2); // map(2)
    cbor_head(&mut body, 3, 5); // text(5)
    body.extend_from_slice(b"roots");
    cbor_head(&mut body, 4, roots.len() as u64); // array(n)
    for root in roots {
        let bytes = root.to_bytes();
        cbor_head(&mut body, 6, 42); // tag(42)
        cbor_head(&mut body, 2, bytes.len() as u64 + 1); // bytes(len + 1)
        body.push(0x00); // multibase identity prefix
        body.extend_from_slice(&bytes);
    }
    cbor_head(&mut body, 3, 7); // text(7)
    body.extend_from_slice(b"version");
    cbor_head(&mut body, 0, 1); // unsigned(1)
    let mut out = Vec::with_capacity(body.len() + 3);
    crate::varint::put(&mut out, body.len() as u64);
    out.extend_from_slice(&body);
    out
}
