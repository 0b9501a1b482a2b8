//! The chunking strategies the experiment compares, their command-line spelling
//! (`file-fixed:SIZE`, `file-fastcdc:MIN:AVG:MAX`, `nar-fixed:SIZE`,
//! `nar-fastcdc:MIN:AVG:MAX`, `nar-zstd`) and the default sweep.

use std::fmt;
use std::str::FromStr;

use narfs_encoder::chunker::Chunker;
use narfs_encoder::{Layout, Profile};

use crate::ParseStrategyError;

/// One way of storing a corpus of NARs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Strategy {
    /// Every NAR compressed on its own with zstd: no sharing between items (the
    /// `guix publish --ipfs-api` baseline).
    NarZstd,
    /// The whole NAR stream as one UnixFS file, cut by this chunker (casync/attic style).
    Nar(Chunker),
    /// The narfs encoding: the NAR's tree as UnixFS, each file cut by this chunker.
    File(Chunker),
}

/// The families a chart draws as one line each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Family {
    /// `file-fastcdc:MIN:AVG:MAX`.
    FileFastCdc,
    /// `file-fixed:SIZE`.
    FileFixed,
    /// `nar-fastcdc:MIN:AVG:MAX`.
    NarFastCdc,
    /// `nar-fixed:SIZE`.
    NarFixed,
    /// `nar-zstd`.
    NarZstd,
}

impl Family {
    /// The family's name in the report: a strategy's spelling without its sizes.
    pub fn name(self) -> &'static str {
        match self {
            Family::FileFastCdc => "file-fastcdc",
            Family::FileFixed => "file-fixed",
            Family::NarFastCdc => "nar-fastcdc",
            Family::NarFixed => "nar-fixed",
            Family::NarZstd => "nar-zstd",
        }
    }
}

/// What `narfs experiment` runs when no `--strategies` is given.
pub const DEFAULT_SWEEP: &[&str] = &[
    "file-fixed:1048576",
    "file-fixed:262144",
    "file-fixed:65536",
    "file-fastcdc:4096:16384:65536",
    "file-fastcdc:16384:65536:262144",
    "file-fastcdc:65536:262144:1048576",
    "nar-fixed:262144",
    "nar-fastcdc:16384:65536:262144",
    "nar-zstd",
];

/// The default sweep, parsed.
pub fn default_sweep() -> Vec<Strategy> {
    DEFAULT_SWEEP
        .iter()
        .map(|s| s.parse().expect("the default sweep parses"))
        .collect()
}

impl Strategy {
    /// The chart line the strategy belongs to.
    pub fn family(&self) -> Family {
        match self {
            Strategy::NarZstd => Family::NarZstd,
            Strategy::Nar(Chunker::Fixed(_)) => Family::NarFixed,
            Strategy::Nar(Chunker::FastCdc { .. }) => Family::NarFastCdc,
            Strategy::File(Chunker::Fixed(_)) => Family::FileFixed,
            Strategy::File(Chunker::FastCdc { .. }) => Family::FileFastCdc,
        }
    }

    /// The chunk size the strategy aims at (SIZE, or FastCDC's AVG); none for nar-zstd.
    pub fn target_chunk(&self) -> Option<usize> {
        match self {
            Strategy::NarZstd => None,
            Strategy::Nar(c) | Strategy::File(c) => Some(match *c {
                Chunker::Fixed(n) => n,
                Chunker::FastCdc { avg, .. } => avg,
            }),
        }
    }

    /// The DAG layout: Kubo's (`ipfs add -r --cid-version=1`, sha2-256, 174 links)
    /// with the chunker replaced. None for nar-zstd.
    pub fn layout(&self) -> Option<Layout> {
        match self {
            Strategy::NarZstd => None,
            Strategy::Nar(c) | Strategy::File(c) => Some(Layout {
                chunker: *c,
                ..Profile::KuboV1.layout()
            }),
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Strategy::NarZstd => f.write_str("nar-zstd"),
            Strategy::Nar(c) => write!(f, "nar-{c}"),
            Strategy::File(c) => write!(f, "file-{c}"),
        }
    }
}

impl FromStr for Strategy {
    type Err = ParseStrategyError;

    fn from_str(s: &str) -> Result<Self, ParseStrategyError> {
        let s = s.trim();
        if s == "nar-zstd" {
            return Ok(Strategy::NarZstd);
        }
        let unknown = || ParseStrategyError::Unknown(s.to_string());
        let (scope, chunker) = s.split_once('-').ok_or_else(unknown)?;
        if !(chunker.starts_with("fixed:") || chunker.starts_with("fastcdc:")) {
            return Err(unknown());
        }
        let chunker: Chunker = chunker.parse()?;
        match scope {
            "nar" => Ok(Strategy::Nar(chunker)),
            "file" => Ok(Strategy::File(chunker)),
            _ => Err(unknown()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for s in DEFAULT_SWEEP {
            let parsed: Strategy = s.parse().unwrap();
            assert_eq!(parsed.to_string(), *s);
        }
        assert_eq!(default_sweep().len(), DEFAULT_SWEEP.len());
    }

    #[test]
    fn families_and_targets() {
        let s: Strategy = "file-fastcdc:16384:65536:262144".parse().unwrap();
        assert_eq!(s.family(), Family::FileFastCdc);
        assert_eq!(s.target_chunk(), Some(65536));
        assert_eq!(s.layout().unwrap().max_links, 174);
        let n: Strategy = "nar-fixed:4096".parse().unwrap();
        assert_eq!(n.family(), Family::NarFixed);
        assert_eq!(n.target_chunk(), Some(4096));
        assert_eq!(Strategy::NarZstd.target_chunk(), None);
        assert!(Strategy::NarZstd.layout().is_none());
    }

    #[test]
    fn bad_spellings_are_refused() {
        for bad in [
            "",
            "zstd",
            "nar-xz",
            "file-fixed",
            "file-fixed:0",
            "dir-fixed:4096",
            "file-rabin:1",
            "file-fastcdc:1:2:3",
        ] {
            assert!(bad.parse::<Strategy>().is_err(), "{bad} accepted");
        }
    }
}
