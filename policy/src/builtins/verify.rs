//! `io.jwt.verify_<alg>(token, key)` and `io.jwt.decode_verify(token,
//! constraints)`: the signature checked with the keys given, then (for
//! `decode_verify`) OPA's constraints (`alg`, `iss`, `aud`, `exp`, `nbf`
//! against `time`), unwrapping nested `cty: JWT` tokens.

use std::time::{SystemTime, UNIX_EPOCH};

use regorus::Value;

use super::jwt::{as_str, b64url, err, json_object, Alg, Header, JwtError, Parts};
use super::keys::{parse_keys, verify_signature, verify_with_keys, KeyMaterial, VerificationKey};

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

pub(super) fn unverified() -> Value {
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
