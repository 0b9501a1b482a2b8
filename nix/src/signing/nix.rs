//! Nix's narinfo signatures: `Sig: <key name>:<base64 Ed25519 signature>` (RFC 8032)
//! over the path's fingerprint, with keys in the `<name>:<base64>` files
//! `nix-store --generate-binary-cache-key` writes (a 64-byte secret: seed then public
//! key, as libsodium keeps it; a 32-byte public key).

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use ed25519_dalek::Signer as _;

use super::SignError;

/// What Nix signs for a store path: `1;<path>;<NarHash>;<NarSize>;<references>`, the
/// references as full store paths joined by `,`; `nar_hash` as narinfos write it
/// (`sha256:<nix base32>`).
pub fn fingerprint(
    store_path: &str,
    nar_hash: &str,
    nar_size: u64,
    references: &[String],
) -> String {
    let dir = store_path.rsplit_once('/').map_or("", |(d, _)| d);
    let refs: Vec<String> = references.iter().map(|r| format!("{dir}/{r}")).collect();
    format!("1;{store_path};{nar_hash};{nar_size};{}", refs.join(","))
}

/// A Nix secret key (`<name>:<base64 of 64 bytes>`).
pub struct NixSecretKey {
    name: String,
    key: ed25519_dalek::SigningKey,
}

impl std::fmt::Debug for NixSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "NixSecretKey({})", self.public())
    }
}

/// A Nix public key (`<name>:<base64 of 32 bytes>`), as in `trusted-public-keys`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NixPublicKey {
    name: String,
    key: ed25519_dalek::VerifyingKey,
}

/// Splits `<name>:<base64>` and decodes the base64 into exactly `N` bytes.
fn name_and_bytes<const N: usize>(text: &str) -> Result<(String, [u8; N]), SignError> {
    let (name, b64) = text.trim().split_once(':').ok_or(SignError::NixKeyFormat)?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        return Err(SignError::NixKeyFormat);
    }
    let bytes = B64.decode(b64).map_err(|_| SignError::NixKeyFormat)?;
    Ok((
        name.to_string(),
        bytes.try_into().map_err(|_| SignError::NixKeyFormat)?,
    ))
}

impl NixSecretKey {
    /// Reads the text of a secret key file; its second half must be the public key of
    /// its first (a file whose halves disagree is damaged).
    pub fn parse(text: &str) -> Result<NixSecretKey, SignError> {
        let (name, bytes) = name_and_bytes::<64>(text)?;
        let seed: [u8; 32] = bytes[..32].try_into().expect("32 of 64");
        let key = ed25519_dalek::SigningKey::from_bytes(&seed);
        if key.verifying_key().as_bytes()[..] != bytes[32..] {
            return Err(SignError::KeyMismatch);
        }
        Ok(NixSecretKey { name, key })
    }

    /// A new random key named `name`, as `nix-store --generate-binary-cache-key` makes.
    pub fn generate(name: &str) -> Result<NixSecretKey, SignError> {
        if name.is_empty() || name.contains(|c: char| c == ':' || c.is_whitespace()) {
            return Err(SignError::KeyName);
        }
        let seed = super::random_bytes::<32>()?;
        Ok(NixSecretKey {
            name: name.to_string(),
            key: ed25519_dalek::SigningKey::from_bytes(&seed),
        })
    }

    /// The secret key file's text (`<name>:<base64 of seed then public key>`, no
    /// newline, as Nix writes it).
    pub fn to_file_text(&self) -> zeroize::Zeroizing<String> {
        let bytes = zeroize::Zeroizing::new(self.key.to_keypair_bytes());
        zeroize::Zeroizing::new(format!("{}:{}", self.name, B64.encode(&bytes[..])))
    }

    /// The key's name (what `Sig:` lines start with).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public half, as `nix-store --generate-binary-cache-key` writes it.
    pub fn public(&self) -> NixPublicKey {
        NixPublicKey {
            name: self.name.clone(),
            key: self.key.verifying_key(),
        }
    }

    /// The `Sig:` value (`<name>:<base64>`) of `fingerprint`.
    pub fn sign(&self, fingerprint: &str) -> String {
        let sig = self.key.sign(fingerprint.as_bytes());
        format!("{}:{}", self.name, B64.encode(sig.to_bytes()))
    }
}

impl NixPublicKey {
    /// Reads `<name>:<base64 of 32 bytes>`.
    pub fn parse(text: &str) -> Result<NixPublicKey, SignError> {
        let (name, bytes) = name_and_bytes::<32>(text)?;
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| SignError::BadPoint)?;
        Ok(NixPublicKey { name, key })
    }

    /// Whether the `Sig:` value `sig` is this key's valid signature of `fingerprint`
    /// (a signature by another key name is not).
    pub fn verify(&self, fingerprint: &str, sig: &str) -> bool {
        let Some((name, b64)) = sig.split_once(':') else {
            return false;
        };
        let Ok(bytes) = B64.decode(b64) else {
            return false;
        };
        let Ok(sig) = ed25519_dalek::Signature::from_slice(&bytes) else {
            return false;
        };
        name == self.name && self.key.verify_strict(fingerprint.as_bytes(), &sig).is_ok()
    }
}

impl std::fmt::Display for NixPublicKey {
    /// `<name>:<base64>`, as `trusted-public-keys` takes it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.name, B64.encode(self.key.as_bytes()))
    }
}
