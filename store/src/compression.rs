//! How a write session stores new blocks, as the CLI names it (`--compression`).

use std::fmt;
use std::str::FromStr;

use crate::pack::MAX_PACK;
use crate::Options;

/// liblz4's largest acceleration (`LZ4_ACCELERATION_MAX`; above it, it uses this).
const LZ4_MAX_ACCELERATION: i32 = 65537;

/// liblz4's acceleration of the default LZ4 packs (1 is liblz4's own default). LZ4 at
/// 1 took ~45% of the CPU of an encode into a fresh store (~500 MB/s a core on the
/// large corpus: most of it compresses 2–3×, so no cheap screen skips much); 8 took
/// 10–18% less CPU there and 4–15% less on a NAR of 46,537 small files, for 16–26%
/// more bytes before `store repack` (which rewrites packs at zstd -19 whatever this
/// is); 16 saved a little more CPU for another 10–15% of bytes (docs/BENCHMARKS.md,
/// branch `freshenc`'s runs).
pub const LZ4_ACCELERATION: i32 = 8;

/// `pack` (the default: [`Options::default`]'s codec over 1 MiB packs of an item's new
/// blocks), `pack:lz4[:BYTES[:ACCELERATION]]`, `pack:LEVEL[:BYTES]` (zstd at LEVEL),
/// `block[:LEVEL]` (zstd of each block alone, narfs's earlier form) or `none` (every
/// block as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level of blocks stored alone, and of packs when [`Self::codec`] is zstd
    /// (`None`: blocks as they are, no packs).
    pub zstd_level: Option<i32>,
    /// Bytes of a pack (0: each block alone).
    pub pack_bytes: u64,
    /// What compresses packs.
    pub codec: Codec,
    /// liblz4's acceleration when [`Self::codec`] is LZ4 (1..=65537).
    pub lz4_acceleration: i32,
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
            lz4_acceleration: o.lz4_acceleration,
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
            lz4_acceleration: self.lz4_acceleration,
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
        "compression {0:?}: expected pack, pack:lz4[:BYTES[:ACCELERATION]], pack:LEVEL[:BYTES], block[:LEVEL] or none"
    )]
    Form(String),
    /// A level zstd does not have, or a pack size out of range.
    #[error(
        "compression {0:?}: zstd levels are -7..=22, pack sizes 4096..=16777216 bytes, LZ4 accelerations 1..=65537"
    )]
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
                ..d
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
            ("pack:lz4", &[b, a]) => Compression {
                pack_bytes: b.max(0) as u64,
                lz4_acceleration: a.clamp(0, i64::from(i32::MAX)) as i32,
                ..lz4
            },
            _ => return Err(form()),
        };
        let level_ok = c.zstd_level.is_none_or(|l| (-7..=22).contains(&l))
            && (kind == "pack:lz4" || nums.first().is_none_or(|&l| (-7..=22).contains(&l)));
        let bytes_ok = c.pack_bytes == 0 || (4096..=MAX_PACK).contains(&c.pack_bytes);
        let acceleration_ok = (1..=LZ4_MAX_ACCELERATION).contains(&c.lz4_acceleration);
        if !level_ok
            || !bytes_ok
            || !acceleration_ok
            || (kind.starts_with("pack") && c.pack_bytes == 0)
        {
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
            (Some(_), b, Codec::Lz4) => match self.lz4_acceleration {
                LZ4_ACCELERATION => write!(f, "pack:lz4:{b}"),
                a => write!(f, "pack:lz4:{b}:{a}"),
            },
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
            "pack:lz4:1048576:65537",
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
        let fast = "pack:lz4:65536:9".parse::<Compression>().unwrap();
        assert_eq!(
            (fast.codec, fast.pack_bytes, fast.lz4_acceleration),
            (Codec::Lz4, 65536, 9)
        );
        assert_eq!(lz4.lz4_acceleration, LZ4_ACCELERATION);
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
            "pack:lz4:1048576:0",
            "pack:lz4:1048576:65538",
            "pack:lz4:1:2:3",
            "pack:lz4:x",
            "block:lz4",
        ] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }
}
