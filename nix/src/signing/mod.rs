//! Signing narinfos, in both dialects, for the items `narfs serve` publishes that no
//! cache signed before it (what narfs encoded itself):
//!
//! - [`nix`]: `Sig: <name>:<base64>`, RFC 8032 Ed25519 over the path's fingerprint,
//!   with the keys of `nix-store --generate-binary-cache-key`;
//! - [`guix`]: `Signature: 1;<host>;<base64 S-expression>`, libgcrypt's ECDSA over the
//!   Ed25519 curve of the sha256 of the text above that line, with the keys of `guix
//!   archive --generate-key`.
//!
//! Both verify too (what the tests check real signatures with). One key file is told
//! from the other by its first character: a Guix key is an S-expression.

pub mod guix;
pub mod nix;
pub mod sexp;

pub use guix::{GuixPublicKey, GuixSecretKey};
pub use nix::{fingerprint, NixPublicKey, NixSecretKey};

/// Why a key or a signature was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum SignError {
    /// A Nix key that is not `<name>:<base64>` of 64 (secret) or 32 (public) bytes.
    #[error("not a Nix key: expected <name>:<base64 of the key>")]
    NixKeyFormat,
    /// A secret key whose public half is not the one its secret gives.
    #[error("the key's public half does not match its secret")]
    KeyMismatch,
    /// A public key that is not a point of Ed25519.
    #[error("the public key is not a point of Ed25519")]
    BadPoint,
    /// Not an S-expression libgcrypt would read.
    #[error("not a Guix key or signature S-expression")]
    Sexp(#[from] sexp::SexpError),
    /// An S-expression that is not a Guix Ed25519 key (what is wrong with it).
    #[error("not a Guix Ed25519 key: {0}")]
    GuixKeyFormat(&'static str),
    /// A narinfo without a `Signature:` line.
    #[error("the narinfo has no Signature: line")]
    Unsigned,
    /// A `Signature:` that is not `1;<host>;<base64 S-expression>` of a signature.
    #[error("the Signature: is not 1;<host>;<base64 of a signature S-expression>")]
    SignatureFormat,
    /// The signature is of another text than the one above its line.
    #[error("the signature signs another text than the narinfo's")]
    HashMismatch,
    /// Made by another key than the one checked against.
    #[error("the signature is by another key")]
    Unauthorized,
    /// The ECDSA equation does not hold.
    #[error("the signature does not verify")]
    Invalid,
    /// A Nix key name that is empty or holds `:` or white space (it starts the key
    /// file's `<name>:` and every `Sig:`).
    #[error("a Nix key name must be non-empty, without ':' or white space")]
    KeyName,
    /// The operating system gave no random bytes for a new key.
    #[error("cannot get random bytes for a new key")]
    Random(#[source] getrandom::Error),
}

/// `N` bytes from the operating system's random source (a new key's secret).
fn random_bytes<const N: usize>() -> Result<zeroize::Zeroizing<[u8; N]>, SignError> {
    let mut b = zeroize::Zeroizing::new([0u8; N]);
    getrandom::getrandom(&mut b[..]).map_err(SignError::Random)?;
    Ok(b)
}

/// A signing key of either dialect, as read from its file.
#[derive(Debug)]
pub enum SecretKey {
    /// From `nix-store --generate-binary-cache-key`.
    Nix(NixSecretKey),
    /// From `guix archive --generate-key`.
    Guix(GuixSecretKey),
}

impl SecretKey {
    /// Reads a key file's text: an S-expression is a Guix key, anything else a Nix one.
    pub fn parse(text: &[u8]) -> Result<SecretKey, SignError> {
        if text.trim_ascii_start().starts_with(b"(") {
            return Ok(SecretKey::Guix(GuixSecretKey::parse(text)?));
        }
        let text = std::str::from_utf8(text).map_err(|_| SignError::NixKeyFormat)?;
        Ok(SecretKey::Nix(NixSecretKey::parse(text)?))
    }
}

#[cfg(test)]
mod tests;
