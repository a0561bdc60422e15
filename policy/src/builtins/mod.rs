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
//!
//! The builtins are spread along their seams: `jwt` reads tokens
//! (`io.jwt.decode`), `keys` reads keys and checks signatures, `verify`
//! answers `io.jwt.verify_*` and `io.jwt.decode_verify`, and `range` bounds
//! `numbers.range`. This module lists every builtin usher supplies and
//! registers them on a regorus [`Engine`].

use std::time::Duration;

use jsonwebtoken::crypto::CryptoProvider;
use regorus::{Engine, Value};

use crate::engine::PolicyError;

mod jwt;
mod keys;
mod range;
mod verify;

#[cfg(test)]
mod tests;

pub(crate) use jwt::hex;
pub use jwt::{decode, Alg, JwtError};
pub use range::MAX_RANGE_ELEMENTS;
pub use verify::{decode_verify, decode_verify_at, verify};

use jwt::err;
use range::bounded_range;

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
