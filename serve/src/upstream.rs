//! The upstream binary cache of the substituter proxy ([`crate::proxy`]): its
//! `nix-cache-info` and narinfos, and how a narinfo is rewritten for the local client.
//!
//! The rewrite replaces only the NAR's location: the `URL`/`Compression`/`FileSize`
//! group(s) and `FileHash` become one `URL: nar/<cid>.nar`, `Compression: none`,
//! `FileSize: <NarSize>`; every other line stays byte for byte (StorePath, NarHash,
//! NarSize, References, Deriver, Sig, CA, IPFS-CID, IPFS-Encoding, anything else).
//! The narinfo's dialect is its `StorePath`'s:
//!
//! - Nix signs `StorePath;NarHash;NarSize;References`: the location goes where the
//!   first group stood, and `nix copy` checks the signature as usual;
//! - Guix signs the sha256 of exactly the text above its `Signature:` line, so that
//!   text and the line itself are passed through untouched and the location goes right
//!   below it; a narinfo whose signed text holds a location cannot be rewritten
//!   without breaking its signature, and is refused.
//!
//! `IPFS-CID:` names the DAG and `IPFS-Encoding:` how it carries the NAR
//! ([`crate::narinfo::ENCODING_FIELD`]); both are required, once each: the blocks alone
//! do not say whether a one-file root is a file's NAR or the zstd-compressed NAR, and
//! a wrong guess would only show as a NarHash mismatch mid-response.

use std::time::Duration;

use narfs_core::{Cid, Encoding};
use narfs_decoder::Expect;
use narfs_nix::narinfo::{guix_signed_part, NarInfo, NarInfoError, MAX_NARINFO};
use narfs_nix::store_path::StoreDir;
use narfs_store::NarInfoMeta;

use crate::narinfo::ENCODING_FIELD;

/// Largest `nix-cache-info` read from the upstream.
const MAX_CACHE_INFO: usize = 4096;

/// An upstream binary cache.
#[derive(Clone, Debug)]
pub struct Upstream {
    /// `http://HOST:PORT[/PREFIX]`.
    pub url: String,
    /// The longest a request to it may take, whole.
    pub timeout: Duration,
}

/// A narinfo of the upstream, rewritten for the proxy.
#[derive(Clone, Debug)]
pub struct Rewritten {
    /// The narinfo the proxy answers.
    pub text: String,
    /// Its `IPFS-CID:`, the root of the NAR's DAG.
    pub cid: Cid,
    /// Its `IPFS-Encoding:`, how that DAG carries the NAR.
    pub encoding: Encoding,
    /// Its `NarHash` and `NarSize`, what the NAR streamed for `cid` is checked against.
    pub expect: Expect,
    /// Its fields, recorded with the root once the NAR has been fetched.
    pub meta: NarInfoMeta,
}

/// Why an upstream narinfo cannot be passed on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RewriteError {
    /// It does not parse as a narinfo.
    #[error("the upstream narinfo does not parse")]
    Parse(#[from] NarInfoError),
    /// Its `StorePath` is not the one asked for.
    #[error("the upstream narinfo is for {0}, not the hash asked for")]
    OtherPath(String),
    /// It has no `IPFS-CID:` line: the NAR cannot be fetched over IPFS.
    #[error("the upstream narinfo has no IPFS-CID line (is the upstream a narfs serve?)")]
    NoCid,
    /// Its `IPFS-CID:` is not a CID.
    #[error("the upstream narinfo's IPFS-CID {0:?} is not a CID")]
    BadCid(String),
    /// It has no `IPFS-Encoding:` line (a `narfs serve` older than the field).
    #[error(
        "the upstream narinfo has no IPFS-Encoding line (a narfs serve older than this \
         proxy? upgrade the publisher)"
    )]
    NoEncoding,
    /// Its `IPFS-Encoding:` is not an encoding this proxy decodes.
    #[error("the upstream narinfo's IPFS-Encoding {0:?} is not one this proxy knows (none, zstd)")]
    BadEncoding(String),
    /// `IPFS-CID:` or `IPFS-Encoding:` appears twice.
    #[error("the upstream narinfo has {0} twice")]
    Duplicate(&'static str),
    /// A Guix narinfo whose signed text (above `Signature:`) names the NAR's location.
    #[error(
        "the upstream narinfo's signature covers its {0} line: it cannot point at IPFS \
         without breaking the signature"
    )]
    SignedLocation(String),
}

impl Upstream {
    /// The upstream's store directory (`StoreDir:` of its `nix-cache-info`), `None`
    /// if it says none narfs knows.
    pub async fn store_dir(&self) -> Result<Option<StoreDir>, narfs_ipfs::DocumentError> {
        let info =
            narfs_ipfs::get_document(&self.url, "/nix-cache-info", MAX_CACHE_INFO, self.timeout)
                .await?;
        Ok(info.and_then(|text| {
            String::from_utf8_lossy(&text).lines().find_map(|l| {
                let dir = l.strip_prefix("StoreDir:")?.trim();
                StoreDir::from_path(dir)
            })
        }))
    }

    /// The narinfo of the store path with hash part `hash`, as the upstream sent it;
    /// `None` if it has none.
    pub async fn narinfo(
        &self,
        hash: &str,
    ) -> Result<Option<bytes::Bytes>, narfs_ipfs::DocumentError> {
        let path = format!("/{hash}.narinfo");
        narfs_ipfs::get_document(&self.url, &path, MAX_NARINFO, self.timeout).await
    }
}

/// Rewrites `text`, the upstream's narinfo for `hash` (see the module doc).
pub fn rewrite(text: &[u8], hash: &str) -> Result<Rewritten, RewriteError> {
    let info = NarInfo::parse_any(text)?;
    if info.hash_part() != hash {
        return Err(RewriteError::OtherPath(info.store_path));
    }
    let text = info.text.as_str();
    let guix = info.store_path.starts_with(StoreDir::Guix.as_str());
    let signed = if guix {
        guix_signed_part(text).unwrap_or("")
    } else {
        ""
    };
    let mut fields = Fields::default();
    for line in signed.split_inclusive('\n') {
        let key = key(line);
        if is_location(key) {
            return Err(RewriteError::SignedLocation(key.to_string()));
        }
        fields.read(key, line)?;
    }
    // The lines kept below the signed text, and where the first location stood.
    let mut kept: Vec<&str> = Vec::new();
    let mut at = None;
    for line in text[signed.len()..].split_inclusive('\n') {
        let key = key(line);
        if is_location(key) {
            if key != "FileHash" {
                at.get_or_insert(kept.len());
            }
            continue;
        }
        fields.read(key, line)?;
        kept.push(line);
    }
    let cid = fields.cid.ok_or(RewriteError::NoCid)?;
    let encoding = fields.encoding.ok_or(RewriteError::NoEncoding)?;
    let location = format!(
        "URL: nar/{cid}.nar\nCompression: none\nFileSize: {}\n",
        info.nar_size
    );
    // Right below a signature; else where the location was (parse_any refused a
    // narinfo without URL, so `at` is set).
    let at = if signed.is_empty() {
        at.unwrap_or(1)
    } else {
        0
    };
    kept.insert(at.min(kept.len()), &location);
    let mut out = String::with_capacity(text.len() + 64);
    out.push_str(signed);
    if !out.is_empty() && !out.ends_with('\n') {
        out.push('\n');
    }
    for line in kept {
        out.push_str(line);
        if !line.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(Rewritten {
        text: out,
        cid,
        encoding,
        expect: Expect {
            nar_sha256: info.nar_hash,
            nar_size: info.nar_size,
            // Nothing has bound this CID to this NarHash yet: the decode establishes
            // it, before the proxy records the root.
            stream_hash: true,
        },
        meta: NarInfoMeta::from(&info),
    })
}

/// The key of a narinfo line (`""` if it has none).
fn key(line: &str) -> &str {
    line.split_once(": ").map_or("", |(k, _)| k)
}

/// Whether `key` says where the NAR is: what the rewrite replaces.
fn is_location(key: &str) -> bool {
    matches!(key, "URL" | "Compression" | "FileSize" | "FileHash")
}

/// The IPFS fields of a narinfo, read line by line.
#[derive(Default)]
struct Fields {
    cid: Option<Cid>,
    encoding: Option<Encoding>,
}

impl Fields {
    fn read(&mut self, key: &str, line: &str) -> Result<(), RewriteError> {
        let value = || line[key.len() + 2..].trim_end_matches(['\n', '\r']);
        match key {
            "IPFS-CID" => {
                let v = value();
                let cid = v.parse().map_err(|_| RewriteError::BadCid(v.into()))?;
                if self.cid.replace(cid).is_some() {
                    return Err(RewriteError::Duplicate("IPFS-CID"));
                }
            }
            ENCODING_FIELD => {
                let v = value();
                // `Encoding` reads "" as a tree; here a value must be said.
                let encoding = match v {
                    "" => Err(RewriteError::BadEncoding(v.into())),
                    _ => v.parse().map_err(|_| RewriteError::BadEncoding(v.into())),
                }?;
                if self.encoding.replace(encoding).is_some() {
                    return Err(RewriteError::Duplicate(ENCODING_FIELD));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "upstream_tests.rs"]
mod tests;
