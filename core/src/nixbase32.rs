//! Nix's own base32 (the alphabet without e, o, t, u, and its peculiar bit order),
//! for printing `NarHash` as Nix does (`sha256:` + 52 characters) and reading it back.

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

/// Decodes Nix base32 into `N` bytes: `None` unless `s` is exactly the [`encode`] of
/// some `N` bytes (right length, alphabet, no bits set past the end), so one value has
/// one spelling.
pub fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    if N == 0 || s.len() != (N * 8 - 1) / 5 + 1 {
        return None;
    }
    let mut out = [0u8; N];
    for (idx, c) in s.bytes().enumerate() {
        let digit = ALPHABET.iter().position(|&a| a == c)? as u16;
        let n = s.len() - 1 - idx;
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        let v = digit << j;
        out[i] |= v as u8;
        let carry = (v >> 8) as u8;
        match out.get_mut(i + 1) {
            Some(next) => *next |= carry,
            None if carry != 0 => return None,
            None => {}
        }
    }
    Some(out)
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

    #[test]
    fn decode_inverts_encode() {
        for input in [&b""[..], b"hello\n", b"\xff\x00\x80"] {
            let d: [u8; 32] = Sha256::digest(input).into();
            assert_eq!(decode::<32>(&encode(&d)), Some(d));
        }
        assert_eq!(
            decode::<3>(&encode(b"\xff\x00\x80")),
            Some(*b"\xff\x00\x80")
        );
    }

    #[test]
    fn decode_refuses_other_spellings() {
        let good = encode(&Sha256::digest(b""));
        assert_eq!(decode::<32>(&good[1..]), None, "too short");
        assert_eq!(decode::<32>(&format!("0{good}")), None, "too long");
        assert_eq!(
            decode::<32>(&format!("e{}", &good[1..])),
            None,
            "not in the alphabet"
        );
        // 52 digits carry 260 bits: a first digit above 1 sets bits past the 256th.
        assert_eq!(
            decode::<32>(&format!("z{}", &good[1..])),
            None,
            "bits past the end"
        );
    }
}
