//! JSON Web Key Sets: the issuer's public keys.
//!
//! Only asymmetric keys are accepted (RSA, EC P-256/P-384, Ed25519): a
//! shared secret in a key set would let anyone who can read the set mint
//! tokens, and accepting HMAC tokens against public keys is the classic
//! key-confusion attack.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, JwkSet};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The key families, and the algorithms each may verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Family {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Family {
    pub(crate) fn allows(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Family::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Family::P256 => alg == ES256,
            Family::P384 => alg == ES384,
            Family::Ed25519 => alg == EdDSA,
        }
    }
}

pub struct Key {
    pub(crate) kid: Option<String>,
    pub(crate) family: Family,
    /// The `alg` the set pins for this key, if any.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

pub struct Jwks {
    pub keys: Vec<Key>,
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JSON Web Key Set ({0})")]
    Json(String),
    #[error("key {index}: {why}")]
    Key { index: usize, why: String },
    #[error("the key set has no keys")]
    Empty,
}

impl Jwks {
    pub fn parse(json: &[u8]) -> Result<Jwks, JwksError> {
        let set: JwkSet = serde_json::from_slice(json).map_err(|e| {
            // Position only: the message could quote key material.
            JwksError::Json(format!("line {} column {}", e.line(), e.column()))
        })?;
        let mut keys = Vec::with_capacity(set.keys.len());
        for (index, jwk) in set.keys.iter().enumerate() {
            keys.push(key(jwk).map_err(|why| JwksError::Key { index, why })?);
        }
        if keys.is_empty() {
            return Err(JwksError::Empty);
        }
        Ok(Jwks { keys })
    }

    /// Keys that may verify a token signed with `alg` and naming `kid`.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys.iter().filter(move |k| {
            let kid_ok = match kid {
                Some(kid) => k.kid.as_deref() == Some(kid),
                None => true,
            };
            kid_ok && k.family.allows(alg) && k.alg.is_none_or(|a| a == alg)
        })
    }

    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

fn key(jwk: &Jwk) -> Result<Key, String> {
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Family::P256,
            EllipticCurve::P384 => Family::P384,
            _ => return Err("unsupported elliptic curve (P-256 and P-384 are)".into()),
        },
        AlgorithmParameters::OctetKeyPair(okp) => match okp.curve {
            EllipticCurve::Ed25519 => Family::Ed25519,
            _ => return Err("unsupported OKP curve (Ed25519 is)".into()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "symmetric (oct) keys are refused: only public keys belong in a JWKS".into(),
            )
        }
        _ => return Err("unsupported key type".into()),
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(ka) => {
            let alg: Algorithm = ka
                .to_string()
                .parse()
                .map_err(|_| format!("unsupported alg {ka}"))?;
            if !family.allows(alg) {
                return Err(format!("alg {ka} does not fit a {family:?} key"));
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        family,
        alg,
        key,
    })
}
