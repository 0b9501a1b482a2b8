//! The narinfo `narfs serve` answers for a root recorded with narinfo fields, in the
//! dialect of its store path:
//!
//! - a `/nix/store` item: the fields Nix writes (the original `Sig:` lines kept, plus
//!   one by the `--sign-key` Nix key), the NAR uncompressed at `nar/<root>.nar` (or
//!   `nar/<root>.nar.zst`/`.xz`, `--nar-compression`, made on the fly, no `FileSize`), and
//!   the root CID as `IPFS-CID:` and its encoding as `IPFS-Encoding:`;
//! - a `/gnu/store` item: the original text up to and including its `Signature:` line,
//!   byte for byte (Guix signs the sha256 of exactly the text above that line, so the
//!   original signature stays valid), then `URL: nar/<root>.nar`, `Compression: none`,
//!   `FileSize: <NarSize>` (Guix resolves a relative URL against the cache URL and
//!   reads `none`), `IPFS-CID:` and `IPFS-Encoding:`; with `--nar-compression zstd`
//!   a `nar/<root>.nar.zst` group (`Compression: zstd`) comes first, without
//!   `FileSize`s (the lines below `Signature:` are not signed); an item without an original `Signature:` (narfs
//!   encoded it) gets the fields `guix publish` writes, signed by the `--sign-key`
//!   Guix key if there is one.
//!
//! The formats are `narfs_nix::narinfo`'s and `narfs_nix::signing`'s.

use std::fmt::Write as _;

use narfs_nix::narinfo::{guix_signed_part, parse_sha256, NarInfo};
use narfs_nix::signing::{fingerprint, GuixSecretKey, NixSecretKey, SecretKey};
use narfs_nix::{StoreDir, StorePath};
use narfs_store::{NarInfoMeta, RootRecord};

use crate::encoding::NarCompression;

/// The field that says how the DAG under `IPFS-CID:` carries the NAR, by the store's
/// name of its [`narfs_core::Encoding`]: `none` (the NAR's tree as UnixFS) or `zstd`
/// (the zstd-compressed NAR as one UnixFS file). A proxy cannot tell them apart from
/// the blocks alone, so the publisher says it.
pub const ENCODING_FIELD: &str = "IPFS-Encoding";

/// What Guix's `Signature:` says of the signing host (Guix ignores it).
const GUIX_HOST: &str = "narfs";

/// The keys `narfs serve --sign-key` signs with: at most one per dialect.
#[derive(Debug, Default)]
pub struct Keys {
    /// Adds a `Sig:` to every `/nix/store` narinfo.
    pub nix: Option<NixSecretKey>,
    /// Signs the `/gnu/store` narinfos that have no `Signature:` of their own.
    pub guix: Option<GuixSecretKey>,
}

impl Keys {
    /// Adds `key` in its dialect; `false` if that dialect already has one.
    pub fn add(&mut self, key: SecretKey) -> bool {
        match key {
            SecretKey::Nix(k) if self.nix.is_none() => self.nix = Some(k),
            SecretKey::Guix(k) if self.guix.is_none() => self.guix = Some(k),
            _ => return false,
        }
        true
    }
}

/// The store directory of a record's narinfo, if it has a valid store path.
pub fn dialect(meta: &NarInfoMeta) -> Option<StoreDir> {
    StorePath::parse(&meta.store_path).ok().map(|p| p.dir())
}

/// The narinfo of `rec`, imported with `meta`; `None` if the record's NarHash is not
/// a sha256 Nix can read or its store path does not parse (a damaged record is not
/// served).
pub fn render(
    rec: &RootRecord,
    meta: &NarInfoMeta,
    keys: &Keys,
    nar: NarCompression,
) -> Option<String> {
    let nar_hash = parse_sha256(&rec.nar_hash)?;
    let mut s = match dialect(meta)? {
        StoreDir::Guix => guix(rec, meta, &nar_hash, keys.guix.as_ref(), nar),
        _ => nix(rec, meta, nar_hash, keys.nix.as_ref(), nar),
    };
    let _ = writeln!(s, "IPFS-CID: {}", rec.root);
    let _ = writeln!(s, "{ENCODING_FIELD}: {}", rec.encoding);
    Some(s)
}

fn nix(
    rec: &RootRecord,
    meta: &NarInfoMeta,
    nar_hash: [u8; 32],
    key: Option<&NixSecretKey>,
    nar: NarCompression,
) -> String {
    // No `FileSize`: the compressed size is known only once it is made (Nix takes a
    // narinfo without one).
    let mut info = NarInfo {
        store_path: meta.store_path.clone(),
        url: format!("nar/{}.nar{}", rec.root, nar.suffix()),
        compression: nar.name().into(),
        nar_hash,
        nar_size: rec.nar_size,
        references: meta.references.clone(),
        deriver: meta.deriver.clone(),
        sigs: meta.sigs.clone(),
        ca: meta.ca.clone(),
        ..NarInfo::default()
    };
    if let Some(key) = key {
        let ours = format!("{}:", key.name());
        if !info.sigs.iter().any(|s| s.starts_with(&ours)) {
            let fp = fingerprint(
                &info.store_path,
                &info.nar_hash_string(),
                info.nar_size,
                &info.references,
            );
            info.sigs.push(key.sign(&fp));
        }
    }
    info.render()
}

fn guix(
    rec: &RootRecord,
    meta: &NarInfoMeta,
    nar_hash: &[u8; 32],
    key: Option<&GuixSecretKey>,
    nar: NarCompression,
) -> String {
    let mut s = match meta.text.as_deref().and_then(guix_signed_part) {
        Some(signed) => {
            let mut s = signed.to_string();
            if !s.ends_with('\n') {
                s.push('\n');
            }
            s
        }
        None => {
            // As `guix publish` writes the fields above the signature.
            let mut s = String::with_capacity(1024);
            let _ = writeln!(s, "StorePath: {}", meta.store_path);
            let _ = writeln!(
                s,
                "NarHash: {}",
                narfs_nix::narinfo::nar_hash_string(nar_hash)
            );
            let _ = writeln!(s, "NarSize: {}", rec.nar_size);
            let _ = writeln!(s, "References: {}", meta.references.join(" "));
            if let Some(d) = &meta.deriver {
                let _ = writeln!(s, "Deriver: {d}");
            }
            if let Some(key) = key {
                let sig = key.signature(&s, GUIX_HOST);
                let _ = writeln!(s, "Signature: {sig}");
            }
            s
        }
    };
    match nar {
        NarCompression::Zstd => {
            // The zstd NAR first, then the plain one for a Guix without guile-zstd;
            // neither with `FileSize` (unknown for zstd, and Guix pairs sizes with
            // URLs by position, so it is all or none).
            let _ = writeln!(s, "URL: nar/{}.nar.zst", rec.root);
            let _ = writeln!(s, "Compression: zstd");
            let _ = writeln!(s, "URL: nar/{}.nar", rec.root);
            let _ = writeln!(s, "Compression: none");
        }
        // Guix reads no xz: its NARs stay uncompressed.
        NarCompression::None | NarCompression::Xz => {
            let _ = writeln!(s, "URL: nar/{}.nar", rec.root);
            let _ = writeln!(s, "Compression: none");
            let _ = writeln!(s, "FileSize: {}", rec.nar_size);
        }
    }
    s
}

#[cfg(test)]
#[path = "narinfo_tests.rs"]
mod tests;
