//! The stored form of a [`RootRecord`] in the record table: a version byte, then the
//! fields in a fixed order, typed (the root as its CID's bytes, NarHash as 32 bytes,
//! the encoding as a byte, counts as varints, text as length-prefixed UTF-8).
//!
//! Why not JSON in the table: a record is read for every narinfo `serve` answers and
//! every name `decode` resolves; the binary form is about a third of the JSON's size
//! (more records per page, fewer pages read) and parses without a tokenizer. Why not a
//! serde binary format: the record's JSON attributes (`skip_serializing_if`, renamed
//! fields) are for `store ls --json` and the old `roots/` files, and a non-self-
//! describing serde format cannot honour them; a dozen fields are simpler written out.
//! A reader refuses a version it does not know, so a future layout is an error, not
//! wrong fields.
//!
//! Version 2 (written now) is version 1's fields followed by [`CHECKSUM`] bytes of the
//! SHA-256 of everything before them. A record whose checksum holds is the one its
//! writer stored, and every writer stores a NarHash it computed or checked against
//! the NAR under its root (ARCHITECTURE.md, "NarHash is checked where a record is
//! written"): such a record is [`RootRecord::sealed`], and decoding it need not hash
//! the NAR again. A checksum that fails is damage, refused like any other. Version 1
//! (older stores) is still read, unsealed: its NarHash is checked as the NAR streams.

use std::str::FromStr;

use narfs_core::{varint, Cid, Encoding};

use crate::roots::{NarInfoMeta, RootRecord};

/// The layout written now: version 1's fields and a checksum.
const VERSION: u8 = 2;
/// The layout of older stores: the same fields, no checksum.
const VERSION_1: u8 = 1;
/// Bytes of SHA-256 a version 2 record ends with: 64 bits make an accidental match of
/// damaged bytes as unlikely as it needs to be, at a few percent of a record's size.
const CHECKSUM: usize = 8;
/// The longest stored record: a narinfo's text and references are a few KiB; a longer
/// one is refused when recorded, and a longer value is damage when read.
pub(crate) const MAX_RECORD: usize = 1 << 20;

const HAS_NAME: u8 = 1;
const HAS_NARINFO: u8 = 2;
/// NarHash is `sha256:<nix base32>`, stored as its 32 bytes (else as text).
const SHA256_HASH: u8 = 4;

const HAS_DERIVER: u8 = 1;
const HAS_CA: u8 = 2;
const HAS_TEXT: u8 = 4;

/// Why a record cannot be stored or read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RecordError {
    /// The record's root is not a CID.
    #[error("root {0:?} is not a CID")]
    Root(String),
    /// An encoding this layout has no code for yet.
    #[error("encoding {0} has no code in the record layout")]
    Encoding(&'static str),
    /// The record is longer than [`MAX_RECORD`] bytes.
    #[error("a record of more than {MAX_RECORD} bytes")]
    TooLong,
    /// The stored bytes are not a record of a version this narfs reads.
    #[error("stored record: {0}")]
    Damaged(&'static str),
}

/// The stored form of `rec`, sealed: version 2, with its checksum.
pub(crate) fn encode(rec: &RootRecord) -> Result<Vec<u8>, RecordError> {
    let mut out = fields(rec, VERSION)?;
    let sum = checksum(&out);
    out.extend_from_slice(&sum);
    if out.len() > MAX_RECORD {
        return Err(RecordError::TooLong);
    }
    Ok(out)
}

/// The stored form of a record whose NarHash no writer of this store checked (one
/// moved from an older layout): version 1, read back unsealed.
pub(crate) fn encode_unsealed(rec: &RootRecord) -> Result<Vec<u8>, RecordError> {
    fields(rec, VERSION_1)
}

/// `rec`'s fields behind the `version` byte.
fn fields(rec: &RootRecord, version: u8) -> Result<Vec<u8>, RecordError> {
    let cid = Cid::from_str(&rec.root).map_err(|_| RecordError::Root(rec.root.clone()))?;
    let sha = narfs_nix::narinfo::parse_sha256(&rec.nar_hash);
    let mut out = Vec::with_capacity(256);
    out.push(version);
    let flags = if rec.name.is_some() { HAS_NAME } else { 0 }
        | if rec.narinfo.is_some() {
            HAS_NARINFO
        } else {
            0
        }
        | if sha.is_some() { SHA256_HASH } else { 0 };
    out.push(flags);
    bytes(&mut out, &cid.to_bytes());
    if let Some(n) = &rec.name {
        bytes(&mut out, n.as_bytes());
    }
    match sha {
        Some(h) => out.extend_from_slice(&h),
        None => bytes(&mut out, rec.nar_hash.as_bytes()),
    }
    for s in [&rec.chunker, &rec.hash, &rec.profile] {
        bytes(&mut out, s.as_bytes());
    }
    out.push(match rec.encoding {
        Encoding::UnixFs => 0,
        Encoding::ZstdNar => 1,
        other => return Err(RecordError::Encoding(other.name())),
    });
    for n in [
        rec.nar_size,
        rec.blocks,
        rec.block_bytes,
        rec.new_blocks,
        rec.new_bytes,
        rec.created,
    ] {
        varint::put(&mut out, n);
    }
    if let Some(m) = &rec.narinfo {
        bytes(&mut out, m.store_path.as_bytes());
        list(&mut out, &m.references);
        list(&mut out, &m.sigs);
        let flags = if m.deriver.is_some() { HAS_DERIVER } else { 0 }
            | if m.ca.is_some() { HAS_CA } else { 0 }
            | if m.text.is_some() { HAS_TEXT } else { 0 };
        out.push(flags);
        for s in [&m.deriver, &m.ca, &m.text].into_iter().flatten() {
            bytes(&mut out, s.as_bytes());
        }
    }
    if out.len() > MAX_RECORD {
        return Err(RecordError::TooLong);
    }
    Ok(out)
}

fn checksum(form: &[u8]) -> [u8; CHECKSUM] {
    let h = narfs_core::block::HashAlg::Sha2_256.digest(form);
    h[..CHECKSUM].try_into().expect("CHECKSUM bytes")
}

/// The record `stored` holds.
pub(crate) fn decode(stored: &[u8]) -> Result<RootRecord, RecordError> {
    let (fields, sealed) = match stored.first() {
        Some(&VERSION) => {
            let Some(split) = stored.len().checked_sub(CHECKSUM) else {
                return Err(RecordError::Damaged("cut short"));
            };
            let (fields, sum) = stored.split_at(split);
            if sum != checksum(fields) {
                return Err(RecordError::Damaged("checksum does not match"));
            }
            (fields, true)
        }
        Some(&VERSION_1) => (stored, false),
        Some(_) => return Err(RecordError::Damaged("unknown record version")),
        None => return Err(RecordError::Damaged("cut short")),
    };
    let mut r = Reader(&fields[1..]);
    let flags = r.byte()?;
    let cid = Cid::try_from(r.bytes()?).map_err(|_| RecordError::Damaged("root is no CID"))?;
    let name = (flags & HAS_NAME != 0).then(|| r.string()).transpose()?;
    let nar_hash = if flags & SHA256_HASH != 0 {
        let h: [u8; 32] = r.take(32)?.try_into().expect("32 bytes");
        narfs_nix::narinfo::nar_hash_string(&h)
    } else {
        r.string()?
    };
    let (chunker, hash, profile) = (r.string()?, r.string()?, r.string()?);
    let encoding = match r.byte()? {
        0 => Encoding::UnixFs,
        1 => Encoding::ZstdNar,
        _ => return Err(RecordError::Damaged("unknown encoding")),
    };
    let mut n = [0u64; 6];
    for v in &mut n {
        *v = r.varint()?;
    }
    let narinfo = if flags & HAS_NARINFO != 0 {
        let store_path = r.string()?;
        let references = r.list()?;
        let sigs = r.list()?;
        let f = r.byte()?;
        let mut opt = |bit: u8| (f & bit != 0).then(|| r.string()).transpose();
        let (deriver, ca, text) = (opt(HAS_DERIVER)?, opt(HAS_CA)?, opt(HAS_TEXT)?);
        Some(NarInfoMeta {
            store_path,
            references,
            deriver,
            sigs,
            ca,
            text,
        })
    } else {
        None
    };
    if !r.0.is_empty() {
        return Err(RecordError::Damaged("bytes after the record"));
    }
    Ok(RootRecord {
        root: cid.to_string(),
        name,
        nar_hash,
        nar_size: n[0],
        chunker,
        hash,
        profile,
        encoding,
        blocks: n[1],
        block_bytes: n[2],
        new_blocks: n[3],
        new_bytes: n[4],
        created: n[5],
        narinfo,
        sealed,
    })
}

fn bytes(out: &mut Vec<u8>, b: &[u8]) {
    varint::put(out, b.len() as u64);
    out.extend_from_slice(b);
}

fn list(out: &mut Vec<u8>, items: &[String]) {
    varint::put(out, items.len() as u64);
    for s in items {
        bytes(out, s.as_bytes());
    }
}

/// The unread rest of a stored record; every length checked against it.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], RecordError> {
        if n > self.0.len() {
            return Err(RecordError::Damaged("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, RecordError> {
        Ok(self.take(1)?[0])
    }

    fn varint(&mut self) -> Result<u64, RecordError> {
        match varint::decode(self.0, varint::MAX_PROTOBUF_BYTES) {
            Ok(Some((v, n))) => {
                self.0 = &self.0[n..];
                Ok(v)
            }
            _ => Err(RecordError::Damaged("bad varint")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8], RecordError> {
        let n = self.varint()?;
        self.take(usize::try_from(n).unwrap_or(usize::MAX))
    }

    fn string(&mut self) -> Result<String, RecordError> {
        let b = self.bytes()?;
        String::from_utf8(b.to_vec()).map_err(|_| RecordError::Damaged("text is not UTF-8"))
    }

    fn list(&mut self) -> Result<Vec<String>, RecordError> {
        let n = self.varint()?;
        // Each item takes at least its length byte: a count beyond the rest is damage,
        // not an allocation.
        if n > self.0.len() as u64 {
            return Err(RecordError::Damaged("a list longer than the record"));
        }
        (0..n).map(|_| self.string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use narfs_core::block::{cid_for, HashAlg, RAW};
    use proptest::prelude::*;

    fn text() -> impl Strategy<Value = String> {
        "[a-z0-9/:.-]{0,40}"
    }

    proptest! {
        #[test]
        fn roundtrip(
            name in proptest::option::of(text()),
            size in any::<u64>(),
            zstd in any::<bool>(),
            meta in proptest::option::of((text(), proptest::collection::vec(text(), 0..4),
                proptest::option::of(text()), proptest::option::of(text()))),
            raw_hash in any::<bool>(),
        ) {
            let cid = cid_for(RAW, HashAlg::Sha2_256, name.as_deref().unwrap_or("").as_bytes());
            let enc = if zstd { Encoding::ZstdNar } else { Encoding::UnixFs };
            let mut rec = RootRecord::new(&cid, enc, &[7; 32], size)
                .with_name(name)
                .with_layout("fastcdc-16k", "sha2-256", "kubo-v1")
                .with_blocks(size / 3, size / 2);
            if raw_hash {
                rec.nar_hash = "md5:whatever".into();
            }
            if let Some((sp, refs, deriver, text)) = meta {
                rec = rec.with_narinfo(NarInfoMeta {
                    store_path: sp, references: refs.clone(), deriver, sigs: refs, ca: None, text,
                });
            }
            let stored = encode(&rec).unwrap();
            let sealed = RootRecord { sealed: true, ..rec.clone() };
            prop_assert_eq!(decode(&stored).unwrap(), sealed);
            // Every cut is an error, never a panic or another record.
            for n in 0..stored.len() {
                prop_assert!(decode(&stored[..n]).is_err());
            }
            // The same fields in version 1 (an older store's): read, unsealed.
            let v1 = encode_unsealed(&rec).unwrap();
            prop_assert_eq!(&v1[1..], &stored[1..stored.len() - CHECKSUM]);
            prop_assert_eq!(decode(&v1).unwrap(), rec);
        }

        /// Any one byte of a stored record changed (a field, its version, the
        /// checksum) is refused, never read as another record.
        #[test]
        fn damage_is_refused(at in any::<prop::sample::Index>(), flip in 1u8..=255) {
            let cid = cid_for(RAW, HashAlg::Sha2_256, b"x");
            let rec = RootRecord::new(&cid, Encoding::UnixFs, &[7; 32], 12345)
                .with_name(Some("a".into()));
            let mut stored = encode(&rec).unwrap();
            let i = at.index(stored.len());
            stored[i] ^= flip;
            prop_assert!(decode(&stored).is_err(), "byte {} ^ {:#x} was read", i, flip);
        }
    }

    #[test]
    fn refuses_other_versions_and_lies() {
        let cid = cid_for(RAW, HashAlg::Sha2_256, b"x");
        let mut stored = encode(&RootRecord::new(&cid, Encoding::UnixFs, &[0; 32], 1)).unwrap();
        stored[0] = 3;
        assert_eq!(
            decode(&stored),
            Err(RecordError::Damaged("unknown record version"))
        );
        let bad = RootRecord {
            root: "not a cid".into(),
            ..RootRecord::new(&cid, Encoding::UnixFs, &[0; 32], 1)
        };
        assert!(matches!(encode(&bad), Err(RecordError::Root(_))));
    }
}
