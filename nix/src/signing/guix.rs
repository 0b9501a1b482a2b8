//! Guix's narinfo signatures, as `guix publish` makes them and `guix substitute`
//! checks them (`(guix pki)`, `(gcrypt pk-crypto)`): libgcrypt ECDSA over the Ed25519
//! curve, not RFC 8032 EdDSA. The signed value is the sha256 `H` of exactly the
//! narinfo text above its `Signature:` line; with the secret scalar `d` and public
//! point `Q = d·B`:
//!
//! - `e = int(H) >> 3` (the hash cut to the 253 bits of the group order `n`);
//! - `k` by RFC 6979 (HMAC-SHA256, `x = d`, `h1 = H`), so signing is deterministic;
//! - `r = x(k·B) mod n`, the *affine x* coordinate (libgcrypt's ECDSA on any curve);
//! - `s = k⁻¹(e + r·d) mod n`.
//!
//! The signature travels as `Signature: 1;<host>;<base64 of the S-expression>`
//! `(signature (data (flags rfc6979) (hash sha256 #H#)) (sig-val (ecdsa (r #R#) (s
//! #S#))) (public-key (ecc (curve Ed25519) (q #Q#))))`, printed as libgcrypt's
//! advanced form prints it (so a narinfo narfs signs is byte for byte what `guix
//! publish` would write with the same key). The point and scalar arithmetic on secrets
//! is curve25519-dalek's (constant time); only public values (the x coordinate of a
//! point, comparisons with `n`) go through big integers.

use std::sync::LazyLock;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity as _;
use hmac::{Hmac, Mac as _};
use num_bigint::BigUint;
use sha2::{Digest as _, Sha256};

use super::sexp::{hex_upper, Sexp};
use super::SignError;

/// A Guix signing key, as `guix archive --generate-key` writes
/// `/etc/guix/signing-key.sec`: `(private-key (ecc (curve Ed25519) (q #Q#) (d #D#)))`.
pub struct GuixSecretKey {
    /// `d` as the file has it, big-endian (RFC 6979's `int2octets(x)`).
    d_be: zeroize::Zeroizing<[u8; 32]>,
    d: Scalar,
    public: GuixPublicKey,
}

impl std::fmt::Debug for GuixSecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "GuixSecretKey(q = {})", hex_upper(&self.public.q))
    }
}

/// A Guix public key: the Ed25519 point `Q`, 32 bytes in EdDSA's encoding, as in
/// `/etc/guix/signing-key.pub` and `/etc/guix/acl`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GuixPublicKey {
    q: [u8; 32],
    point: EdwardsPoint,
}

/// The group order `n` and field prime `p`, and Edwards' `d`, as big integers.
struct Curve {
    n: BigUint,
    p: BigUint,
    d: BigUint,
    sqrt_m1: BigUint,
}

static CURVE: LazyLock<Curve> = LazyLock::new(|| {
    let p = (BigUint::from(1u8) << 255u32) - 19u32;
    let n = (BigUint::from(1u8) << 252u32)
        + BigUint::parse_bytes(b"14def9dea2f79cd65812631a5cf5d3ed", 16).expect("hex");
    let inv = |v: &BigUint| v.modpow(&(&p - 2u32), &p);
    let d = (&p - 121665u32) * inv(&BigUint::from(121666u32)) % &p;
    let sqrt_m1 = BigUint::from(2u8).modpow(&((&p - 1u32) >> 2u32), &p);
    Curve { n, p, d, sqrt_m1 }
});

/// The affine x coordinate of `pt` (a public value), from its compressed form.
fn affine_x(pt: &EdwardsPoint) -> BigUint {
    let c = &*CURVE;
    let mut bytes = pt.compress().to_bytes();
    let sign = bytes[31] >> 7;
    bytes[31] &= 0x7f;
    let y = BigUint::from_bytes_le(&bytes);
    let yy = &y * &y % &c.p;
    // x² = (y² − 1) / (d·y² + 1)
    let u = (&yy + &c.p - 1u32) % &c.p;
    let v = (&c.d * &yy + 1u32) % &c.p;
    let xx = u * v.modpow(&(&c.p - 2u32), &c.p) % &c.p;
    let mut x = xx.modpow(&((&c.p + 3u32) >> 3u32), &c.p);
    if &x * &x % &c.p != xx {
        x = x * &c.sqrt_m1 % &c.p;
    }
    if (x.bit(0) as u8) != sign {
        x = (&c.p - x) % &c.p;
    }
    x
}

/// A scalar from a non-negative integer below `n`.
fn scalar(v: &BigUint) -> Option<Scalar> {
    let le = v.to_bytes_le();
    if le.len() > 32 {
        return None;
    }
    let mut b = [0u8; 32];
    b[..le.len()].copy_from_slice(&le);
    Option::from(Scalar::from_canonical_bytes(b))
}

/// A scalar from any integer below 2²⁵⁶, reduced mod `n`.
fn reduced(v: &BigUint) -> Scalar {
    let mut b = [0u8; 32];
    let le = v.to_bytes_le();
    b[..le.len()].copy_from_slice(&le);
    Scalar::from_bytes_mod_order(b)
}

/// Minimal big-endian bytes of a scalar, as libgcrypt prints an MPI.
fn minimal_be(s: &Scalar) -> Vec<u8> {
    let mut b = s.to_bytes();
    b.reverse();
    let zeros = b.iter().take_while(|&&x| x == 0).count();
    b[zeros..].to_vec()
}

/// `bits2int` of a 256-bit string for the 253-bit `n`: its top 253 bits.
fn bits2int(h: &[u8; 32]) -> BigUint {
    BigUint::from_bytes_be(h) >> 3u32
}

fn hmac(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut m = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key length");
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().into()
}

/// RFC 6979's `k` for the hash `h` and the secret `x` (big-endian), as libgcrypt's
/// `_gcry_dsa_gen_rfc6979_k` makes it: the first candidate in `[1, n)`.
fn rfc6979_k(x: &[u8; 32], h: &[u8; 32]) -> Scalar {
    let c = &*CURVE;
    let z = bits2int(h) % &c.n;
    let mut h1 = [0u8; 32];
    let zb = z.to_bytes_be();
    h1[32 - zb.len()..].copy_from_slice(&zb);
    let mut v = [1u8; 32];
    let mut k = [0u8; 32];
    k = hmac(&k, &[&v, &[0], x, &h1]);
    v = hmac(&k, &[&v]);
    k = hmac(&k, &[&v, &[1], x, &h1]);
    v = hmac(&k, &[&v]);
    loop {
        v = hmac(&k, &[&v]);
        let cand = bits2int(&v);
        if let Some(s) = scalar(&cand).filter(|s| *s != Scalar::ZERO) {
            return s;
        }
        k = hmac(&k, &[&v, &[0]]);
        v = hmac(&k, &[&v]);
    }
}

impl GuixPublicKey {
    /// Reads `(public-key (ecc (curve Ed25519) (q #Q#)))` (a key file, an ACL entry).
    pub fn parse(text: &[u8]) -> Result<GuixPublicKey, SignError> {
        let sexp = Sexp::parse(text)?;
        let ecc = sexp
            .find("public-key")
            .ok_or(SignError::GuixKeyFormat("no public-key"))?;
        GuixPublicKey::from_ecc(&Sexp::List(ecc.to_vec()))
    }

    /// From the `(ecc (curve Ed25519) (q #Q#) …)` part of a key or signature.
    fn from_ecc(sexp: &Sexp) -> Result<GuixPublicKey, SignError> {
        check_curve(sexp)?;
        let q = sexp.value("q").ok_or(SignError::GuixKeyFormat("no q"))?;
        // libgcrypt also writes EdDSA points with a 0x40 prefix.
        let q = match q {
            [0x40, rest @ ..] if rest.len() == 32 => rest,
            _ => q,
        };
        let q: [u8; 32] = q
            .try_into()
            .map_err(|_| SignError::GuixKeyFormat("q is not 32 bytes"))?;
        let point = CompressedEdwardsY(q)
            .decompress()
            .ok_or(SignError::BadPoint)?;
        Ok(GuixPublicKey { q, point })
    }

    /// The key as `guix archive` prints it (what `guix archive --authorize` reads).
    pub fn to_sexp(&self) -> String {
        format!(
            "(public-key \n (ecc \n  (curve Ed25519)\n  (q #{}#)\n  )\n )\n",
            hex_upper(&self.q)
        )
    }

    /// Whether `narinfo`'s `Signature:` is valid and made by this key, as `guix
    /// substitute` decides (`valid-narinfo?`): the hash in the signature is the sha256
    /// of the text above the first `Signature:`, the key in the signature is this one,
    /// and the ECDSA equation holds.
    pub fn verify_narinfo(&self, narinfo: &str) -> Result<(), SignError> {
        let at = narinfo.find("Signature:").ok_or(SignError::Unsigned)?;
        let line = narinfo[at..].lines().next().unwrap_or_default();
        let value = line.strip_prefix("Signature:").unwrap_or_default().trim();
        let sexp = match value.splitn(3, ';').collect::<Vec<_>>()[..] {
            ["1", _host, b64] => B64.decode(b64).map_err(|_| SignError::SignatureFormat)?,
            _ => return Err(SignError::SignatureFormat),
        };
        let sexp = Sexp::parse(&sexp)?;
        let hash = sexp.find("hash").ok_or(SignError::SignatureFormat)?;
        let want: [u8; 32] = Sha256::digest(&narinfo.as_bytes()[..at]).into();
        match hash {
            [_, alg, h] if alg.atom() == Some(b"sha256") && h.atom() == Some(&want[..]) => {}
            [_, _, _] => return Err(SignError::HashMismatch),
            _ => return Err(SignError::SignatureFormat),
        }
        let signer = sexp.find("public-key").ok_or(SignError::SignatureFormat)?;
        if GuixPublicKey::from_ecc(&Sexp::List(signer.to_vec()))? != *self {
            return Err(SignError::Unauthorized);
        }
        let int = |name| {
            sexp.value(name)
                .map(BigUint::from_bytes_be)
                .ok_or(SignError::SignatureFormat)
        };
        let (r, s) = (int("r")?, int("s")?);
        self.verify_hash(&want, &r, &s)
    }

    fn verify_hash(&self, h: &[u8; 32], r: &BigUint, s: &BigUint) -> Result<(), SignError> {
        let c = &*CURVE;
        let nonzero = |v: &BigUint| scalar(v).filter(|s| *s != Scalar::ZERO);
        let (Some(rs), Some(ss)) = (nonzero(r), nonzero(s)) else {
            return Err(SignError::Invalid);
        };
        let w = ss.invert();
        let e = reduced(&bits2int(h));
        let x = EdwardsPoint::vartime_double_scalar_mul_basepoint(&(rs * w), &self.point, &(e * w));
        if x.is_identity() || affine_x(&x) % &c.n != *r {
            return Err(SignError::Invalid);
        }
        Ok(())
    }
}

fn check_curve(sexp: &Sexp) -> Result<(), SignError> {
    if sexp.value("curve") != Some(b"Ed25519") {
        return Err(SignError::GuixKeyFormat("not an Ed25519 ecc key"));
    }
    if sexp
        .find("flags")
        .is_some_and(|f| f.iter().any(|a| a.atom() == Some(b"eddsa")))
    {
        return Err(SignError::GuixKeyFormat(
            "an EdDSA key, which Guix does not sign with",
        ));
    }
    Ok(())
}

impl GuixSecretKey {
    /// Reads a secret key file; its `q`, if present, must be `d·B`.
    pub fn parse(text: &[u8]) -> Result<GuixSecretKey, SignError> {
        let sexp = Sexp::parse(text)?;
        let ecc = Sexp::List(
            sexp.find("private-key")
                .ok_or(SignError::GuixKeyFormat("no private-key"))?
                .to_vec(),
        );
        check_curve(&ecc)?;
        let d = ecc.value("d").ok_or(SignError::GuixKeyFormat("no d"))?;
        if d.len() > 32 {
            return Err(SignError::GuixKeyFormat("d is over 32 bytes"));
        }
        let mut d_be = zeroize::Zeroizing::new([0u8; 32]);
        d_be[32 - d.len()..].copy_from_slice(d);
        let mut le = zeroize::Zeroizing::new(*d_be);
        le.reverse();
        // libgcrypt does not reduce d (Guix's keys have d > n): only d mod n matters to
        // the curve, but RFC 6979 hashes d as written.
        let d = Scalar::from_bytes_mod_order(*le);
        if d == Scalar::ZERO {
            return Err(SignError::GuixKeyFormat(
                "d is a multiple of the group order",
            ));
        }
        let point = EdwardsPoint::mul_base(&d);
        let public = GuixPublicKey {
            q: point.compress().to_bytes(),
            point,
        };
        if ecc.value("q").is_some() && GuixPublicKey::from_ecc(&ecc)? != public {
            return Err(SignError::KeyMismatch);
        }
        Ok(GuixSecretKey { d_be, d, public })
    }

    /// A new random key, as `guix archive --generate-key` makes (`d` uniform below the
    /// group order, from 64 random bytes reduced).
    pub fn generate() -> Result<GuixSecretKey, SignError> {
        let d = loop {
            let d = Scalar::from_bytes_mod_order_wide(&*super::random_bytes::<64>()?);
            if d != Scalar::ZERO {
                break d;
            }
        };
        let mut d_be = zeroize::Zeroizing::new(d.to_bytes());
        d_be.reverse();
        let point = EdwardsPoint::mul_base(&d);
        let public = GuixPublicKey {
            q: point.compress().to_bytes(),
            point,
        };
        Ok(GuixSecretKey { d_be, d, public })
    }

    /// The secret key file's text, as libgcrypt prints `signing-key.sec`:
    /// `(private-key (ecc (curve Ed25519) (q #Q#) (d #D#)))`.
    pub fn to_sexp(&self) -> zeroize::Zeroizing<String> {
        zeroize::Zeroizing::new(format!(
            "(private-key \n (ecc \n  (curve Ed25519)\n  (q #{}#)\n  (d #{}#)\n  )\n )\n",
            hex_upper(&self.public.q),
            // All 32 bytes: libgcrypt reads d signed or unsigned, and a leading zero keeps
            // a top bit of 1 from reading as negative (d < n < 2²⁵³ leaves it 0 here).
            hex_upper(&self.d_be[..])
        ))
    }

    /// The public half.
    pub fn public(&self) -> &GuixPublicKey {
        &self.public
    }

    /// The value of the `Signature:` line for a narinfo whose text above that line is
    /// `above`: `1;<host>;<base64>` (Guix ignores `host`; `guix publish` puts its host
    /// name there).
    pub fn signature(&self, above: &str, host: &str) -> String {
        let h: [u8; 32] = Sha256::digest(above.as_bytes()).into();
        let (r, s) = self.sign_hash(&h);
        let sexp = format!(
            "(signature \n (data \n  (flags rfc6979)\n  (hash sha256 #{}#)\n  )\n \
             (sig-val \n  (ecdsa \n   (r #{}#)\n   (s #{}#)\n   )\n  )\n \
             (public-key \n  (ecc \n   (curve Ed25519)\n   (q #{}#)\n   )\n  )\n )\n",
            hex_upper(&h),
            hex_upper(&minimal_be(&r)),
            hex_upper(&minimal_be(&s)),
            hex_upper(&self.public.q)
        );
        format!("1;{host};{}", B64.encode(sexp))
    }

    /// libgcrypt's ECDSA of the hash `h`: `(r, s)`.
    fn sign_hash(&self, h: &[u8; 32]) -> (Scalar, Scalar) {
        let k = rfc6979_k(&self.d_be, h);
        let r = reduced(&affine_x(&EdwardsPoint::mul_base(&k)));
        let e = reduced(&bits2int(h));
        let s = k.invert() * (e + r * self.d);
        // r or s zero happens with probability ~2⁻²⁵²; libgcrypt would loop, we cannot
        // be asked to (the input would be a sha256 preimage of such a case).
        (r, s)
    }
}
