//! How a write session stores new blocks, as the CLI names it (`--compression`).

use std::fmt;
use std::str::FromStr;

use crate::pack::MAX_PACK;
use crate::Options;

/// `pack` (the default: zstd level 1 over 1 MiB packs of an item's new blocks),
/// `pack:LEVEL[:BYTES]`, `block[:LEVEL]` (zstd of each block alone, narfs's earlier
/// form) or `none` (every block as it is).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Compression {
    /// zstd level (`None`: blocks as they are).
    pub zstd_level: Option<i32>,
    /// Bytes of a pack (0: each block alone).
    pub pack_bytes: u64,
}

impl Default for Compression {
    fn default() -> Self {
        let o = Options::default();
        Compression {
            zstd_level: o.zstd_level,
            pack_bytes: o.pack_bytes,
        }
    }
}

impl Compression {
    /// `options` with this compression.
    pub fn apply(self, options: Options) -> Options {
        Options {
            zstd_level: self.zstd_level,
            pack_bytes: self.pack_bytes,
            ..options
        }
    }
}

/// Why a `--compression` value is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CompressionError {
    /// Not one of the forms [`Compression`] lists.
    #[error("compression {0:?}: expected pack, pack:LEVEL[:BYTES], block[:LEVEL] or none")]
    Form(String),
    /// A level zstd does not have, or a pack size out of range.
    #[error("compression {0:?}: zstd levels are -7..=22, pack sizes 4096..=16777216 bytes")]
    Range(String),
}

impl FromStr for Compression {
    type Err = CompressionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let form = || CompressionError::Form(s.to_string());
        let mut parts = s.split(':');
        let kind = parts.next().unwrap_or("");
        let nums: Vec<i64> = parts
            .map(|p| p.parse().map_err(|_| form()))
            .collect::<Result<_, _>>()?;
        let d = Compression::default();
        let c = match (kind, nums.as_slice()) {
            ("none", []) => Compression {
                zstd_level: None,
                pack_bytes: 0,
            },
            ("block", []) => Compression { pack_bytes: 0, ..d },
            ("block", &[l]) => Compression {
                zstd_level: Some(l as i32),
                pack_bytes: 0,
            },
            ("pack", []) => d,
            ("pack", &[l]) => Compression {
                zstd_level: Some(l as i32),
                ..d
            },
            ("pack", &[l, b]) => Compression {
                zstd_level: Some(l as i32),
                pack_bytes: b.max(0) as u64,
            },
            _ => return Err(form()),
        };
        let level_ok = c.zstd_level.is_none_or(|l| (-7..=22).contains(&l))
            && nums.first().is_none_or(|&l| (-7..=22).contains(&l));
        let bytes_ok = c.pack_bytes == 0 || (4096..=MAX_PACK).contains(&c.pack_bytes);
        if !level_ok || !bytes_ok || (kind == "pack" && c.pack_bytes == 0) {
            return Err(CompressionError::Range(s.to_string()));
        }
        Ok(c)
    }
}

impl fmt::Display for Compression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.zstd_level, self.pack_bytes) {
            (None, _) => write!(f, "none"),
            (Some(l), 0) => write!(f, "block:{l}"),
            (Some(l), b) => write!(f, "pack:{l}:{b}"),
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
        ] {
            assert_eq!(s.parse::<Compression>().unwrap().to_string(), s);
        }
        assert_eq!(
            "pack".parse::<Compression>().unwrap(),
            Compression::default()
        );
        assert_eq!("block".parse::<Compression>().unwrap().pack_bytes, 0);
        for bad in [
            "",
            "zip",
            "pack:99",
            "pack:1:10",
            "pack:1:0",
            "block:x",
            "none:1",
            "pack:1:2:3",
        ] {
            assert!(bad.parse::<Compression>().is_err(), "{bad}");
        }
    }
}
