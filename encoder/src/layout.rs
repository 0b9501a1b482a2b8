//! What fixes the shape of a DAG: the chunker, the hash, the links per file node and
//! the rule for when a directory becomes a HAMT shard. A [`Profile`] names a set of
//! these that another IPFS implementation also uses, so that CIDs agree.

use std::fmt;
use std::str::FromStr;

use narfs_core::block::HashAlg;

use crate::chunker::Chunker;

/// When a directory becomes a HAMT shard.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShardRule {
    /// Kubo / boxo (and js-ipfs-unixfs-importer's default): estimated size = Σ over
    /// links of (name bytes + CID bytes); shard when it exceeds the threshold.
    LinkBytes(u64),
    /// IPIP-499 (`unixfs-v1-2025`): shard when the encoded directory block would
    /// exceed the threshold.
    BlockBytes(u64),
}

/// Named sets of parameters shared with other IPFS implementations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `ipfs add -r --cid-version=1`: 256 KiB chunks, 174 links, HAMT by link bytes.
    KuboV1,
    /// IPIP-499: 1 MiB chunks, 1,024 links, HAMT by block bytes.
    UnixfsV1_2025,
}

impl Profile {
    pub fn layout(self) -> Layout {
        match self {
            Profile::KuboV1 => Layout {
                chunker: Chunker::Fixed(262_144),
                hash: HashAlg::Sha2_256,
                max_links: 174,
                shard: ShardRule::LinkBytes(262_144),
            },
            Profile::UnixfsV1_2025 => Layout {
                chunker: Chunker::Fixed(1_048_576),
                hash: HashAlg::Sha2_256,
                max_links: 1024,
                shard: ShardRule::BlockBytes(262_144),
            },
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Profile::KuboV1 => "kubo-v1",
            Profile::UnixfsV1_2025 => "unixfs-v1-2025",
        }
    }
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kubo-v1" => Ok(Profile::KuboV1),
            "unixfs-v1-2025" => Ok(Profile::UnixfsV1_2025),
            _ => Err(format!(
                "unknown profile `{s}`: expected kubo-v1 or unixfs-v1-2025"
            )),
        }
    }
}

/// Everything that determines the CIDs of an encoding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    pub chunker: Chunker,
    pub hash: HashAlg,
    /// Most links in one file node (the balanced layout's width).
    pub max_links: usize,
    pub shard: ShardRule,
}

impl Default for Layout {
    fn default() -> Self {
        Profile::KuboV1.layout()
    }
}
