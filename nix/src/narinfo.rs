//! Nix's `.narinfo` files: parsing what a binary cache wrote (for `narfs import`) and
//! rendering what `narfs serve` answers. Owns the hash formats Nix writes for
//! `NarHash` (`sha256:` + Nix base32, base16 in older caches, base64/SRI in some
//! tools); store paths are validated by [`crate::store_path`].
//!
//! Everything here is untrusted input: sizes are checked before use, every line is
//! bounded, and a store path or reference that is not `<32 Nix base32 chars>-<name>`
//! is refused, so no field can smuggle a `/` or `..` into a path built from it.

use std::fmt::Write as _;

use crate::base32;
pub use crate::store_path::{hash_part, is_base_name, is_hash_part};
use crate::store_path::{StoreDir, StorePath};

/// The store directory narfs serves and imports.
pub const STORE_DIR: &str = StoreDir::Nix.as_str();

/// Largest narinfo file accepted (real ones are well under 4 KiB; a path with very
/// many references and signatures stays far below this).
pub const MAX_NARINFO: usize = 1 << 20;

/// Why a narinfo was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum NarInfoError {
    /// Over [`MAX_NARINFO`] bytes.
    #[error("the narinfo is larger than {MAX_NARINFO} bytes")]
    TooLarge,
    /// Not UTF-8 text.
    #[error("the narinfo is not UTF-8")]
    NotUtf8,
    /// A non-empty line without `": "` (1-based line number).
    #[error("line {0}: not `Key: value`")]
    BadLine(usize),
    /// A required field is absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// A field that may appear once appears again.
    #[error("{0} appears twice")]
    Duplicate(&'static str),
    /// A field's value is not what Nix writes (its first 200 characters are kept).
    #[error("bad {field}: {value:?}")]
    Bad {
        /// The key.
        field: &'static str,
        /// The value, cut to 200 characters.
        value: String,
    },
}

/// One place a narinfo publishes its NAR: a `URL` with its `Compression` and
/// `FileSize`. Nix writes one; `guix publish` one per compression it baked.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NarFile {
    /// Where the (compressed) NAR is, relative to the cache root.
    pub url: String,
    /// `none`, `xz`, `zstd`, `bzip2`, `lzip`, `gzip`, ... (`bzip2` when absent, as Nix
    /// reads it).
    pub compression: String,
    /// Size of the compressed file, if given.
    pub file_size: Option<u64>,
}

/// A parsed narinfo: the fields Nix and Guix define that narfs uses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NarInfo {
    /// `<store dir>/<hash>-<name>`.
    pub store_path: String,
    /// The `URL` of the NAR narfs reads: of the [`NarInfo::nars`] the one it decodes
    /// fastest ([`decode_rank`]).
    pub url: String,
    /// That NAR's compression.
    pub compression: String,
    /// sha256 of the uncompressed NAR.
    pub nar_hash: [u8; 32],
    /// Size of the uncompressed NAR.
    pub nar_size: u64,
    /// Base names `<hash>-<name>`.
    pub references: Vec<String>,
    /// Base name of the derivation, if known (`unknown-deriver` reads as none).
    pub deriver: Option<String>,
    /// `Sig:` lines, `<key name>:<base64 signature>`.
    pub sigs: Vec<String>,
    /// Content address (`CA:`).
    pub ca: Option<String>,
    /// Guix's `Signature:` (`1;<host>;<base64 sexp>`), which signs the sha256 of exactly
    /// the text above its line.
    pub signature: Option<String>,
    /// Guix's `System:` (e.g. `x86_64-linux`).
    pub system: Option<String>,
    /// Every `URL`/`Compression`/`FileSize` group, in file order.
    pub nars: Vec<NarFile>,
    /// The narinfo as read, verbatim (empty for one narfs built itself): Guix's
    /// signature holds only over these exact bytes.
    pub text: String,
}

/// How fast narfs decodes a compression: lower is faster; the order is that of
/// decompression throughput (none, zstd, gzip, xz, lzip, bzip2), and `None` for one
/// narfs cannot read.
pub fn decode_rank(compression: &str) -> Option<u8> {
    Some(match compression {
        "none" | "" => 0,
        "zstd" => 1,
        "gzip" => 2,
        "xz" => 3,
        "lzip" => 4,
        "bzip2" => 5,
        _ => return None,
    })
}

impl NarInfo {
    /// Parses a narinfo of a `/nix/store` path as Nix writes it; unknown keys are
    /// ignored, as Nix does.
    ///
    /// ```
    /// use narfs_nix::NarInfo;
    ///
    /// let text = "StorePath: /nix/store/0123456789abcdfghijklmnpqrsvwxyz-hello-2.12\n\
    ///             URL: nar/1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3.nar.xz\n\
    ///             Compression: xz\n\
    ///             NarHash: sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3\n\
    ///             NarSize: 226560\n\
    ///             References: 0123456789abcdfghijklmnpqrsvwxyz-hello-2.12\n\
    ///             Deriver: unknown-deriver\n";
    /// let info = NarInfo::parse(text.as_bytes())?;
    /// assert_eq!(info.hash_part(), "0123456789abcdfghijklmnpqrsvwxyz");
    /// assert_eq!((info.compression.as_str(), info.nar_size), ("xz", 226560));
    /// assert_eq!(info.references, ["0123456789abcdfghijklmnpqrsvwxyz-hello-2.12"]);
    /// assert_eq!(info.deriver, None);
    /// assert_eq!(
    ///     info.nar_hash_string(),
    ///     "sha256:1w1fff338fvdw53sqgamddn1b2xgds473pv6y13gizdbqjv4i5p3"
    /// );
    /// // Nix's own errors are typed: a line without `: ` says which line.
    /// assert!(NarInfo::parse(b"StorePath /nix/store/x\n").is_err());
    /// # Ok::<(), narfs_nix::NarInfoError>(())
    /// ```
    pub fn parse(bytes: &[u8]) -> Result<NarInfo, NarInfoError> {
        NarInfo::parse_in(StoreDir::Nix, bytes)
    }

    /// Parses a narinfo whose `StorePath` must be in `dir`. A Guix narinfo (`dir` is
    /// [`StoreDir::Guix`]) may list several `URL`/`Compression`/`FileSize` groups: a key
    /// already set in the current group starts the next one.
    pub fn parse_in(dir: StoreDir, bytes: &[u8]) -> Result<NarInfo, NarInfoError> {
        if bytes.len() > MAX_NARINFO {
            return Err(NarInfoError::TooLarge);
        }
        let text = std::str::from_utf8(bytes).map_err(|_| NarInfoError::NotUtf8)?;
        let mut store_path = None;
        let mut nars: Vec<Group> = Vec::new();
        let mut nar_hash = None;
        let mut nar_size = None;
        let mut references = None;
        let mut deriver = None;
        let mut sigs = Vec::new();
        let mut ca = None;
        let mut signature = None;
        let mut system = None;
        for (i, line) in text.lines().enumerate() {
            if line.is_empty() {
                continue;
            }
            let (key, value) = line.split_once(": ").ok_or(NarInfoError::BadLine(i + 1))?;
            let bad = |field: &'static str| NarInfoError::Bad {
                field,
                value: value.chars().take(200).collect(),
            };
            fn once<T>(slot: &mut Option<T>, v: T, key: &'static str) -> Result<(), NarInfoError> {
                match slot.replace(v) {
                    Some(_) => Err(NarInfoError::Duplicate(key)),
                    None => Ok(()),
                }
            }
            match key {
                "StorePath" => {
                    StorePath::parse_in(dir, value).map_err(|_| bad("StorePath"))?;
                    once(&mut store_path, value.to_string(), "StorePath")?
                }
                "URL" | "Compression" | "FileSize" => {
                    let slot = match key {
                        "URL" => 0,
                        "Compression" => 1,
                        _ => 2,
                    };
                    let file_size = if slot == 2 {
                        Some(value.parse::<u64>().map_err(|_| bad("FileSize"))?)
                    } else {
                        None
                    };
                    let name = ["URL", "Compression", "FileSize"][slot];
                    if nars.last().is_none_or(|g| g.has(slot)) {
                        if !nars.is_empty() && dir != StoreDir::Guix {
                            return Err(NarInfoError::Duplicate(name));
                        }
                        nars.push(Group::default());
                    }
                    let g = nars.last_mut().expect("just pushed");
                    match slot {
                        0 => g.url = Some(value.to_string()),
                        1 => g.compression = Some(value.to_string()),
                        _ => g.file_size = file_size,
                    }
                }
                "Signature" => once(&mut signature, value.to_string(), "Signature")?,
                "System" => once(&mut system, value.to_string(), "System")?,
                "NarHash" => once(
                    &mut nar_hash,
                    parse_sha256(value).ok_or_else(|| bad("NarHash"))?,
                    "NarHash",
                )?,
                "NarSize" => once(
                    &mut nar_size,
                    value.parse::<u64>().map_err(|_| bad("NarSize"))?,
                    "NarSize",
                )?,
                "References" => {
                    let refs: Vec<String> = value.split_whitespace().map(str::to_string).collect();
                    if !refs.iter().all(|r| is_base_name(r)) {
                        return Err(bad("References"));
                    }
                    once(&mut references, refs, "References")?
                }
                "Deriver" if value != "unknown-deriver" => {
                    if !is_base_name(value) {
                        return Err(bad("Deriver"));
                    }
                    once(&mut deriver, value.to_string(), "Deriver")?
                }
                "Sig" => {
                    if !value.contains(':') || value.contains(char::is_whitespace) {
                        return Err(bad("Sig"));
                    }
                    sigs.push(value.to_string())
                }
                "CA" => {
                    if value.is_empty() || value.contains(char::is_whitespace) {
                        return Err(bad("CA"));
                    }
                    once(&mut ca, value.to_string(), "CA")?
                }
                _ => {}
            }
        }
        let nars = nars
            .into_iter()
            .map(|g| {
                Ok(NarFile {
                    url: g.url.ok_or(NarInfoError::Missing("URL"))?,
                    compression: g
                        .compression
                        .filter(|c| !c.is_empty())
                        .unwrap_or_else(|| "bzip2".into()),
                    file_size: g.file_size,
                })
            })
            .collect::<Result<Vec<_>, NarInfoError>>()?;
        // The one narfs decodes fastest; if it reads none, the first (its open fails
        // with the compression named).
        let best = nars
            .iter()
            .min_by_key(|n| decode_rank(&n.compression).unwrap_or(u8::MAX))
            .ok_or(NarInfoError::Missing("URL"))?;
        Ok(NarInfo {
            store_path: store_path.ok_or(NarInfoError::Missing("StorePath"))?,
            url: best.url.clone(),
            compression: best.compression.clone(),
            nar_hash: nar_hash.ok_or(NarInfoError::Missing("NarHash"))?,
            nar_size: nar_size.ok_or(NarInfoError::Missing("NarSize"))?,
            references: references.unwrap_or_default(),
            deriver,
            sigs,
            ca,
            signature,
            system,
            nars,
            text: text.to_string(),
        })
    }

    /// Parses a narinfo of a `/nix/store` or a `/gnu/store` path, in the dialect its
    /// first `StorePath` line names (a proxy passes on narinfos of both).
    pub fn parse_any(bytes: &[u8]) -> Result<NarInfo, NarInfoError> {
        let dir = bytes
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(b"StorePath: "))
            .and_then(|p| std::str::from_utf8(p).ok())
            .and_then(|p| StorePath::parse(p.trim_end_matches('\r')).ok())
            .map_or(StoreDir::Nix, |p| p.dir());
        NarInfo::parse_in(dir, bytes)
    }

    /// `sha256:<nix base32>`, as narfs records NarHash.
    pub fn nar_hash_string(&self) -> String {
        nar_hash_string(&self.nar_hash)
    }

    /// `<hash>-<name>`: the store path without its directory (empty if it does not
    /// parse, which [`NarInfo::parse_in`] made sure of).
    pub fn base_name(&self) -> &str {
        match StorePath::parse(&self.store_path) {
            Ok(p) => &self.store_path[p.dir().as_str().len() + 1..],
            Err(_) => "",
        }
    }

    /// The 32-character hash part of the store path.
    pub fn hash_part(&self) -> &str {
        match StorePath::parse(&self.store_path) {
            Ok(p) => {
                let start = p.dir().as_str().len() + 1;
                &self.store_path[start..start + crate::store_path::HASH_PART_LEN]
            }
            Err(_) => "",
        }
    }

    /// The narinfo as Nix writes it: the fields in Nix's order, `Deriver`, `Sig` and
    /// `CA` only when present; [`NarInfo::parse`] reads it back.
    pub fn render(&self) -> String {
        let mut s = String::with_capacity(512);
        let _ = writeln!(s, "StorePath: {}", self.store_path);
        let _ = writeln!(s, "URL: {}", self.url);
        let _ = writeln!(s, "Compression: {}", self.compression);
        let _ = writeln!(s, "NarHash: {}", self.nar_hash_string());
        let _ = writeln!(s, "NarSize: {}", self.nar_size);
        let _ = writeln!(s, "References: {}", self.references.join(" "));
        if let Some(d) = &self.deriver {
            let _ = writeln!(s, "Deriver: {d}");
        }
        for sig in &self.sigs {
            let _ = writeln!(s, "Sig: {sig}");
        }
        if let Some(ca) = &self.ca {
            let _ = writeln!(s, "CA: {ca}");
        }
        s
    }
}

/// A `URL`/`Compression`/`FileSize` group as it is read.
#[derive(Default)]
struct Group {
    url: Option<String>,
    compression: Option<String>,
    file_size: Option<u64>,
}

impl Group {
    /// Whether the key in `slot` (0 `URL`, 1 `Compression`, 2 `FileSize`) is set.
    fn has(&self, slot: usize) -> bool {
        match slot {
            0 => self.url.is_some(),
            1 => self.compression.is_some(),
            _ => self.file_size.is_some(),
        }
    }
}

/// The part of a Guix narinfo its `Signature:` covers, with that line: the text up to
/// the first `Signature:` (Guix signs the sha256 of exactly those bytes, wherever the
/// string stands) through the end of its line; `None` if it has none. Everything after
/// it may be rewritten without breaking the signature.
pub fn guix_signed_part(text: &str) -> Option<&str> {
    let at = text.find("Signature:")?;
    let end = text[at..].find('\n').map_or(text.len(), |i| at + i + 1);
    Some(&text[..end])
}

/// A NAR's sha256 as Nix prints `NarHash`: `sha256:` + 52 Nix base32 characters.
pub fn nar_hash_string(sha256: &[u8; 32]) -> String {
    format!("sha256:{}", base32::encode(sha256))
}

/// The `nix-cache-info` narfs serves for a store of `/nix/store` items.
pub fn cache_info() -> String {
    cache_info_in(StoreDir::Nix)
}

/// The `nix-cache-info` of a cache whose items are in `dir`.
pub fn cache_info_in(dir: StoreDir) -> String {
    format!("StoreDir: {dir}\nWantMassQuery: 1\nPriority: 40\n")
}

/// A sha256 as Nix spells it: `sha256:` followed by Nix base32 (52 chars), base16 (64)
/// or base64 (44), or SRI `sha256-<base64>`.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    if let Some(b64) = s.strip_prefix("sha256-") {
        return base64_32(b64);
    }
    let h = s.strip_prefix("sha256:")?;
    match h.len() {
        52 => base32::decode(h),
        64 => hex_32(h),
        44 => base64_32(h),
        _ => None,
    }
}

fn hex_32(s: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    for (i, pair) in s.as_bytes().chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        *out.get_mut(i)? = (hi * 16 + lo) as u8;
    }
    Some(out)
}

fn base64_32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 44 || !s.ends_with('=') || s.ends_with("==") {
        return None;
    }
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut bytes = Vec::with_capacity(33);
    for quad in s.as_bytes()[..44].chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for &c in quad {
            n <<= 6;
            if c == b'=' {
                pad += 1;
            } else {
                n |= val(c)?;
            }
        }
        let three = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        bytes.extend_from_slice(&three[..3 - pad]);
    }
    bytes.try_into().ok()
}

#[cfg(test)]
#[path = "narinfo_tests.rs"]
mod tests;
