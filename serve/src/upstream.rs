//! The upstream binary cache of the substituter proxy ([`crate::proxy`]): its
//! `nix-cache-info` and narinfos, and how a narinfo is rewritten for the local client.
//!
//! The rewrite keeps every line of the upstream narinfo byte for byte (StorePath,
//! NarHash, NarSize, References, Deriver, Sig, CA, IPFS-CID, and anything else) except
//! the NAR's location: the `URL`/`Compression`/`FileSize` group(s) and `FileHash`
//! become one `URL: nar/<cid>.nar`, `Compression: none`, `FileSize: <NarSize>`, where
//! the first group stood. Nix signs `StorePath;NarHash;NarSize;References`, so its
//! signature check still holds. (A Guix `Signature:` covers the whole text above it and
//! would not: the proxy is for Nix clients.)

use std::time::Duration;

use narfs_core::Cid;
use narfs_decoder::Expect;
use narfs_nix::narinfo::{NarInfo, NarInfoError, MAX_NARINFO};
use narfs_nix::store_path::StoreDir;
use narfs_store::NarInfoMeta;

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
    /// Its `IPFS-CID:` is not a CID, or appears twice.
    #[error("the upstream narinfo's IPFS-CID {0:?} is not one CID")]
    BadCid(String),
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

/// Rewrites `text`, the upstream's narinfo for `hash` in `dir` (see the module doc).
pub fn rewrite(text: &[u8], hash: &str, dir: StoreDir) -> Result<Rewritten, RewriteError> {
    let info = NarInfo::parse_in(dir, text)?;
    if info.hash_part() != hash {
        return Err(RewriteError::OtherPath(info.store_path));
    }
    // parse_in checked that the text is UTF-8 and bounded.
    let text = std::str::from_utf8(text).map_err(|_| NarInfoError::NotUtf8)?;
    let mut cid = None;
    // The kept lines, and where the first URL/Compression/FileSize line stood.
    let mut kept: Vec<&str> = Vec::new();
    let mut at = None;
    for line in text.split_inclusive('\n') {
        let key = line.split_once(": ").map_or("", |(k, _)| k);
        match key {
            "URL" | "Compression" | "FileSize" | "FileHash" => {
                if key != "FileHash" {
                    at.get_or_insert(kept.len());
                }
                continue;
            }
            "IPFS-CID" => {
                let value = line[key.len() + 2..].trim_end_matches(['\n', '\r']);
                let parsed: Cid = value
                    .parse()
                    .map_err(|_| RewriteError::BadCid(value.into()))?;
                if cid.replace(parsed).is_some() {
                    return Err(RewriteError::BadCid(value.into()));
                }
            }
            _ => {}
        }
        kept.push(line);
    }
    let cid = cid.ok_or(RewriteError::NoCid)?;
    let location = format!(
        "URL: nar/{cid}.nar\nCompression: none\nFileSize: {}\n",
        info.nar_size
    );
    // parse_in refused a narinfo without URL, so `at` is set.
    kept.insert(at.unwrap_or(1).min(kept.len()), &location);
    let mut text = String::with_capacity(text.len() + 64);
    for line in kept {
        text.push_str(line);
        if !line.ends_with('\n') {
            text.push('\n');
        }
    }
    Ok(Rewritten {
        text,
        cid,
        expect: Expect {
            nar_sha256: info.nar_hash,
            nar_size: info.nar_size,
        },
        meta: NarInfoMeta::from(&info),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CID: &str = "bafybeigdyrzt5sfp7udm7hu76uh7y26nf3efuylqabf3oclgtqy55fbzdi";

    fn upstream() -> String {
        let real = include_str!("../../nix/testdata/refs.narinfo");
        format!("{real}IPFS-CID: {CID}\n")
    }

    #[test]
    fn keeps_every_line_but_the_location() {
        let up = upstream();
        let info = NarInfo::parse(up.as_bytes()).unwrap();
        let r = rewrite(up.as_bytes(), info.hash_part(), StoreDir::Nix).unwrap();
        assert_eq!(r.cid.to_string(), CID);
        assert_eq!(
            (r.expect.nar_sha256, r.expect.nar_size),
            (info.nar_hash, info.nar_size)
        );
        let back = NarInfo::parse(r.text.as_bytes()).unwrap();
        assert_eq!(back.url, format!("nar/{CID}.nar"));
        assert_eq!(back.compression, "none");
        assert_eq!(back.nars[0].file_size, Some(info.nar_size));
        assert!(!r.text.contains("FileHash:"));
        // Every other line, byte for byte, in order.
        let kept = |t: &str| -> Vec<String> {
            t.lines()
                .filter(|l| {
                    !["URL:", "Compression:", "FileSize:", "FileHash:"]
                        .iter()
                        .any(|k| l.starts_with(k))
                })
                .map(str::to_string)
                .collect()
        };
        assert_eq!(kept(&r.text), kept(&up));
        assert!(kept(&up).iter().any(|l| l.starts_with("Sig: ")));
        // The location sits where the upstream's was: right after StorePath.
        assert!(r.text.lines().nth(1).unwrap().starts_with("URL: nar/"));
    }

    #[test]
    fn refuses_what_cannot_be_proxied() {
        let up = upstream();
        let info = NarInfo::parse(up.as_bytes()).unwrap();
        let hash = info.hash_part().to_string();
        let no_cid = up.replace(&format!("IPFS-CID: {CID}\n"), "");
        assert!(matches!(
            rewrite(no_cid.as_bytes(), &hash, StoreDir::Nix),
            Err(RewriteError::NoCid)
        ));
        let bad = up.replace(CID, "not-a-cid");
        assert!(matches!(
            rewrite(bad.as_bytes(), &hash, StoreDir::Nix),
            Err(RewriteError::BadCid(_))
        ));
        let twice = format!("{up}IPFS-CID: {CID}\n");
        assert!(matches!(
            rewrite(twice.as_bytes(), &hash, StoreDir::Nix),
            Err(RewriteError::BadCid(_))
        ));
        let other = "00000000000000000000000000000000";
        assert!(matches!(
            rewrite(up.as_bytes(), other, StoreDir::Nix),
            Err(RewriteError::OtherPath(_))
        ));
        assert!(matches!(
            rewrite(b"garbage", &hash, StoreDir::Nix),
            Err(RewriteError::Parse(_))
        ));
    }
}
