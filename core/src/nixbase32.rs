//! Nix's own base32 (the alphabet without e, o, t, u, and its peculiar bit order),
//! for printing `NarHash` as Nix does: `sha256:` + 52 characters.

const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Encodes `bytes` as Nix base32.
pub fn encode(bytes: &[u8]) -> String {
    if bytes.is_empty() {
        return String::new();
    }
    let len = (bytes.len() * 8 - 1) / 5 + 1;
    let mut out = String::with_capacity(len);
    for n in (0..len).rev() {
        let b = n * 5;
        let (i, j) = (b / 8, b % 8);
        let low = bytes[i] >> j;
        let high = if i + 1 < bytes.len() {
            (bytes[i + 1] as u16) << (8 - j)
        } else {
            0
        };
        let c = (low as u16 | high) & 0x1f;
        out.push(ALPHABET[c as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    #[test]
    fn matches_nix() {
        // `nix-hash --type sha256 --to-base32 $(echo -n "" | sha256sum)`
        let empty = Sha256::digest(b"");
        assert_eq!(
            encode(&empty),
            "0mdqa9w1p6cmli6976v4wi0sw9r4p5prkj7lzfd1877wk11c9c73"
        );
        // `nix-hash --type sha256 --flat --base32` of a file holding "hello\n"
        let hello = Sha256::digest(b"hello\n");
        assert_eq!(
            encode(&hello),
            "00xyyr3fi8l6hb839bv3f7yb86yjv7xi1cgh1xnhipym4asvb4aq"
        );
    }
}
