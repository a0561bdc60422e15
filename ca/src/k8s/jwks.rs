//! The service account issuer's public keys, as a JSON Web Key Set
//! (`/openid/v1/jwks` of the Kubernetes API server, or a file holding it).
//!
//! Only public keys the API server can sign tokens with are kept: RSA
//! (RS256) and EC P-256 / P-384 (ES256 / ES384). Symmetric (`oct`) keys
//! are never used, so a token signed with HMAC (HS256 "keyed" with a
//! public key, the classic key-confusion attack) finds no key. A key the
//! set holds but usher cannot use is skipped, not fatal; a set without any
//! usable key is an error.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

/// The algorithms a Kubernetes API server signs service account tokens
/// with (RSA keys: RS256; ECDSA keys: ES256 or ES384 by curve).
pub(crate) const ALGORITHMS: [Algorithm; 3] =
    [Algorithm::RS256, Algorithm::ES256, Algorithm::ES384];

/// One usable key.
pub(crate) struct Key {
    pub(crate) kid: Option<String>,
    /// The one algorithm it verifies.
    pub(crate) alg: Algorithm,
    pub(crate) key: DecodingKey,
}

/// A parsed key set.
pub(crate) struct Jwks {
    pub(crate) keys: Vec<Key>,
    /// Keys left out, and why (for the log).
    pub(crate) skipped: Vec<String>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys": [...]}`).
    pub(crate) fn parse(json: &[u8]) -> Result<Jwks, String> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let set: Set = serde_json::from_slice(json).map_err(|e| {
            // Position only: the message could quote key material.
            format!(
                "not a JSON Web Key Set {{\"keys\": [...]}} (line {} column {})",
                e.line(),
                e.column()
            )
        })?;
        let mut keys = Vec::new();
        let mut skipped = Vec::new();
        for (index, value) in set.keys.into_iter().enumerate() {
            let kid = value.get("kid").and_then(|k| k.as_str()).map(str::to_owned);
            let name = match &kid {
                Some(kid) => format!("key {index} (kid {kid:?})"),
                None => format!("key {index}"),
            };
            match serde_json::from_value::<Jwk>(value) {
                Ok(jwk) => match key(&jwk) {
                    Ok(k) => keys.push(k),
                    Err(why) => skipped.push(format!("{name}: {why}")),
                },
                Err(_) => skipped.push(format!("{name}: not a JSON Web Key usher knows")),
            }
        }
        if keys.is_empty() {
            return Err(match skipped.is_empty() {
                true => "the key set has no keys".to_owned(),
                false => format!("the key set has no usable key ({})", skipped.join("; ")),
            });
        }
        Ok(Jwks { keys, skipped })
    }

    /// True if a key has this `kid`.
    pub(crate) fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// The keys that may verify a token signed with `alg` and naming `kid`.
    pub(crate) fn candidates<'a>(
        &'a self,
        kid: Option<&'a str>,
        alg: Algorithm,
    ) -> impl Iterator<Item = &'a Key> + 'a {
        self.keys
            .iter()
            .filter(move |k| k.alg == alg && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)))
    }
}

fn key(jwk: &Jwk) -> Result<Key, String> {
    if let Some(usage) = &jwk.common.public_key_use {
        if *usage != PublicKeyUse::Signature {
            return Err("not a signing key (\"use\" is not \"sig\")".to_owned());
        }
    }
    let alg = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Algorithm::RS256,
        AlgorithmParameters::EllipticCurve(ec) => match ec.curve {
            EllipticCurve::P256 => Algorithm::ES256,
            EllipticCurve::P384 => Algorithm::ES384,
            _ => return Err("unsupported elliptic curve (P-256 and P-384 are)".to_owned()),
        },
        AlgorithmParameters::OctetKey(_) => {
            return Err(
                "a symmetric (oct) key is never used: only public keys verify tokens".into(),
            )
        }
        _ => return Err("unsupported key type (RSA and EC are)".to_owned()),
    };
    // A key that pins another algorithm than the one its type implies
    // (an RSA key marked PS256, say) is not one Kubernetes signs with.
    if let Some(pinned) = jwk.common.key_algorithm {
        let fits = matches!(
            (pinned, alg),
            (KeyAlgorithm::RS256, Algorithm::RS256)
                | (KeyAlgorithm::ES256, Algorithm::ES256)
                | (KeyAlgorithm::ES384, Algorithm::ES384)
        );
        if !fits {
            return Err(format!("its alg {pinned} is not one usher accepts for it"));
        }
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("unusable key: {e}"))?;
    Ok(Key {
        kid: jwk.common.key_id.clone(),
        alg,
        key,
    })
}
