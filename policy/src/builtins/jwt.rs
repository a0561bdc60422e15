//! Reading a compact JWS as OPA does: its three base64url parts, the
//! header fields OPA's `parseTokenHeader` reads, `io.jwt.decode` (no
//! verification), and the error and algorithm types every `io.jwt.*`
//! builtin shares.

use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use regorus::Value;

/// A malformed token, key or argument (the message says which).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct JwtError(pub String);

pub(super) fn err<T>(msg: impl Into<String>) -> Result<T, JwtError> {
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

    pub(super) fn is_hmac(self) -> bool {
        matches!(self, Alg::HS256 | Alg::HS384 | Alg::HS512)
    }
}

pub(super) fn as_str(v: &Value) -> Option<&str> {
    match v {
        Value::String(s) => Some(s.as_ref()),
        _ => None,
    }
}

/// base64url as OPA decodes it: padding optional.
pub(super) const B64URL: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

pub(super) fn b64url(part: &str, what: &str) -> Result<Vec<u8>, JwtError> {
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
pub(super) struct Parts<'a> {
    header: &'a str,
    pub(super) payload: &'a str,
    signature: &'a str,
}

impl<'a> Parts<'a> {
    pub(super) fn split(token: &'a str) -> Result<Parts<'a>, JwtError> {
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
    pub(super) fn signing_input(&self) -> String {
        let mut s = String::with_capacity(self.header.len() + 1 + self.payload.len());
        s.push_str(self.header);
        s.push('.');
        s.push_str(self.payload);
        s
    }

    pub(super) fn decoded_header(&self) -> Result<Value, JwtError> {
        let bytes = b64url(self.header, "header")?;
        let header = json_object(&bytes).map_err(|e| JwtError(format!("bad JWT header: {e}")))?;
        if !matches!(header["enc"], Value::Undefined) {
            return err("JWT is a JWE object, which is not supported");
        }
        Ok(header)
    }

    pub(super) fn decoded_signature(&self) -> Result<Vec<u8>, JwtError> {
        b64url(self.signature, "signature")
    }
}

pub(super) fn json_object(bytes: &[u8]) -> Result<Value, JwtError> {
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

/// The header fields OPA's `parseTokenHeader` reads.
#[derive(Default)]
pub(super) struct Header {
    pub(super) alg: String,
    pub(super) kid: String,
    pub(super) cty: String,
    crit: Vec<String>,
    unknown: Vec<String>,
}

impl Header {
    pub(super) fn parse(header: &Value) -> Result<Header, JwtError> {
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
    pub(super) fn valid(&self) -> bool {
        !self.alg.is_empty() && !self.unknown.iter().any(|u| self.crit.contains(u))
    }
}
