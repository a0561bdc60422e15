//! Verification keys as OPA's `getKeysFromCertOrJWK` accepts them (a PEM
//! certificate, a PEM public key, a JWK or a JWKS), and checking a
//! signature with one: aws-lc-rs through jsonwebtoken's crypto provider,
//! aws-lc-rs directly where jsonwebtoken has no algorithm (ES512).

use base64::Engine as _;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

use super::jwt::{err, Alg, Header, JwtError, B64URL};

/// A public key (or an HMAC secret from a JWKS), with the `alg` and `kid`
/// a JWK gave it.
pub(super) struct VerificationKey {
    alg: String,
    kid: String,
    material: KeyMaterial,
}

pub(super) enum KeyMaterial {
    /// PKCS#1 RSAPublicKey DER, or (n, e) from a JWK.
    Rsa(DecodingKey),
    /// Uncompressed point; the curve decides which ES* can use it.
    Ec(Curve, Vec<u8>),
    Ed25519(Vec<u8>),
    Symmetric(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Curve {
    P256,
    P384,
    P521,
}

/// Keys from a PEM certificate, a PEM public key, or a JWK / JWKS JSON
/// string, as OPA's `getKeysFromCertOrJWK` accepts them.
pub(super) fn parse_keys(text: &str) -> Result<Vec<VerificationKey>, JwtError> {
    if text.contains("-----BEGIN") {
        let (rest, pem) = x509_parser::pem::parse_x509_pem(text.as_bytes())
            .map_err(|e| JwtError(format!("failed to decode the PEM block: {e}")))?;
        if !rest.iter().all(u8::is_ascii_whitespace) {
            return err("extra data after a PEM certificate block");
        }
        let material = match pem.label.as_str() {
            "CERTIFICATE" => {
                let cert = pem
                    .parse_x509()
                    .map_err(|e| JwtError(format!("failed to parse a PEM certificate: {e}")))?;
                spki_key(cert.public_key())?
            }
            "PUBLIC KEY" => {
                let (_, spki) = SubjectPublicKeyInfo::from_der(&pem.contents)
                    .map_err(|e| JwtError(format!("failed to parse a PEM public key: {e}")))?;
                spki_key(&spki)?
            }
            _ => return err("failed to extract a Key from the PEM certificate"),
        };
        return Ok(vec![VerificationKey {
            alg: String::new(),
            kid: String::new(),
            material,
        }]);
    }
    let json: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| JwtError(format!("failed to parse a JWK key (set): {e}")))?;
    let jwks: Vec<&serde_json::Value> = match json.get("keys") {
        Some(serde_json::Value::Array(keys)) => keys.iter().collect(),
        Some(_) => return err("failed to parse a JWK key (set): `keys` is not an array"),
        None => vec![&json],
    };
    jwks.into_iter().map(jwk_key).collect()
}

fn spki_key(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyMaterial, JwtError> {
    let oid = &spki.algorithm.algorithm;
    let bits = spki.subject_public_key.data.to_vec();
    if *oid == OID_PKCS1_RSAENCRYPTION {
        return Ok(KeyMaterial::Rsa(DecodingKey::from_rsa_der(&bits)));
    }
    if *oid == OID_SIG_ED25519 {
        return Ok(KeyMaterial::Ed25519(bits));
    }
    if *oid == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        let curve = match curve {
            Some(c) if c == OID_EC_P256 => Curve::P256,
            Some(c) if c == OID_NIST_EC_P384 => Curve::P384,
            Some(c) if c == OID_NIST_EC_P521 => Curve::P521,
            _ => return err("unsupported elliptic curve"),
        };
        return Ok(KeyMaterial::Ec(curve, bits));
    }
    err(format!("unsupported public key algorithm {oid}"))
}

fn jwk_field<'a>(jwk: &'a serde_json::Value, name: &str) -> Result<&'a str, JwtError> {
    jwk.get(name)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| JwtError(format!("JWK: missing `{name}`")))
}

fn jwk_bytes(jwk: &serde_json::Value, name: &str) -> Result<Vec<u8>, JwtError> {
    B64URL
        .decode(jwk_field(jwk, name)?)
        .map_err(|e| JwtError(format!("JWK: `{name}` is not base64url: {e}")))
}

fn jwk_key(jwk: &serde_json::Value) -> Result<VerificationKey, JwtError> {
    let text = |name: &str| {
        jwk.get(name)
            .and_then(serde_json::Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let material = match jwk_field(jwk, "kty")? {
        "RSA" => {
            let n = jwk_bytes(jwk, "n")?;
            let e = jwk_bytes(jwk, "e")?;
            let unsigned = |b: &[u8]| -> Vec<u8> {
                let first = b.iter().position(|x| *x != 0).unwrap_or(b.len());
                b.get(first..).unwrap_or_default().to_vec()
            };
            KeyMaterial::Rsa(DecodingKey::from_rsa_raw_components(
                &unsigned(&n),
                &unsigned(&e),
            ))
        }
        "EC" => {
            let (curve, size) = match jwk_field(jwk, "crv")? {
                "P-256" => (Curve::P256, 32),
                "P-384" => (Curve::P384, 48),
                "P-521" => (Curve::P521, 66),
                other => return err(format!("JWK: unsupported curve {other}")),
            };
            let x = jwk_bytes(jwk, "x")?;
            let y = jwk_bytes(jwk, "y")?;
            if x.len() > size || y.len() > size {
                return err("JWK: coordinate longer than the curve");
            }
            // Uncompressed SEC1 point, coordinates left-padded to the field size.
            let mut point = Vec::with_capacity(1 + 2 * size);
            point.push(0x04);
            point.resize(1 + size - x.len(), 0);
            point.extend_from_slice(&x);
            point.resize(1 + 2 * size - y.len(), 0);
            point.extend_from_slice(&y);
            KeyMaterial::Ec(curve, point)
        }
        "OKP" => match jwk_field(jwk, "crv")? {
            "Ed25519" => KeyMaterial::Ed25519(jwk_bytes(jwk, "x")?),
            other => return err(format!("JWK: unsupported curve {other}")),
        },
        "oct" => KeyMaterial::Symmetric(jwk_bytes(jwk, "k")?),
        other => return err(format!("JWK: unsupported key type {other}")),
    };
    Ok(VerificationKey {
        alg: text("alg"),
        kid: text("kid"),
        material,
    })
}

/// Verifies `signature` over `message` with `alg` and `key`; a key of the
/// wrong kind for the algorithm never verifies.
pub(super) fn verify_signature(
    alg: Alg,
    key: &KeyMaterial,
    message: &[u8],
    signature: &[u8],
) -> bool {
    use aws_lc_rs::{hmac, signature as sig};
    let via_jsonwebtoken = |jalg: JwtAlgorithm, key: &DecodingKey| -> bool {
        let Some(provider) = CryptoProvider::try_get_default() else {
            return false;
        };
        match (provider.verifier_factory)(&jalg, key) {
            Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    };
    match (alg, key) {
        (Alg::HS256 | Alg::HS384 | Alg::HS512, KeyMaterial::Symmetric(secret)) => {
            let h = match alg {
                Alg::HS256 => hmac::HMAC_SHA256,
                Alg::HS384 => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            hmac::verify(&hmac::Key::new(h, secret), message, signature).is_ok()
        }
        (Alg::RS256, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::RS256, k),
        (Alg::RS384, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::RS384, k),
        (Alg::RS512, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::RS512, k),
        (Alg::PS256, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::PS256, k),
        (Alg::PS384, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::PS384, k),
        (Alg::PS512, KeyMaterial::Rsa(k)) => via_jsonwebtoken(JwtAlgorithm::PS512, k),
        (Alg::ES256, KeyMaterial::Ec(Curve::P256, point)) => {
            via_jsonwebtoken(JwtAlgorithm::ES256, &DecodingKey::from_ec_der(point))
        }
        (Alg::ES384, KeyMaterial::Ec(Curve::P384, point)) => {
            via_jsonwebtoken(JwtAlgorithm::ES384, &DecodingKey::from_ec_der(point))
        }
        // jsonwebtoken has no ES512: aws-lc-rs directly.
        (Alg::ES512, KeyMaterial::Ec(Curve::P521, point)) => {
            sig::UnparsedPublicKey::new(&sig::ECDSA_P521_SHA512_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        (Alg::EdDSA, KeyMaterial::Ed25519(raw)) => {
            via_jsonwebtoken(JwtAlgorithm::EdDSA, &DecodingKey::from_ed_der(raw))
        }
        _ => false,
    }
}

/// Tries the keys as OPA does: the key whose `kid` matches the header's,
/// else every key whose `alg` (if it has one) matches.
pub(super) fn verify_with_keys(
    alg: Alg,
    header: &Header,
    keys: &[VerificationKey],
    message: &[u8],
    signature: &[u8],
) -> bool {
    if !header.kid.is_empty() {
        if let Some(key) = keys.iter().find(|k| k.kid == header.kid) {
            return verify_signature(alg, &key.material, message, signature);
        }
    }
    keys.iter()
        .filter(|k| k.alg.is_empty() || k.alg == header.alg)
        .any(|k| verify_signature(alg, &k.material, message, signature))
}
