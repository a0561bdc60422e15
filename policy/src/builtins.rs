//! `io.jwt.*` for Rego, supplied to regorus as extensions.
//!
//! regorus has no `io.jwt.*` builtins, so usher provides them with OPA's
//! semantics (OPA's `topdown/tokens.go` and its test cases are the
//! reference):
//!
//! | builtin | result |
//! |---|---|
//! | `io.jwt.decode(token)` | `[header, payload, signature_hex]`, no verification |
//! | `io.jwt.decode_verify(token, constraints)` | `[valid, header, payload]`; `[false, {}, {}]` when the signature or a constraint fails |
//! | `io.jwt.verify_rs256/384/512`, `verify_ps256/384/512`, `verify_es256/384/512`, `verify_eddsa(token, key)` | `true` when the signature verifies with `key`: a PEM certificate, a PEM public key, or a JWK / JWKS (JSON string) |
//! | `io.jwt.verify_hs256/384/512(token, secret)` | `true` when the HMAC verifies with the secret string |
//!
//! `decode_verify`'s constraints are OPA's: `cert` (PEM certificate, PEM
//! public key or JWKS) or `secret` (exactly one of them), `alg`, `iss`,
//! `aud`, `time` (nanoseconds since the epoch; the current time when absent).
//! `exp` and `nbf` are checked against that time, `aud` in the token must be
//! matched by the `aud` constraint, a `cty: JWT` token is verified and
//! unwrapped recursively.
//!
//! Differences from OPA, all on the safe side:
//! - `alg: none` (or any algorithm OPA does not know) is never accepted:
//!   `decode_verify` answers `[false, {}, {}]` (OPA raises an error).
//! - An HMAC algorithm with a `cert` key, or an asymmetric algorithm with a
//!   `secret`, answers `false` (OPA raises an error).
//! - RSA keys shorter than 2048 bits are refused (aws-lc-rs' floor).
//!
//! A malformed token or key makes the call *undefined*, as OPA does without
//! `--strict-builtin-errors` (usher runs regorus' builtins non-strict too);
//! [`decode`], [`decode_verify`] and [`verify`] return the error itself.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::{Algorithm as JwtAlgorithm, DecodingKey};
use regorus::{Engine, Value};
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_NIST_EC_P521,
    OID_PKCS1_RSAENCRYPTION, OID_SIG_ED25519,
};
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

use std::time::Duration;

use crate::engine::PolicyError;

#[cfg(test)]
mod tests;

/// Every builtin usher provides that regorus lacks (`io.jwt.*`,
/// `crypto.x509.*`, and those of [`crate::more_builtins`]), with its number
/// of arguments.
pub const JWT_BUILTINS: &[(&str, u8)] = &[
    ("http.send", 1),
    ("io.jwt.encode_sign", 3),
    ("io.jwt.encode_sign_raw", 3),
    ("crypto.x509.parse_certificates", 1),
    ("crypto.x509.parse_and_verify_certificates", 1),
    ("io.jwt.decode", 1),
    ("io.jwt.decode_verify", 2),
    ("io.jwt.verify_rs256", 2),
    ("io.jwt.verify_rs384", 2),
    ("io.jwt.verify_rs512", 2),
    ("io.jwt.verify_ps256", 2),
    ("io.jwt.verify_ps384", 2),
    ("io.jwt.verify_ps512", 2),
    ("io.jwt.verify_es256", 2),
    ("io.jwt.verify_es384", 2),
    ("io.jwt.verify_es512", 2),
    ("io.jwt.verify_eddsa", 2),
    ("io.jwt.verify_hs256", 2),
    ("io.jwt.verify_hs384", 2),
    ("io.jwt.verify_hs512", 2),
    ("crypto.sha256", 1),
    ("crypto.sha1", 1),
    ("crypto.hmac.sha256", 2),
    ("crypto.hmac.sha1", 2),
    ("crypto.hmac.sha512", 2),
    ("crypto.hmac.equal", 2),
    ("crypto.md5", 1),
    ("crypto.hmac.md5", 2),
    ("net.cidr_intersects", 2),
    ("net.cidr_merge", 1),
    ("net.cidr_contains_matches", 2),
    ("array.flatten", 1),
];

/// Builtins regorus has but usher replaces: with bounded versions (a
/// single builtin call cannot be interrupted by the evaluation timer, so
/// `numbers.range(1, 1e12)` would try to allocate terabytes at once), and
/// with OPA's behaviour where regorus' differs (`glob.match`, see
/// [`crate::glob`]; `sprintf`, `json.marshal`, `time.add_date`, `semver.*`,
/// `yaml.unmarshal`, `regex.template_match`: see [`crate::more_builtins`]).
/// Registered only for the policies that call them (which then run on the
/// interpreter, as with every extension).
pub const BOUNDED_BUILTINS: &[(&str, u8)] = &[
    ("numbers.range", 2),
    ("numbers.range_step", 3),
    ("glob.match", 3),
    ("sprintf", 2),
    ("json.marshal", 1),
    ("json.marshal_with_options", 2),
    ("time.add_date", 4),
    ("semver.is_valid", 1),
    ("semver.compare", 2),
    ("yaml.unmarshal", 1),
    ("yaml.is_valid", 1),
    ("regex.template_match", 4),
];

/// The most elements `numbers.range` / `numbers.range_step` may produce.
pub const MAX_RANGE_ELEMENTS: u64 = 1_000_000;

/// A malformed token, key or argument (the message says which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(pub String);

fn err<T>(msg: impl Into<String>) -> Result<T, JwtError> {
    Err(JwtError(msg.into()))
}

/// A JWS signature algorithm OPA knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
    HS256,
    HS384,
    HS512,
}

impl Alg {
    /// The algorithm for a JOSE `alg` value; `None` for `none` and anything unknown.
    pub fn from_name(name: &str) -> Option<Alg> {
        Some(match name {
            "RS256" => Alg::RS256,
            "RS384" => Alg::RS384,
            "RS512" => Alg::RS512,
            "PS256" => Alg::PS256,
            "PS384" => Alg::PS384,
            "PS512" => Alg::PS512,
            "ES256" => Alg::ES256,
            "ES384" => Alg::ES384,
            "ES512" => Alg::ES512,
            "EdDSA" => Alg::EdDSA,
            "HS256" => Alg::HS256,
            "HS384" => Alg::HS384,
            "HS512" => Alg::HS512,
            _ => return None,
        })
    }

    fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }
}

/// Registers every builtin of [`JWT_BUILTINS`] on `engine`.
pub fn register(engine: &mut Engine) -> Result<(), PolicyError> {
    for (name, _) in JWT_BUILTINS {
        register_one(engine, name)?;
    }
    Ok(())
}

/// Registers one builtin of [`JWT_BUILTINS`] or [`BOUNDED_BUILTINS`] by name.
pub(crate) fn register_one(engine: &mut Engine, name: &str) -> Result<(), PolicyError> {
    let fail = |e: anyhow::Error| PolicyError::Compile(format!("cannot register {name}: {e}"));
    // Extensions must be Clone (regorus clones them with the engine): plain
    // closures over Copy data.
    // crypto.sha256, crypto.hmac.*, net.cidr_merge, array.flatten...: a
    // function pointer each.
    if let Some(f) = crate::more_builtins::function(name) {
        let listed = JWT_BUILTINS.iter().chain(BOUNDED_BUILTINS);
        let Some((_, nargs)) = listed.into_iter().find(|(n, _)| *n == name) else {
            return Err(PolicyError::Compile(format!("no builtin {name}")));
        };
        return engine
            .add_extension(
                name.into(),
                *nargs,
                Box::new(move |args: Vec<Value>| -> anyhow::Result<Value> { Ok(f(&args)) }),
            )
            .map_err(fail);
    }
    match name {
        "io.jwt.decode" => engine
            .add_extension(
                name.into(),
                1,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    Ok(undefined_on_error(first_str(&args).and_then(decode)))
                }),
            )
            .map_err(fail),
        "io.jwt.decode_verify" => engine
            .add_extension(
                name.into(),
                2,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    let constraints = args.get(1).unwrap_or(&Value::Undefined);
                    Ok(undefined_on_error(
                        first_str(&args).and_then(|t| decode_verify(t, constraints)),
                    ))
                }),
            )
            .map_err(fail),
        "numbers.range" => engine
            .add_extension(
                name.into(),
                2,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    bounded_range(&args, false)
                }),
            )
            .map_err(fail),
        "io.jwt.encode_sign" => engine
            .add_extension(
                name.into(),
                3,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    Ok(crate::jwt_encode::encode_sign(&args))
                }),
            )
            .map_err(fail),
        "io.jwt.encode_sign_raw" => engine
            .add_extension(
                name.into(),
                3,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    Ok(crate::jwt_encode::encode_sign_raw(&args))
                }),
            )
            .map_err(fail),
        "http.send" => register_http_send(engine, crate::http_send::MAX_TIMEOUT),
        "crypto.x509.parse_certificates" => engine
            .add_extension(
                name.into(),
                1,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    Ok(crate::x509::parse_certificates(&args))
                }),
            )
            .map_err(fail),
        "crypto.x509.parse_and_verify_certificates" => engine
            .add_extension(
                name.into(),
                1,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    Ok(crate::x509::parse_and_verify_certificates(&args))
                }),
            )
            .map_err(fail),
        "glob.match" => engine
            .add_extension(
                name.into(),
                3,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> { Ok(glob_match(&args)) }),
            )
            .map_err(fail),
        "numbers.range_step" => engine
            .add_extension(
                name.into(),
                3,
                Box::new(|args: Vec<Value>| -> anyhow::Result<Value> {
                    bounded_range(&args, true)
                }),
            )
            .map_err(fail),
        _ => {
            let alg = match name.strip_prefix("io.jwt.verify_") {
                Some("eddsa") => Alg::EdDSA,
                Some(suffix) => match Alg::from_name(&suffix.to_ascii_uppercase()) {
                    Some(alg) => alg,
                    None => return Err(PolicyError::Compile(format!("no builtin {name}"))),
                },
                None => return Err(PolicyError::Compile(format!("no builtin {name}"))),
            };
            engine
                .add_extension(
                    name.into(),
                    2,
                    Box::new(move |args: Vec<Value>| -> anyhow::Result<Value> {
                        let key = match args.get(1) {
                            Some(Value::String(s)) => Ok(s.as_ref()),
                            _ => err("the key must be a string"),
                        };
                        Ok(undefined_on_error(first_str(&args).and_then(|t| {
                            key.and_then(|k| verify(alg, t, k)).map(Value::from)
                        })))
                    }),
                )
                .map_err(fail)
        }
    }
}

/// `http.send`, its calls capped at `cap` (the evaluation timeout when a
/// policy is compiled).
pub(crate) fn register_http_send(engine: &mut Engine, cap: Duration) -> Result<(), PolicyError> {
    engine
        .add_extension(
            "http.send".into(),
            1,
            Box::new(move |args: Vec<Value>| -> anyhow::Result<Value> {
                Ok(crate::http_send::send(&args, cap))
            }),
        )
        .map_err(|e| PolicyError::Compile(format!("cannot register http.send: {e}")))
}

/// Checks, once, that jsonwebtoken has exactly one crypto backend (it would
/// panic at the first verification otherwise).
pub(crate) fn check_crypto_provider() -> Result<(), PolicyError> {
    match CryptoProvider::try_get_default() {
        Some(_) => Ok(()),
        None => Err(PolicyError::Compile(
            "jsonwebtoken has no single crypto backend: io.jwt.* cannot verify".into(),
        )),
    }
}

/// `glob.match(pattern, delimiters, match)`: undefined for arguments of
/// the wrong type or a malformed pattern, as OPA's non-strict mode has it.
fn glob_match(args: &[Value]) -> Value {
    let (Some(Value::String(pattern)), Some(delims), Some(Value::String(input))) =
        (args.first(), args.get(1), args.get(2))
    else {
        return Value::Undefined;
    };
    let delimiters: Option<Vec<char>> = match delims {
        Value::Null => None,
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items.iter() {
                let Value::String(s) = item else {
                    return Value::Undefined;
                };
                let mut chars = s.chars();
                match (chars.next(), chars.next()) {
                    (Some(c), None) => out.push(c),
                    _ => return Value::Undefined,
                }
            }
            Some(out)
        }
        _ => return Value::Undefined,
    };
    match crate::glob::glob_match(pattern, delimiters.as_deref(), input) {
        Ok(b) => Value::from(b),
        Err(_) => Value::Undefined,
    }
}

fn undefined_on_error(r: Result<Value, JwtError>) -> Value {
    r.unwrap_or(Value::Undefined)
}

fn first_str(args: &[Value]) -> Result<&str, JwtError> {
    match args.first() {
        Some(Value::String(s)) => Ok(s.as_ref()),
        _ => err("the token must be a string"),
    }
}

fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

/// base64url as OPA decodes it: padding optional.
const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn b64url(part: &str, what: &str) -> Result<Vec<u8>, JwtError> {
    B64URL
        .decode(part)
        .map_err(|e| JwtError(format!("JWT {what} had invalid encoding: {e}")))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// The three base64url parts of a compact JWS.
struct Parts<'a> {
    header: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    fn split(token: &'a str) -> Result<Parts<'a>, JwtError> {
        if !token.contains('.') {
            return err("encoded JWT had no period separators");
        }
        let parts: Vec<&str> = token.split('.').collect();
        match parts.as_slice() {
            [header, payload, signature] => Ok(Parts {
                header,
                payload,
                signature,
            }),
            _ => err(format!(
                "encoded JWT must have 3 sections, found {}",
                parts.len()
            )),
        }
    }

    /// `header.payload`: the bytes the signature covers.
    fn signing_input(&self) -> String {
        let mut s = String::with_capacity(self.header.len() + 1 + self.payload.len());
        s.push_str(self.header);
        s.push('.');
        s.push_str(self.payload);
        s
    }

    fn decoded_header(&self) -> Result<Value, JwtError> {
        let bytes = b64url(self.header, "header")?;
        let header = json_object(&bytes).map_err(|e| JwtError(format!("bad JWT header: {e}")))?;
        if !matches!(header["enc"], Value::Undefined) {
            return err("JWT is a JWE object, which is not supported");
        }
        Ok(header)
    }

    fn decoded_signature(&self) -> Result<Vec<u8>, JwtError> {
        b64url(self.signature, "signature")
    }
}

fn json_object(bytes: &[u8]) -> Result<Value, JwtError> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| JwtError("invalid JSON: not UTF-8".into()))?;
    let v = Value::from_json_str(text).map_err(|e| JwtError(format!("invalid JSON: {e}")))?;
    match v {
        Value::Object(_) => Ok(v),
        _ => err("decoded JSON type was not an Object"),
    }
}

/// `io.jwt.decode`: `[header, payload, signature_hex]`, without verifying.
pub fn decode(token: &str) -> Result<Value, JwtError> {
    let mut token = token.to_string();
    // A `cty: JWT` payload is itself a token; bounded against silly nesting.
    for _ in 0..16 {
        let parts = Parts::split(&token)?;
        let header = parts.decoded_header()?;
        let payload = b64url(parts.payload, "payload")?;
        if as_str(&header["cty"]) == Some("JWT") {
            let inner = String::from_utf8_lossy(&payload);
            token = inner.trim_matches(|c| c == '"' || c == '\'').to_string();
            continue;
        }
        let payload = json_object(&payload)?;
        let signature = parts.decoded_signature()?;
        return Ok(Value::from(vec![
            header,
            payload,
            Value::from(hex(&signature)),
        ]));
    }
    err("JWT nested too deeply")
}

/// A public key (or an HMAC secret from a JWKS), with the `alg` and `kid`
/// a JWK gave it.
struct VerificationKey {
    alg: String,
    kid: String,
    material: KeyMaterial,
}

enum KeyMaterial {
    /// PKCS#1 RSAPublicKey DER, or (n, e) from a JWK.
    Rsa(DecodingKey),
    /// Uncompressed point; the curve decides which ES* can use it.
    Ec(Curve, Vec<u8>),
    Ed25519(Vec<u8>),
    Symmetric(Vec<u8>),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
    P521,
}

/// Keys from a PEM certificate, a PEM public key, or a JWK / JWKS JSON
/// string, as OPA's `getKeysFromCertOrJWK` accepts them.
fn parse_keys(text: &str) -> Result<Vec<VerificationKey>, JwtError> {
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
fn verify_signature(alg: Alg, key: &KeyMaterial, message: &[u8], signature: &[u8]) -> bool {
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

/// The header fields OPA's `parseTokenHeader` reads.
#[derive(Default)]
struct Header {
    alg: String,
    kid: String,
    cty: String,
    crit: Vec<String>,
    unknown: Vec<String>,
}

impl Header {
    fn parse(header: &Value) -> Result<Header, JwtError> {
        let mut h = Header::default();
        let Ok(fields) = header.as_object() else {
            return err("bad JWT header");
        };
        for (k, v) in fields.iter() {
            let Some(k) = as_str(k) else { continue };
            let string = |name: &str| match as_str(v) {
                Some(s) => Ok(s.to_string()),
                None => err(format!("{name}: must be a string")),
            };
            match k {
                "alg" => h.alg = string("alg")?,
                "kid" => h.kid = string("kid")?,
                "typ" => {
                    string("typ")?;
                }
                "cty" => h.cty = string("cty")?,
                "crit" => {
                    let items: Vec<&Value> = match v {
                        Value::Array(a) => a.iter().collect(),
                        Value::Set(s) => s.iter().collect(),
                        _ => return err("crit: must be a list"),
                    };
                    for item in items {
                        match as_str(item) {
                            Some(s) => h.crit.push(s.to_string()),
                            None => return err("crit: must be a list of strings"),
                        }
                    }
                    if h.crit.is_empty() {
                        return err("crit: must be a nonempty list");
                    }
                }
                other => h.unknown.push(other.to_string()),
            }
        }
        Ok(h)
    }

    /// RFC 7515: `alg` present, and no critical parameter we do not understand.
    fn valid(&self) -> bool {
        !self.alg.is_empty() && !self.unknown.iter().any(|u| self.crit.contains(u))
    }
}

/// Tries the keys as OPA does: the key whose `kid` matches the header's,
/// else every key whose `alg` (if it has one) matches.
fn verify_with_keys(
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

/// `io.jwt.verify_<alg>(token, key)`: whether the signature verifies.
/// For HMAC algorithms `key` is the secret; otherwise a PEM certificate, a
/// PEM public key or a JWK / JWKS.
pub fn verify(alg: Alg, token: &str, key: &str) -> Result<bool, JwtError> {
    let parts = Parts::split(token)?;
    let message = parts.signing_input();
    if alg.is_hmac() {
        let signature = parts.decoded_signature()?;
        return Ok(verify_signature(
            alg,
            &KeyMaterial::Symmetric(key.as_bytes().to_vec()),
            message.as_bytes(),
            &signature,
        ));
    }
    let keys = parse_keys(key)?;
    let signature = parts.decoded_signature()?;
    let header = Header::parse(&parts.decoded_header()?)?;
    Ok(verify_with_keys(
        alg,
        &header,
        &keys,
        message.as_bytes(),
        &signature,
    ))
}

/// `decode_verify`'s constraints.
struct Constraints {
    keys: Option<Vec<VerificationKey>>,
    secret: String,
    alg: String,
    iss: String,
    aud: String,
    /// Seconds since the epoch.
    time: f64,
}

impl Constraints {
    fn parse(v: &Value, now_ns: f64) -> Result<Constraints, JwtError> {
        let Ok(fields) = v.as_object() else {
            return err("the constraints must be an object");
        };
        let mut c = Constraints {
            keys: None,
            secret: String::new(),
            alg: String::new(),
            iss: String::new(),
            aud: String::new(),
            time: -1.0,
        };
        for (k, v) in fields.iter() {
            let name = as_str(k).unwrap_or_default();
            let string = || match as_str(v) {
                Some(s) => Ok(s.to_string()),
                None => err(format!("{name} constraint: must be a string")),
            };
            match name {
                "cert" => c.keys = Some(parse_keys(&string()?)?),
                "secret" => c.secret = string()?,
                "alg" => c.alg = string()?,
                "iss" => c.iss = string()?,
                "aud" => c.aud = string()?,
                "time" => c.time = time_ns(v)?,
                other => return err(format!("unknown token validation constraint: {other}")),
            }
        }
        if c.time < 0.0 {
            c.time = now_ns;
        }
        c.time /= 1e9;
        match (&c.keys, c.secret.is_empty()) {
            (Some(_), false) => err("duplicate key constraints"),
            (None, true) => err("no key constraint"),
            _ => Ok(c),
        }
    }

    fn verify(&self, header: &Header, message: &[u8], signature: &[u8]) -> bool {
        // `none` and unknown algorithms never verify.
        let Some(alg) = Alg::from_name(&header.alg) else {
            return false;
        };
        match &self.keys {
            Some(keys) => verify_with_keys(alg, header, keys, message, signature),
            None => verify_signature(
                alg,
                &KeyMaterial::Symmetric(self.secret.as_bytes().to_vec()),
                message,
                signature,
            ),
        }
    }

    /// `aud` in the token: a string equal to the constraint, or an array holding it.
    fn audience_ok(&self, aud: &Value) -> bool {
        match aud {
            Value::String(s) => s.as_ref() == self.aud,
            Value::Array(a) => a.iter().any(|e| as_str(e) == Some(self.aud.as_str())),
            _ => false,
        }
    }
}

fn time_ns(v: &Value) -> Result<f64, JwtError> {
    if !matches!(v, Value::Number(_)) {
        return err("token time constraint: must be a number");
    }
    match number_f64(v) {
        Some(t) if t >= 0.0 => Ok(t),
        Some(_) => err("token time constraint: must not be negative"),
        None => err("token time constraint: invalid float64"),
    }
}

/// A number as f64, rounding integers beyond 2^53 (nanosecond times are).
fn number_f64(v: &Value) -> Option<f64> {
    let Value::Number(n) = v else { return None };
    n.as_f64()
        .or_else(|| n.format_decimal().parse::<f64>().ok())
        .filter(|f| f.is_finite())
}

fn now_ns() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as f64)
        .unwrap_or(0.0)
}

/// `io.jwt.decode_verify(token, constraints)`: `[valid, header, payload]`,
/// `[false, {}, {}]` when the token does not verify or a constraint fails.
pub fn decode_verify(token: &str, constraints: &Value) -> Result<Value, JwtError> {
    decode_verify_at(token, constraints, now_ns())
}

fn unverified() -> Value {
    Value::from(vec![
        Value::from(false),
        Value::new_object(),
        Value::new_object(),
    ])
}

/// [`decode_verify`] with "now" given (nanoseconds since the epoch).
pub fn decode_verify_at(token: &str, constraints: &Value, now_ns: f64) -> Result<Value, JwtError> {
    let c = Constraints::parse(constraints, now_ns)?;
    let mut token = token.to_string();
    let mut found = None;
    for _ in 0..16 {
        let parts = Parts::split(&token)?;
        let header_value = parts.decoded_header()?;
        let header = Header::parse(&header_value)?;
        if !header.valid() {
            return Ok(unverified());
        }
        if !c.alg.is_empty() && c.alg != header.alg {
            return Ok(unverified());
        }
        let signature = parts.decoded_signature()?;
        if !c.verify(&header, parts.signing_input().as_bytes(), &signature) {
            return Ok(unverified());
        }
        let payload = b64url(parts.payload, "payload")?;
        if header.cty.eq_ignore_ascii_case("JWT") {
            token = String::from_utf8_lossy(&payload).into_owned();
            continue;
        }
        found = Some((header_value, payload));
        break;
    }
    let Some((header, payload)) = found else {
        return err("JWT nested too deeply");
    };
    let payload = json_object(&payload)?;

    if !c.iss.is_empty() && as_str(&payload["iss"]) != Some(c.iss.as_str()) {
        return Ok(unverified());
    }
    match &payload["aud"] {
        Value::Undefined => {
            if !c.aud.is_empty() {
                return Ok(unverified());
            }
        }
        aud => {
            if !c.audience_ok(aud) {
                return Ok(unverified());
            }
        }
    }
    match &payload["exp"] {
        Value::Undefined => {}
        exp @ Value::Number(_) => {
            if c.time >= number_f64(exp).unwrap_or(f64::NEG_INFINITY) {
                return Ok(unverified());
            }
        }
        _ => return err("exp value must be a number"),
    }
    match &payload["nbf"] {
        Value::Undefined => {}
        nbf @ Value::Number(_) => {
            if c.time < number_f64(nbf).unwrap_or(f64::INFINITY) {
                return Ok(unverified());
            }
        }
        _ => return err("nbf value must be a number"),
    }
    Ok(Value::from(vec![Value::from(true), header, payload]))
}

/// usher's `numbers.range` / `numbers.range_step`: regorus' semantics, but
/// at most [`MAX_RANGE_ELEMENTS`] elements (an evaluation error beyond).
fn bounded_range(args: &[Value], stepped: bool) -> anyhow::Result<Value> {
    let name = if stepped {
        "numbers.range_step"
    } else {
        "numbers.range"
    };
    let int = |i: usize| match args.get(i) {
        Some(Value::Number(n)) if n.is_integer() => n.as_i64(),
        _ => None,
    };
    let (Some(a), Some(b)) = (int(0), int(1)) else {
        // Non-integer operands: undefined, as regorus does when not strict.
        return Ok(Value::Undefined);
    };
    let step = if stepped {
        match int(2) {
            Some(s) if s > 0 => s,
            _ => return Ok(Value::Undefined),
        }
    } else {
        1
    };
    let span = u64::try_from(i128::from(b).abs_diff(i128::from(a))).unwrap_or(u64::MAX);
    let step_u = step.unsigned_abs();
    let count = (span / step_u).saturating_add(1);
    if count > MAX_RANGE_ELEMENTS {
        anyhow::bail!("{name}: {count} elements exceed usher's limit of {MAX_RANGE_ELEMENTS}");
    }
    let dir: i64 = if b >= a { 1 } else { -1 };
    let mut out = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
    let mut v = a;
    for _ in 0..count {
        out.push(Value::from(v));
        v = v.saturating_add(dir.saturating_mul(step));
    }
    Ok(Value::from(out))
}
