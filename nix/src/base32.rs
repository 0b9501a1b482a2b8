//! Nix's own base32: the alphabet without e, o, t, u, and its peculiar bit order (the
//! last character holds the lowest bits of the first byte). `NarHash` prints as
//! `sha256:` + 52 characters of it, store path hash parts are 32 characters of it.

/// The 32 digits, in value order.
pub const ALPHABET: &[u8; 32] = b"0123456789abcdfghijklmnpqrsvwxyz";

/// Characters needed for `n` bytes.
pub const fn encoded_len(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        (n * 8 - 1) / 5 + 1
    }
}

/// Encodes `bytes` as Nix base32.
pub fn encode(bytes: &[u8]) -> String {
    let len = encoded_len(bytes.len());
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

/// The value of one Nix base32 digit, if `c` is one.
pub fn digit(c: u8) -> Option<u8> {
    ALPHABET.iter().position(|&a| a == c).map(|p| p as u8)
}

/// Whether every character of `s` is a Nix base32 digit.
pub fn is_base32(s: &str) -> bool {
    s.bytes().all(|c| digit(c).is_some())
}

/// Decodes Nix base32 into exactly `N` bytes: `None` unless `s` has the length
/// [`encoded_len`]`(N)`, only Nix base32 digits, and no bits set above the `N` bytes
/// (so each byte string has one spelling, and decoding is the inverse of [`encode`]).
pub fn decode<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != encoded_len(N) {
        return None;
    }
    let mut out = [0u8; N];
    let len = s.len();
    for (idx, c) in s.bytes().enumerate() {
        let d = digit(c)? as u16;
        let n = len - 1 - idx;
        let (i, j) = (n * 5 / 8, n * 5 % 8);
        let v = d << j;
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
    use proptest::prelude::*;
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
        assert_eq!(decode::<32>(&encode(&hello)), Some(hello.into()));
    }

    #[test]
    fn refuses_what_is_not_one_spelling() {
        let s = encode(&[0xffu8; 32]);
        assert_eq!(decode::<32>(&s[1..]), None, "too short");
        assert_eq!(decode::<32>(&format!("0{s}")), None, "too long");
        assert_eq!(decode::<32>(&s.replace('z', "e")), None, "not a digit");
        // The first digit of 32 bytes carries only 1 bit (52 * 5 = 260 = 256 + 4).
        assert_eq!(s.as_bytes()[0], b'1');
        assert_eq!(
            decode::<32>(&format!("2{}", &s[1..])),
            None,
            "bits above 256"
        );
        assert_eq!(encode(&[]), "");
        assert_eq!(decode::<0>(""), Some([]));
    }

    proptest! {
        #[test]
        fn roundtrip_32(bytes in any::<[u8; 32]>()) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), 52);
            prop_assert_eq!(decode::<32>(&s), Some(bytes));
        }

        #[test]
        fn roundtrip_20(bytes in any::<[u8; 20]>()) {
            let s = encode(&bytes);
            prop_assert_eq!(s.len(), 32);
            prop_assert_eq!(decode::<20>(&s), Some(bytes));
        }

        #[test]
        fn decode_then_encode_is_identity(s in "[0-9a-df-np-sv-z]{32}") {
            if let Some(b) = decode::<20>(&s) {
                prop_assert_eq!(encode(&b), s);
            }
        }
    }
}
