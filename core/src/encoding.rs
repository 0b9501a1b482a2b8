//! [`Encoding`]: how a root's DAG carries its NAR. Encoder, decoder, store and server
//! all need to know it, so it is defined once, here, as a type rather than a string.

use std::fmt;
use std::str::FromStr;

/// How the DAG under a root carries the NAR.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Encoding {
    /// A UnixFS tree (directories, files, symlinks): each file gets its own CID, so
    /// identical files in different NARs are stored once. The NAR is rebuilt from it.
    #[default]
    UnixFs,
    /// The zstd-compressed NAR as one UnixFS file: for NARs a UnixFS tree cannot carry
    /// faithfully (names that are not UTF-8), or when asked for.
    ZstdNar,
}

impl Encoding {
    /// The name used in reports and records: `none` (nothing compressed: a tree) or
    /// `zstd` (the compressed NAR), as `encode --json` calls it `compression`.
    pub fn name(self) -> &'static str {
        match self {
            Encoding::UnixFs => "none",
            Encoding::ZstdNar => "zstd",
        }
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A name that is not an [`Encoding`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown encoding {0:?} (expected none or zstd)")]
#[non_exhaustive]
pub struct UnknownEncoding(
    /// The spelling given.
    pub String,
);

impl FromStr for Encoding {
    type Err = UnknownEncoding;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" | "" => Ok(Encoding::UnixFs),
            "zstd" => Ok(Encoding::ZstdNar),
            other => Err(UnknownEncoding(other.to_string())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_roundtrip() {
        for e in [Encoding::UnixFs, Encoding::ZstdNar] {
            assert_eq!(e.name().parse::<Encoding>(), Ok(e));
        }
        assert!("xz".parse::<Encoding>().is_err());
    }
}
