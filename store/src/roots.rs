//! Root records: what the store knows of each encoded NAR. They live in the block
//! table's environment (`root_table`, stored as `record_form`), keyed by root CID and
//! name, so that one DAG may be recorded under several names and a name points at one
//! DAG (recording a name again replaces the older record of that name). The serde form
//! is `store ls --json`'s and that of the `roots/*.json` files of older stores, which
//! `migrate` moves into the table.

use std::path::PathBuf;
use std::str::FromStr;

use narfs_core::block::HashAlg;
use narfs_core::{Cid, Encoding};
use serde::{Deserialize, Serialize};

use crate::Error;

/// What the store knows of one encoded NAR.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootRecord {
    /// Root CID of the DAG.
    pub root: String,
    /// Optional name, e.g. the store path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `sha256:<nix base32>`, Nix's NarHash.
    pub nar_hash: String,
    pub nar_size: u64,
    pub chunker: String,
    pub hash: String,
    pub profile: String,
    /// How the DAG carries the NAR; `compression` on disk (`none` for a UnixFS
    /// tree, `zstd` for the compressed-NAR fallback), as `encode --json` names it.
    #[serde(rename = "compression", with = "encoding_name")]
    pub encoding: Encoding,
    /// Blocks and bytes the encoding produced, repeats included.
    pub blocks: u64,
    pub block_bytes: u64,
    /// Of which newly stored by this encoding.
    pub new_blocks: u64,
    pub new_bytes: u64,
    /// Seconds since the Unix epoch.
    pub created: u64,
    /// The binary cache's metadata of an imported store path (`narfs import`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub narinfo: Option<NarInfoMeta>,
    /// Read back from the store in a form whose checksum held (`record_form` version
    /// 2): these are the fields its writer stored, and every writer stores a NarHash
    /// and NarSize it computed from, or checked against, the NAR under `root`
    /// ([`crate::Store::record_root`]). So a decoder need not hash the NAR again to
    /// know it is the recorded one. False for a record made in memory, read from JSON,
    /// or stored by an older narfs (version 1): its NarHash is checked as it streams.
    #[serde(skip)]
    pub sealed: bool,
}

/// The narinfo fields of a store path that narfs does not compute itself, kept so that
/// `narfs serve` can give Nix back what the original cache said (signatures included).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NarInfoMeta {
    /// `/nix/store/<hash>-<name>`.
    pub store_path: String,
    /// Base names (`<hash>-<name>`) of the paths this one refers to.
    #[serde(default)]
    pub references: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deriver: Option<String>,
    /// `Sig:` lines, `<key name>:<base64 signature>`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sigs: Vec<String>,
    /// Content address (`CA:`), e.g. `fixed:r:sha256:...`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// The narinfo as the cache wrote it, verbatim: a Guix narinfo's `Signature:`
    /// signs exactly the text above its line, so serving that text unchanged keeps it
    /// valid. Kept for Guix caches only (Nix signs a fingerprint, rebuilt from fields).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

impl From<&narfs_nix::NarInfo> for NarInfoMeta {
    fn from(info: &narfs_nix::NarInfo) -> NarInfoMeta {
        NarInfoMeta {
            store_path: info.store_path.clone(),
            references: info.references.clone(),
            deriver: info.deriver.clone(),
            sigs: info.sigs.clone(),
            ca: info.ca.clone(),
            text: info
                .store_path
                .starts_with(narfs_nix::StoreDir::Guix.as_str())
                .then(|| info.text.clone()),
        }
    }
}

impl RootRecord {
    /// The record as `narfs store ls` lists it: root, name, NarSize, NarHash, chunker,
    /// encoding and the share of its blocks that were new, tab-separated.
    pub fn listing_line(&self) -> String {
        format!(
            "{}\t{}\t{}\t{}\t{}\t{}\tnew {:.1}%",
            self.root,
            self.name.as_deref().unwrap_or("-"),
            self.nar_size,
            self.nar_hash,
            self.chunker,
            self.encoding,
            self.new_percent()
        )
    }

    /// The record of `root`, the DAG (in `encoding`) of a NAR with this sha256 and
    /// size, created now: the one way every writer (encode, import, CAR import) builds
    /// a record. Name, layout, counts and narinfo fields are added with the `with_*`
    /// methods; until then the layout reads `unknown` and the counts 0.
    pub fn new(root: &Cid, encoding: Encoding, nar_sha256: &[u8; 32], nar_size: u64) -> RootRecord {
        RootRecord {
            root: root.to_string(),
            name: None,
            nar_hash: narfs_nix::narinfo::nar_hash_string(nar_sha256),
            nar_size,
            chunker: "unknown".into(),
            hash: HashAlg::from_code(root.hash().code())
                .map_or("unknown", HashAlg::name)
                .into(),
            profile: "unknown".into(),
            encoding,
            blocks: 0,
            block_bytes: 0,
            new_blocks: 0,
            new_bytes: 0,
            created: RootRecord::now(),
            narinfo: None,
            sealed: false,
        }
    }

    /// Names the root (e.g. by its store path).
    pub fn with_name(mut self, name: Option<String>) -> RootRecord {
        self.name = name;
        self
    }

    /// How the DAG was made: chunker, hash function and profile, by their names.
    pub fn with_layout(
        mut self,
        chunker: impl Into<String>,
        hash: impl Into<String>,
        profile: impl Into<String>,
    ) -> RootRecord {
        self.chunker = chunker.into();
        self.hash = hash.into();
        self.profile = profile.into();
        self
    }

    /// Blocks and bytes the encoding produced, repeats included.
    pub fn with_blocks(mut self, blocks: u64, block_bytes: u64) -> RootRecord {
        self.blocks = blocks;
        self.block_bytes = block_bytes;
        self
    }

    /// The binary cache's fields of an imported store path.
    pub fn with_narinfo(mut self, meta: NarInfoMeta) -> RootRecord {
        self.narinfo = Some(meta);
        self
    }

    /// Of the block bytes this encoding produced, the percentage new to the store.
    pub fn new_percent(&self) -> f64 {
        if self.block_bytes == 0 {
            return 0.0;
        }
        100.0 * self.new_bytes as f64 / self.block_bytes as f64
    }

    /// Now, as [`RootRecord::created`] counts it: seconds since the Unix epoch.
    pub fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default()
    }

    /// The root CID, parsed.
    pub fn cid(&self) -> Result<Cid, Error> {
        Cid::from_str(&self.root).map_err(|e| Error::Record {
            path: PathBuf::from(&self.root),
            source: serde::de::Error::custom(e),
        })
    }
}

/// A version of the store's root records: two equal versions mean no record was added
/// or removed in between (a counter in the record tables, moved by every change).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootsVersion(pub(crate) u64);

/// [`Encoding`] in a record by its name, so records stay readable and stable.
mod encoding_name {
    use narfs_core::Encoding;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(e: &Encoding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(e.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Encoding, D::Error> {
        let name = String::deserialize(d)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}
