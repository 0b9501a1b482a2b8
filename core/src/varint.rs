//! The one unsigned LEB128 varint of narfs: protobuf fields (dag-pb, UnixFS), CAR
//! section lengths and CIDs all use the same encoding, so they share one implementation.
//!
//! Decoding is strict: a varint must be minimally encoded (no trailing `0x80 … 0x00`),
//! so that every accepted byte string re-encodes to itself, and it must fit in the
//! caller's byte limit (10 bytes for protobuf's 64-bit varints, 9 for multiformats'
//! unsigned-varint, which CARs use).

/// Longest protobuf varint (64 bits).
pub const MAX_PROTOBUF_BYTES: usize = 10;
/// Longest multiformats unsigned-varint (63 bits), as CARs and CIDs use.
pub const MAX_MULTIFORMATS_BYTES: usize = 9;

/// Why a varint was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VarintError {
    /// More continuation bytes than the limit allows, or more than 64 bits.
    #[error("varint too long")]
    TooLong,
    /// A last byte of zero after the first: the same value has a shorter encoding.
    #[error("varint not minimally encoded")]
    NonMinimal,
}

/// Bytes the varint of `v` takes.
pub fn len(v: u64) -> usize {
    // ceil(bits / 7), at least 1.
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

/// Appends the varint of `v`.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Decodes one varint from the front of `buf`, of at most `max_bytes` bytes: the value
/// and the bytes it took, or `Ok(None)` if `buf` ends inside it (more input may follow).
pub fn decode(buf: &[u8], max_bytes: usize) -> Result<Option<(u64, usize)>, VarintError> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().enumerate() {
        if i == max_bytes || (i == 9 && b > 1) {
            return Err(VarintError::TooLong);
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            if b == 0 && i > 0 {
                return Err(VarintError::NonMinimal);
            }
            return Ok(Some((v, i + 1)));
        }
    }
    if buf.len() >= max_bytes {
        return Err(VarintError::TooLong);
    }
    Ok(None)
}

/// Why [`read`] found no varint.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The input failed.
    #[error("reading a varint failed")]
    Io(#[source] std::io::Error),
    /// The input ended inside the varint.
    #[error("the input ends inside a varint")]
    Truncated,
    /// The bytes are not a valid varint.
    #[error(transparent)]
    Invalid(VarintError),
}

/// Reads one varint of at most `max_bytes` bytes from `r`, byte by byte (so nothing
/// past it is consumed; `r` should be buffered), or `Ok(None)` at a clean end of input
/// before its first byte. The one stream reader of varints: CAR sections and the
/// delta transfer's blocks.
pub fn read<R: std::io::Read + ?Sized>(
    r: &mut R,
    max_bytes: usize,
) -> Result<Option<u64>, ReadError> {
    let mut bytes = [0u8; MAX_PROTOBUF_BYTES];
    let max_bytes = max_bytes.min(MAX_PROTOBUF_BYTES);
    for i in 0..max_bytes {
        let mut b = [0u8; 1];
        let n = loop {
            match r.read(&mut b) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.map_err(ReadError::Io)?,
            }
        };
        if n == 0 {
            return if i == 0 {
                Ok(None)
            } else {
                Err(ReadError::Truncated)
            };
        }
        bytes[i] = b[0];
        match decode(&bytes[..=i], max_bytes) {
            Ok(Some((v, _))) => return Ok(Some(v)),
            Ok(None) => {}
            Err(e) => return Err(ReadError::Invalid(e)),
        }
    }
    // `decode` refuses the byte past `max_bytes`, so this is reached only for 0.
    Err(ReadError::Invalid(VarintError::TooLong))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn edges() {
        assert_eq!(decode(&[0], 9), Ok(Some((0, 1))));
        assert_eq!(decode(&[0x80, 0x01], 9), Ok(Some((128, 2))));
        assert_eq!(decode(&[0x80, 0x00], 9), Err(VarintError::NonMinimal));
        assert_eq!(decode(&[0x80], 9), Ok(None));
        assert_eq!(decode(&[0xff; 9], 9), Err(VarintError::TooLong));
        let mut max = vec![0xff; 9];
        max.push(0x01);
        assert_eq!(decode(&max, 10), Ok(Some((u64::MAX, 10))));
        max[9] = 0x02;
        assert_eq!(decode(&max, 10), Err(VarintError::TooLong));
        assert_eq!(len(0), 1);
        assert_eq!(len(127), 1);
        assert_eq!(len(128), 2);
        assert_eq!(len(u64::MAX), 10);
    }

    #[test]
    fn read_from_a_stream() {
        let mut r: &[u8] = &[0x80, 0x01, 0x05];
        assert_eq!(read(&mut r, 9).unwrap(), Some(128));
        assert_eq!(read(&mut r, 9).unwrap(), Some(5));
        assert!(read(&mut r, 9).unwrap().is_none(), "a clean end");
        let mut cut: &[u8] = &[0x80];
        assert!(matches!(read(&mut cut, 9), Err(ReadError::Truncated)));
        let mut long: &[u8] = &[0xff; 12];
        assert!(matches!(
            read(&mut long, 9),
            Err(ReadError::Invalid(VarintError::TooLong))
        ));
        assert_eq!(long.len(), 3, "no byte past the limit is consumed");
        let mut padded: &[u8] = &[0x80, 0x00];
        assert!(matches!(
            read(&mut padded, 9),
            Err(ReadError::Invalid(VarintError::NonMinimal))
        ));
    }

    proptest! {
        #[test]
        fn roundtrip(v: u64) {
            let mut out = Vec::new();
            put(&mut out, v);
            prop_assert_eq!(out.len(), len(v));
            prop_assert_eq!(decode(&out, MAX_PROTOBUF_BYTES), Ok(Some((v, out.len()))));
        }
    }
}
