//! The NAR's lexical layer: a string is a little-endian u64 length, the bytes, and
//! zero padding up to a multiple of 8.

/// Number of padding bytes that follow a string of `len` bytes.
pub(crate) fn padding(len: u64) -> usize {
    ((8 - (len % 8)) % 8) as usize
}

pub(crate) const MAGIC: &[u8] = b"nix-archive-1";

/// Appends one NAR string to `out`.
pub(crate) fn put(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
    out.extend_from_slice(&[0u8; 8][..padding(s.len() as u64)]);
}
