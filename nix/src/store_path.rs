//! Store paths: `<store dir>/<hash>-<name>`, with the hash part 32 Nix base32
//! characters (160 bits) and the name as Nix allows it. Nix's store is `/nix/store`,
//! Guix's `/gnu/store`; the grammar is the same.
//!
//! A store path read from a narinfo or a URL is untrusted: one that parses here has no
//! `/`, no `..` and no leading `.` in its base name, so a path built from it stays
//! where it is put.

use std::fmt;

use crate::base32;

/// Length of a store path's hash part.
pub const HASH_PART_LEN: usize = 32;

/// Longest name Nix accepts after the hash part.
pub const MAX_NAME_LEN: usize = 211;

/// The store directory a store path lives in.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreDir {
    /// `/nix/store`, Nix's.
    #[default]
    Nix,
    /// `/gnu/store`, Guix's.
    Guix,
}

impl StoreDir {
    /// The directory, as `StoreDir:` in `nix-cache-info` spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            StoreDir::Nix => "/nix/store",
            StoreDir::Guix => "/gnu/store",
        }
    }

    /// The store directory spelled `s`, if it is one narfs knows.
    pub fn from_path(s: &str) -> Option<StoreDir> {
        [StoreDir::Nix, StoreDir::Guix]
            .into_iter()
            .find(|d| d.as_str() == s)
    }
}

impl fmt::Display for StoreDir {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a string is not a store path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StorePathError {
    /// It does not start with `<store dir>/`.
    #[error("not in {0}")]
    NotInStore(StoreDir),
    /// The base name is not `<32 Nix base32 characters>-<name>`.
    #[error("the base name is not <32 Nix base32 characters>-<name>")]
    BadHashPart,
    /// The name is empty, longer than 211 bytes, starts with `.`, or holds a character
    /// outside `[A-Za-z0-9+-._?=]`.
    #[error("the name is not a Nix store path name")]
    BadName,
}

/// A parsed store path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct StorePath {
    dir: StoreDir,
    /// `<hash>-<name>`, validated.
    base: String,
}

impl StorePath {
    /// Parses `s` as a store path in `dir`.
    pub fn parse_in(dir: StoreDir, s: &str) -> Result<StorePath, StorePathError> {
        let base = s
            .strip_prefix(dir.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or(StorePathError::NotInStore(dir))?;
        check_base_name(base)?;
        Ok(StorePath {
            dir,
            base: base.to_string(),
        })
    }

    /// Parses `s` as a store path in any store directory narfs knows.
    pub fn parse(s: &str) -> Result<StorePath, StorePathError> {
        let dir = if s.starts_with("/gnu/store/") {
            StoreDir::Guix
        } else {
            StoreDir::Nix
        };
        StorePath::parse_in(dir, s)
    }

    /// The store directory.
    pub fn dir(&self) -> StoreDir {
        self.dir
    }

    /// `<hash>-<name>`: what `References:` and `Deriver:` list.
    pub fn base_name(&self) -> &str {
        &self.base
    }

    /// The 32-character hash part, by which a binary cache names its narinfo.
    pub fn hash_part(&self) -> &str {
        &self.base[..HASH_PART_LEN]
    }

    /// The name after the hash part.
    pub fn name(&self) -> &str {
        &self.base[HASH_PART_LEN + 1..]
    }
}

impl fmt::Display for StorePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dir, self.base)
    }
}

/// Whether `s` is 32 Nix base32 characters (a store path's hash part).
pub fn is_hash_part(s: &str) -> bool {
    s.len() == HASH_PART_LEN && base32::is_base32(s)
}

/// Whether `s` is `<hash>-<name>` with Nix's rules for names (at most 211 bytes of
/// `[A-Za-z0-9+-._?=]`, not starting with `.`).
pub fn is_base_name(s: &str) -> bool {
    check_base_name(s).is_ok()
}

fn check_base_name(s: &str) -> Result<(), StorePathError> {
    let (Some(hash), Some(name)) = (s.get(..HASH_PART_LEN), s.get(HASH_PART_LEN + 1..)) else {
        return Err(StorePathError::BadHashPart);
    };
    if !is_hash_part(hash) || s.as_bytes()[HASH_PART_LEN] != b'-' {
        return Err(StorePathError::BadHashPart);
    }
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+-._?=".contains(&b));
    ok.then_some(()).ok_or(StorePathError::BadName)
}

/// The hash part of `/nix/store/<hash>-<name>`, if it is one.
pub fn hash_part(store_path: &str) -> Option<&str> {
    let base = store_path
        .strip_prefix(StoreDir::Nix.as_str())?
        .strip_prefix('/')?;
    is_base_name(base).then(|| &base[..HASH_PART_LEN])
}

#[cfg(test)]
mod tests {
    use super::*;

    const HASH: &str = "nk9m6a5mswl5hr0hil41ph7m8fs7gfij";

    #[test]
    fn parses_nix_and_guix_paths() {
        let p = StorePath::parse(&format!("/nix/store/{HASH}-hello-2.12")).unwrap();
        assert_eq!(
            (p.dir(), p.hash_part(), p.name()),
            (StoreDir::Nix, HASH, "hello-2.12")
        );
        assert_eq!(p.to_string(), format!("/nix/store/{HASH}-hello-2.12"));
        let g = StorePath::parse(&format!("/gnu/store/{HASH}-guile-3.0.9")).unwrap();
        assert_eq!((g.dir(), g.name()), (StoreDir::Guix, "guile-3.0.9"));
        assert_eq!(g.base_name(), format!("{HASH}-guile-3.0.9"));
        assert_eq!(
            StorePath::parse_in(StoreDir::Nix, &g.to_string()),
            Err(StorePathError::NotInStore(StoreDir::Nix))
        );
        assert_eq!(StoreDir::from_path("/gnu/store"), Some(StoreDir::Guix));
        assert_eq!(StoreDir::from_path("/gnu/store/"), None);
    }

    #[test]
    fn refuses_what_nix_refuses() {
        let long = "a".repeat(MAX_NAME_LEN);
        assert!(is_base_name(&format!("{HASH}-{long}")));
        for (base, why) in [
            (format!("{HASH}-{long}a"), StorePathError::BadName),
            (format!("{HASH}-.hidden"), StorePathError::BadName),
            (format!("{HASH}-a/b"), StorePathError::BadName),
            (format!("{HASH}-"), StorePathError::BadName),
            (format!("{HASH}-caf\u{e9}"), StorePathError::BadName),
            (format!("{HASH}_x"), StorePathError::BadHashPart),
            (
                format!("{}-x", HASH.replace('n', "e")),
                StorePathError::BadHashPart,
            ),
            ("../../etc/passwd".to_string(), StorePathError::BadHashPart),
            (HASH.to_string(), StorePathError::BadHashPart),
        ] {
            assert_eq!(
                StorePath::parse(&format!("/nix/store/{base}")),
                Err(why),
                "{base}"
            );
        }
        assert_eq!(
            StorePath::parse(&format!("/nix/store//{HASH}-x")),
            Err(StorePathError::BadHashPart)
        );
        assert_eq!(hash_part(&format!("/nix/store/{HASH}-x")), Some(HASH));
        assert_eq!(hash_part(&format!("/gnu/store/{HASH}-x")), None);
        assert!(!is_hash_part(&HASH[1..]));
    }
}
