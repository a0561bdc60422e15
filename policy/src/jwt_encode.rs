//! `io.jwt.encode_sign` and `io.jwt.encode_sign_raw`, which `opa test`
//! suites use to craft tokens, signing as OPA does (OPA's
//! `commonBuiltinJWTEncodeSign`): the key is a JWK, or a JWK set of which
//! the first key is used; the header's `alg` says how to sign:
//!
//! | `alg` | key |
//! |---|---|
//! | HS256, HS384, HS512 | `{"kty": "oct", "k": ...}` |
//! | RS256/384/512, PS256/384/512 | `{"kty": "RSA", "n", "e", "d", "p", "q", "dp", "dq", "qi"}` (2048 to 8192 bits) |
//! | ES256, ES384, ES512 | `{"kty": "EC", "crv": "P-256" / "P-384" / "P-521", "x", "y", "d"}` |
//! | EdDSA | `{"kty": "OKP", "crv": "Ed25519", "x", "d"}` |
//!
//! `encode_sign` writes the header, payload and key objects as OPA does
//! (Go's `encoding/json`: compact, keys sorted, `<>&` escaped), so an HMAC
//! or RSA PKCS#1 token is the very token OPA makes; ECDSA and PSS
//! signatures are randomised, as in OPA. A payload that is not JSON is
//! refused unless the header's `typ` says it is not a JWT.
//!
//! Undefined (OPA: an error): an unknown `alg`, a key of the wrong type or
//! curve for it, a malformed key, an RSA key without its CRT parameters
//! (`p`, `q`, `dp`, `dq`, `qi`; OPA computes missing ones).

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::{hmac, signature};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use regorus::Value;
use serde_json::Value as Json;

/// `io.jwt.encode_sign(headers, payload, key)`: objects, serialised as
/// OPA does.
pub(crate) fn encode_sign(args: &[Value]) -> Value {
    let (Some(header), Some(payload), Some(key)) = (args.first(), args.get(1), args.get(2)) else {
        return Value::Undefined;
    };
    let to_json = crate::more_builtins::to_json;
    let (Some(h), Some(p), Some(k)) = (to_json(header), to_json(payload), to_json(key)) else {
        return Value::Undefined;
    };
    sign(&h, &p, &k).map_or(Value::Undefined, Value::from)
}

/// `io.jwt.encode_sign_raw(headers, payload, key)`: JSON texts, used as
/// they are.
pub(crate) fn encode_sign_raw(args: &[Value]) -> Value {
    let (Some(Value::String(h)), Some(Value::String(p)), Some(Value::String(k))) =
        (args.first(), args.get(1), args.get(2))
    else {
        return Value::Undefined;
    };
    sign(h, p, k).map_or(Value::Undefined, Value::from)
}

/// base64url, padded or not (as JWKs are written in the wild).
fn b64(v: &Json, field: &str) -> Option<Vec<u8>> {
    let text = v.get(field)?.as_str()?;
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

/// The first key of a JWK or a JWK set.
fn first_key(jwk: &str) -> Option<Json> {
    let v: Json = serde_json::from_str(jwk).ok()?;
    match v.get("keys") {
        Some(Json::Array(keys)) => keys.first().cloned(),
        Some(_) => None,
        None => Some(v),
    }
}

/// The compact JWS of `payload` with `header`, signed with `jwk`.
pub(crate) fn sign(header: &str, payload: &str, jwk: &str) -> Option<String> {
    let h: Json = serde_json::from_str(header).ok()?;
    let alg = h.get("alg")?.as_str()?;
    let typ = h.get("typ").and_then(Json::as_str);
    if typ.is_none_or(|t| t == "JWT") && serde_json::from_str::<Json>(payload).is_err() {
        return None;
    }
    let key = first_key(jwk)?;
    let mut token = String::new();
    URL_SAFE_NO_PAD.encode_string(header.as_bytes(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut token);
    let sig = signature_of(alg, &key, token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    Some(token)
}

fn kty(key: &Json) -> Option<&str> {
    key.get("kty")?.as_str()
}

fn signature_of(alg: &str, key: &Json, message: &[u8]) -> Option<Vec<u8>> {
    let rng = SystemRandom::new();
    match alg {
        "HS256" | "HS384" | "HS512" => {
            if kty(key)? != "oct" {
                return None;
            }
            let algorithm = match alg {
                "HS256" => hmac::HMAC_SHA256,
                "HS384" => hmac::HMAC_SHA384,
                _ => hmac::HMAC_SHA512,
            };
            let secret = b64(key, "k")?;
            Some(
                hmac::sign(&hmac::Key::new(algorithm, &secret), message)
                    .as_ref()
                    .to_vec(),
            )
        }
        "RS256" | "RS384" | "RS512" | "PS256" | "PS384" | "PS512" => {
            if kty(key)? != "RSA" {
                return None;
            }
            let padding: &'static dyn signature::RsaEncoding = match alg {
                "RS256" => &signature::RSA_PKCS1_SHA256,
                "RS384" => &signature::RSA_PKCS1_SHA384,
                "RS512" => &signature::RSA_PKCS1_SHA512,
                "PS256" => &signature::RSA_PSS_SHA256,
                "PS384" => &signature::RSA_PSS_SHA384,
                _ => &signature::RSA_PSS_SHA512,
            };
            let pair = signature::RsaKeyPair::from_der(&rsa_private_key_der(key)?).ok()?;
            let mut sig = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &rng, message, &mut sig).ok()?;
            Some(sig)
        }
        "ES256" | "ES384" | "ES512" => {
            if kty(key)? != "EC" {
                return None;
            }
            let (crv, size, algorithm) = match alg {
                "ES256" => ("P-256", 32, &signature::ECDSA_P256_SHA256_FIXED_SIGNING),
                "ES384" => ("P-384", 48, &signature::ECDSA_P384_SHA384_FIXED_SIGNING),
                _ => ("P-521", 66, &signature::ECDSA_P521_SHA512_FIXED_SIGNING),
            };
            if key.get("crv")?.as_str()? != crv {
                return None;
            }
            let (x, y, d) = (b64(key, "x")?, b64(key, "y")?, b64(key, "d")?);
            if x.len() > size || y.len() > size || d.len() > size {
                return None;
            }
            // Fixed-size big-endian scalars; the uncompressed point 04||x||y.
            let pad = |b: &[u8]| {
                let mut v = vec![0; size - b.len()];
                v.extend_from_slice(b);
                v
            };
            let mut point = vec![0x04];
            point.extend(pad(&x));
            point.extend(pad(&y));
            let pair = signature::EcdsaKeyPair::from_private_key_and_public_key(
                algorithm,
                &pad(&d),
                &point,
            )
            .ok()?;
            Some(pair.sign(&rng, message).ok()?.as_ref().to_vec())
        }
        "EdDSA" => {
            if kty(key)? != "OKP" || key.get("crv")?.as_str()? != "Ed25519" {
                return None;
            }
            let pair = signature::Ed25519KeyPair::from_seed_and_public_key(
                &b64(key, "d")?,
                &b64(key, "x")?,
            )
            .ok()?;
            Some(pair.sign(message).as_ref().to_vec())
        }
        _ => None,
    }
}

/// A DER length.
fn der_len(out: &mut Vec<u8>, len: usize) {
    if len < 0x80 {
        out.push(len as u8);
        return;
    }
    let bytes = len.to_be_bytes();
    let first = bytes
        .iter()
        .position(|&b| b != 0)
        .unwrap_or(bytes.len() - 1);
    out.push(0x80 | (bytes.len() - first) as u8);
    out.extend_from_slice(&bytes[first..]);
}

/// A DER INTEGER holding the unsigned big-endian `bytes`.
fn der_uint(out: &mut Vec<u8>, bytes: &[u8]) {
    let first = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    let digits = &bytes[first..];
    let pad = digits.first().is_none_or(|&b| b & 0x80 != 0);
    out.push(0x02);
    der_len(out, digits.len() + usize::from(pad));
    if pad {
        out.push(0);
    }
    out.extend_from_slice(digits);
}

/// PKCS#1 `RSAPrivateKey` (RFC 8017 A.1.2) from a JWK's fields.
fn rsa_private_key_der(key: &Json) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    der_uint(&mut body, &[0]);
    for field in ["n", "e", "d", "p", "q", "dp", "dq", "qi"] {
        der_uint(&mut body, &b64(key, field)?);
    }
    let mut out = vec![0x30];
    der_len(&mut out, body.len());
    out.extend(body);
    Some(out)
}

#[cfg(test)]
mod tests;
