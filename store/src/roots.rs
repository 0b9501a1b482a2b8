//! Root records: one JSON file per encoded NAR under `roots/`, written atomically
//! (temporary file, fsync, rename, fsync of the directory). A record's file name is its
//! root CID, plus a hash of its name when it has one, so that one DAG may be recorded
//! under several names and a name points at one DAG (recording a name again replaces
//! the older record of that name).

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
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

    fn key(&self) -> String {
        match &self.name {
            None => self.root.clone(),
            Some(n) => {
                let d = HashAlg::Sha2_256.digest(n.as_bytes());
                let hex: String = d[..8].iter().map(|b| format!("{b:02x}")).collect();
                format!("{}-{hex}", self.root)
            }
        }
    }
}

/// A record is a few hundred bytes; a longer file is no record of ours.
const MAX_RECORD: u64 = 1 << 20;

fn roots_dir(dir: &Path) -> PathBuf {
    dir.join("roots")
}

/// How long after a change the `roots/` directory's mtime is not trusted to tell the
/// next one (two changes within one timestamp tick would look like one).
const SETTLE: std::time::Duration = std::time::Duration::from_secs(2);

/// A version of the store's root records: two equal versions mean no record was added
/// or removed in between. Records are renamed into and out of `roots/`, so its mtime
/// moves with every change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RootsVersion(std::time::SystemTime);

/// The current version, or `None` when it cannot be told: the last change is too
/// recent to tell from the next one, or the directory's time is unreadable.
pub(crate) fn version(dir: &Path) -> Option<RootsVersion> {
    let mtime = fs::metadata(roots_dir(dir))
        .and_then(|m| m.modified())
        .ok()?;
    let age = std::time::SystemTime::now().duration_since(mtime).ok()?;
    (age > SETTLE).then_some(RootsVersion(mtime))
}

/// Every record with its file, sorted by name then root.
fn load_all(dir: &Path) -> Result<Vec<(PathBuf, RootRecord)>, Error> {
    let rd = roots_dir(dir);
    let mut out = Vec::new();
    for e in fs::read_dir(&rd).map_err(Error::io(&rd))? {
        let path = e.map_err(Error::io(&rd))?.path();
        if path.extension().is_none_or(|x| x != "json") {
            continue;
        }
        let bytes = match crate::nofollow::read(&path, MAX_RECORD) {
            Ok(b) => b,
            // Removed by a concurrent `rm` between listing and reading.
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                continue
            }
            Err(e) => return Err(e),
        };
        let rec: RootRecord = serde_json::from_slice(&bytes).map_err(|source| Error::Record {
            path: path.clone(),
            source,
        })?;
        out.push((path, rec));
    }
    out.sort_by(|a, b| (&a.1.name, &a.1.root).cmp(&(&b.1.name, &b.1.root)));
    Ok(out)
}

pub(crate) fn list(dir: &Path) -> Result<Vec<RootRecord>, Error> {
    Ok(load_all(dir)?.into_iter().map(|(_, r)| r).collect())
}

fn matching(dir: &Path, name_or_cid: &str) -> Result<Vec<(PathBuf, RootRecord)>, Error> {
    let all = load_all(dir)?;
    let by_name: Vec<_> = all
        .iter()
        .filter(|(_, r)| r.name.as_deref() == Some(name_or_cid))
        .cloned()
        .collect();
    if !by_name.is_empty() {
        return Ok(by_name);
    }
    let Ok(cid) = Cid::from_str(name_or_cid) else {
        return Ok(Vec::new());
    };
    let cid = cid.to_string();
    Ok(all.into_iter().filter(|(_, r)| r.root == cid).collect())
}

pub(crate) fn find(dir: &Path, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
    Ok(matching(dir, name_or_cid)?
        .into_iter()
        .map(|(_, r)| r)
        .collect())
}

pub(crate) fn remove(dir: &Path, name_or_cid: &str) -> Result<Vec<RootRecord>, Error> {
    let found = matching(dir, name_or_cid)?;
    for (path, _) in &found {
        match fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(Error::io(path)(e)),
            _ => {}
        }
    }
    fsync_dir(&roots_dir(dir))?;
    Ok(found.into_iter().map(|(_, r)| r).collect())
}

/// Records `rec` durably: written in `tmp_dir`, synced, renamed into `roots/`. Then
/// drops older records of the same name for other roots.
pub(crate) fn add(dir: &Path, tmp_dir: &Path, rec: &RootRecord) -> Result<(), Error> {
    let key = rec.key();
    let tmp = tmp_dir.join(format!("{key}.json"));
    let json = serde_json::to_vec_pretty(rec).map_err(|source| Error::Record {
        path: tmp.clone(),
        source,
    })?;
    let mut f = File::create(&tmp).map_err(Error::io(&tmp))?;
    f.write_all(&json).map_err(Error::io(&tmp))?;
    f.sync_all().map_err(Error::io(&tmp))?;
    let dest = roots_dir(dir).join(format!("{key}.json"));
    fs::rename(&tmp, &dest).map_err(Error::io(&dest))?;
    if let Some(name) = &rec.name {
        for (path, old) in load_all(dir)? {
            if old.name.as_deref() == Some(name) && path != dest {
                let _ = fs::remove_file(&path);
            }
        }
    }
    fsync_dir(&roots_dir(dir))
}

fn fsync_dir(d: &Path) -> Result<(), Error> {
    File::open(d)
        .and_then(|f| f.sync_all())
        .map_err(Error::io(d))
}

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
