//! `io.jwt.encode_sign` and `io.jwt.encode_sign_raw`, which `opa test`
//! suites use to craft tokens: HMAC keys (`{"kty": "oct", "k": ...}`) with
//! HS256, HS384 or HS512. Other key types give undefined (a test that needs
//! an RS256 or ES256 token signs it beforehand and embeds it).

use aws_lc_rs::hmac;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use regorus::Value;

/// `io.jwt.encode_sign(headers, payload, key)`: objects, serialised as
/// OPA does (compact JSON, keys sorted).
pub(crate) fn encode_sign(args: &[Value]) -> Value {
    let (Some(header), Some(payload), Some(key)) = (args.first(), args.get(1), args.get(2)) else {
        return Value::Undefined;
    };
    let (Ok(h), Ok(p), Ok(k)) = (
        serde_json::to_string(header),
        serde_json::to_string(payload),
        serde_json::to_string(key),
    ) else {
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

fn sign(header: &str, payload: &str, jwk: &str) -> Option<String> {
    let alg = serde_json::from_str::<serde_json::Value>(header)
        .ok()?
        .get("alg")?
        .as_str()?
        .to_string();
    let key: serde_json::Value = serde_json::from_str(jwk).ok()?;
    if key.get("kty")?.as_str()? != "oct" {
        return None;
    }
    let secret = URL_SAFE_NO_PAD
        .decode(key.get("k")?.as_str()?.trim_end_matches('='))
        .ok()?;
    let algorithm = match alg.as_str() {
        "HS256" => hmac::HMAC_SHA256,
        "HS384" => hmac::HMAC_SHA384,
        "HS512" => hmac::HMAC_SHA512,
        _ => return None,
    };
    let mut token = String::new();
    URL_SAFE_NO_PAD.encode_string(header.as_bytes(), &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(payload.as_bytes(), &mut token);
    let tag = hmac::sign(&hmac::Key::new(algorithm, &secret), token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    Some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_with_the_same_secret_and_decode_to_what_was_signed() {
        let key = r#"{"kty":"oct","k":"c2VjcmV0"}"#; // "secret"
        let token = sign(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"sub":"alice"}"#, key).unwrap();
        assert!(crate::builtins::verify(crate::builtins::Alg::HS256, &token, "secret").unwrap());
        assert!(!crate::builtins::verify(crate::builtins::Alg::HS256, &token, "other").unwrap());
        let decoded = crate::builtins::decode(&token).unwrap();
        assert_eq!(decoded[1]["sub"], Value::from("alice"));
        // Objects are serialised compact with sorted keys, as OPA does.
        let mut header = Value::new_object();
        header
            .as_object_mut()
            .unwrap()
            .insert(Value::from("alg"), Value::from("HS256"));
        let mut payload = Value::new_object();
        let p = payload.as_object_mut().unwrap();
        p.insert(Value::from("z"), Value::from(1u64));
        p.insert(Value::from("a"), Value::from(2u64));
        let t = encode_sign(&[header, payload, Value::from_json_str(key).unwrap()]);
        let Value::String(t) = t else { panic!("{t:?}") };
        let body = URL_SAFE_NO_PAD
            .decode(t.split('.').nth(1).unwrap())
            .unwrap();
        assert_eq!(body, br#"{"a":2,"z":1}"#);
        // Keys other than HMAC: undefined.
        assert!(sign(
            r#"{"alg":"RS256"}"#,
            "{}",
            r#"{"kty":"RSA","n":"x","e":"AQAB"}"#
        )
        .is_none());
    }
}
