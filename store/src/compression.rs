//! How a write session stores new blocks, as the CLI names it (`--compression`).

use std::fmt;
use std::str::FromStr;

use crate::pack::MAX_PACK;
use crate::Options;

/// `pack` (the default: [`Options::default`]'s codec over 1 MiB packs of an item's new
/// blocks), `pack:lz4[:BYTES]`, `pack:LEVEL[:BYTES]` (zstd at LEVEL), `block[:LEVEL]`
/// (zstd of each block alone, narfs's earlier form) or `none` (every block as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level of blocks stored alone, and of packs when [`Self::codec`] is zstd
    /// (`None`: blocks as they are, no packs).
    pub zstd_level: Option<i32>,
    /// Bytes of a pack (0: each block alone).
    pub pack_bytes: u64,
    /// What compresses packs.
    pub codec: Codec,
}

/// What compresses a pack (see `pack.rs`: the pack value's first byte says which).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Codec {
    /// zstd at [`Compression::zstd_level`].
    Zstd,
    /// LZ4 (liblz4's default): decompresses ~2.5× faster than zstd -1, ~25% larger.
    Lz4,
}

impl Default for Compression {
    fn default() -> Self {
        let o = Options::default();
        Compression {
            zstd_level: o.zstd_level,
            pack_bytes: o.pack_bytes,
            codec: o.pack_codec,
        }
    }
}

impl Compression {
    /// `options` with this compression.
    pub fn apply(self, options: Options) -> Options {
        Options {
            zstd_level: self.zstd_level,
            pack_bytes: self.pack_bytes,
            pack_codec: self.codec,
            ..options
        }
    }
}

/// Why a `--compression` value is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// Not one of the forms [`Compression`] lists.
    #[error(
        "compression {0:?}: expected pack, pack:lz4[:BYTES], pack:LEVEL[:BYTES], block[:LEVEL] or none"
    )]
    Form(String),
    /// A level zstd does not have, or a pack size out of range.
    #[error("compression {0:?}: zstd levels are -7..=22, pack sizes 4096..=16777216 bytes")]
    Range(String),
}

impl FromStr for Compression {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = || CompressionError::Form(s.to_string());
        let mut parts = s.split(':').peekable();
        let mut kind = parts.next().unwrap_or("");
        if kind == "pack" && parts.peek() == Some(&"lz4") {
            parts.next();
            kind = "pack:lz4";
        }
        let nums: Vec<i64> = parts
            .map(|p| p.parse().map_err(|_| form()))
            .collect::<Result<_, _>>()?;
        let d = Compression::default();
        // Blocks stored alone beside LZ4 packs (one left over, or above the pack size)
        // keep the per-block zstd form at the default level.
        let lz4 = Compression {
            zstd_level: Options::default().zstd_level,
            codec: Codec::Lz4,
            ..d
        };
        let zstd = |l: i64| Compression {
            zstd_level: Some(l as i32),
            codec: Codec::Zstd,
            ..d
        };
        let c = match (kind, nums.as_slice()) {
            ("none", []) => Compression {
                zstd_level: None,
                pack_bytes: 0,
                codec: Codec::Zstd,
            },
            ("block", []) => Compression {
                pack_bytes: 0,
                codec: Codec::Zstd,
                ..d
            },
            ("block", &[l]) => Compression {
                pack_bytes: 0,
                ..zstd(l)
            },
            ("pack", []) => d,
            ("pack", &[l]) => zstd(l),
            ("pack", &[l, b]) => Compression {
                pack_bytes: b.max(0) as u64,
                ..zstd(l)
            },
            ("pack:lz4", []) => lz4,
            ("pack:lz4", &[b]) => Compression {
                pack_bytes: b.max(0) as u64,
                ..lz4
            },
            _ => return Err(form()),
        };
        let level_ok = c.zstd_level.is_none_or(|l| (-7..=22).contains(&l))
            && (kind == "pack:lz4" || nums.first().is_none_or(|&l| (-7..=22).contains(&l)));
        let bytes_ok = c.pack_bytes == 0 || (4096..=MAX_PACK).contains(&c.pack_bytes);
        if !level_ok || !bytes_ok || (kind.starts_with("pack") && c.pack_bytes == 0) {
            return Err(CompressionError::Range(s.to_string()));
        }
        Ok(c)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.zstd_level, self.pack_bytes, self.codec) {
            (None, _, _) => write!(f, "none"),
            (Some(l), 0, _) => write!(f, "block:{l}"),
            (Some(_), b, Codec::Lz4) => write!(f, "pack:lz4:{b}"),
            (Some(l), b, Codec::Zstd) => write!(f, "pack:{l}:{b}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_print_back() {
        for s in [
            "none",
            "block:3",
            "pack:1:1048576",
            "pack:-3:65536",
            "pack:19:16777216",
            "pack:lz4:1048576",
            "pack:lz4:65536",
        ] {
            assert_eq!(s.parse::<Compression>().unwrap().to_string(), s);
        }
        assert_eq!(
            "pack".parse::<Compression>().unwrap(),
            Compression::default()
        );
        assert_eq!("block".parse::<Compression>().unwrap().pack_bytes, 0);
        let lz4 = "pack:lz4".parse::<Compression>().unwrap();
        assert_eq!((lz4.codec, lz4.pack_bytes), (Codec::Lz4, 1 << 20));
        assert_eq!("pack:1".parse::<Compression>().unwrap().codec, Codec::Zstd);
        for bad in [
            "",
            "zip",
            "pack:99",
            "pack:1:10",
            "pack:1:0",
            "block:x",
            "none:1",
            "pack:1:2:3",
            "pack:lz4:10",
            "pack:lz4:1:2",
            "pack:lz4:x",
            "block:lz4",
        ] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }
}
