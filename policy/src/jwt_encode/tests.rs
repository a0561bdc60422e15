//! Tokens signed here verify with usher's `io.jwt.verify_*` and with an
//! independent verifier (the jsonwebtoken crate; aws-lc-rs directly for
//! ES512, which jsonwebtoken lacks). `test_keys.json`: keys made for these
//! tests only (Python's `cryptography`), never used anywhere else.

use std::collections::HashSet;

use jsonwebtoken::{Algorithm, DecodingKey, Validation};

use super::*;
use crate::builtins::{verify, Alg};

fn keys() -> Json {
    serde_json::from_str(include_str!("test_keys.json")).unwrap()
}

/// A key's public half, as a JWK text.
fn public(key: &Json) -> String {
    let mut k = key.clone();
    let fields = k.as_object_mut().unwrap();
    for private in ["d", "p", "q", "dp", "dq", "qi"] {
        fields.remove(private);
    }
    k.to_string()
}

fn rego(v: &Json) -> Value {
    Value::from_json_str(&v.to_string()).unwrap()
}

fn token(alg: &str, key: &Json) -> String {
    let header = serde_json::json!({"alg": alg, "typ": "JWT"});
    let payload = serde_json::json!({"sub": "alice", "iss": "usher-tests", "n": 1});
    match encode_sign(&[rego(&header), rego(&payload), rego(key)]) {
        Value::String(t) => t.to_string(),
        other => panic!("{alg}: {other:?}"),
    }
}

/// jsonwebtoken's verdict on `token`.
fn independent(alg: Algorithm, token: &str, key: &DecodingKey) -> bool {
    let mut v = Validation::new(alg);
    v.required_spec_claims = HashSet::new();
    v.validate_exp = false;
    v.validate_aud = false;
    jsonwebtoken::decode::<Json>(token, key, &v).is_ok()
}

fn field<'a>(k: &'a Json, f: &str) -> &'a str {
    k[f].as_str().unwrap()
}

/// The token with one signature byte changed.
fn tampered(token: &str) -> String {
    let (rest, sig) = token.rsplit_once('.').unwrap();
    let mut bytes = URL_SAFE_NO_PAD.decode(sig).unwrap();
    bytes[0] ^= 1;
    format!("{rest}.{}", URL_SAFE_NO_PAD.encode(bytes))
}

#[test]
fn asymmetric_tokens_verify_with_usher_and_jsonwebtoken() {
    let keys = keys();
    let rsa = &keys["rsa"];
    let rsa_public = DecodingKey::from_rsa_components(field(rsa, "n"), field(rsa, "e")).unwrap();
    for (name, alg, jalg) in [
        ("RS256", Alg::RS256, Algorithm::RS256),
        ("RS384", Alg::RS384, Algorithm::RS384),
        ("RS512", Alg::RS512, Algorithm::RS512),
        ("PS256", Alg::PS256, Algorithm::PS256),
        ("PS384", Alg::PS384, Algorithm::PS384),
        ("PS512", Alg::PS512, Algorithm::PS512),
    ] {
        let t = token(name, rsa);
        assert!(verify(alg, &t, &public(rsa)).unwrap(), "{name}");
        assert!(!verify(alg, &tampered(&t), &public(rsa)).unwrap(), "{name}");
        assert!(independent(jalg, &t, &rsa_public), "{name}");
        assert!(!independent(jalg, &tampered(&t), &rsa_public), "{name}");
    }
    for (name, alg, jalg, key) in [
        ("ES256", Alg::ES256, Some(Algorithm::ES256), &keys["p256"]),
        ("ES384", Alg::ES384, Some(Algorithm::ES384), &keys["p384"]),
        ("ES512", Alg::ES512, None, &keys["p521"]),
    ] {
        let t = token(name, key);
        assert!(verify(alg, &t, &public(key)).unwrap(), "{name}");
        assert!(!verify(alg, &tampered(&t), &public(key)).unwrap(), "{name}");
        // ECDSA signatures are randomised.
        assert_ne!(t, token(name, key), "{name}");
        match jalg {
            Some(jalg) => {
                let k = DecodingKey::from_ec_components(field(key, "x"), field(key, "y")).unwrap();
                assert!(independent(jalg, &t, &k), "{name}");
                assert!(!independent(jalg, &tampered(&t), &k), "{name}");
            }
            None => {
                let mut point = vec![4u8];
                point.extend(URL_SAFE_NO_PAD.decode(field(key, "x")).unwrap());
                point.extend(URL_SAFE_NO_PAD.decode(field(key, "y")).unwrap());
                let (message, sig) = t.rsplit_once('.').unwrap();
                let sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
                let public =
                    signature::UnparsedPublicKey::new(&signature::ECDSA_P521_SHA512_FIXED, &point);
                assert!(public.verify(message.as_bytes(), &sig).is_ok());
            }
        }
    }
    let ed = &keys["ed25519"];
    let t = token("EdDSA", ed);
    assert!(verify(Alg::EdDSA, &t, &public(ed)).unwrap());
    assert!(!verify(Alg::EdDSA, &tampered(&t), &public(ed)).unwrap());
    let k = DecodingKey::from_ed_components(field(ed, "x")).unwrap();
    assert!(independent(Algorithm::EdDSA, &t, &k));
    // PKCS#1 v1.5 is deterministic: the same token twice.
    assert_eq!(token("RS256", rsa), token("RS256", rsa));
}

#[test]
fn hmac_tokens_and_serialisation() {
    let key = r#"{"kty":"oct","k":"c2VjcmV0"}"#; // "secret"
    let token = sign(r#"{"alg":"HS256","typ":"JWT"}"#, r#"{"sub":"alice"}"#, key).unwrap();
    assert!(verify(Alg::HS256, &token, "secret").unwrap());
    assert!(!verify(Alg::HS256, &token, "other").unwrap());
    let decoded = crate::builtins::decode(&token).unwrap();
    assert_eq!(decoded[1]["sub"], Value::from("alice"));
    assert!(independent(
        Algorithm::HS256,
        &token,
        &DecodingKey::from_secret(b"secret").unwrap()
    ));
    for (alg, a) in [("HS384", Alg::HS384), ("HS512", Alg::HS512)] {
        let t = sign(&format!(r#"{{"alg":"{alg}"}}"#), "{}", key).unwrap();
        assert!(verify(a, &t, "secret").unwrap(), "{alg}");
    }
    // Objects as OPA writes them: compact, keys sorted, <>& escaped.
    let header = Value::from_json_str(r#"{"typ": "JWT", "alg": "HS256"}"#).unwrap();
    let payload = Value::from_json_str(r#"{"z": 1, "a": "<&>"}"#).unwrap();
    let t = encode_sign(&[header, payload, Value::from_json_str(key).unwrap()]);
    let Value::String(t) = t else { panic!("{t:?}") };
    let part = |i: usize| {
        URL_SAFE_NO_PAD
            .decode(t.split('.').nth(i).unwrap())
            .unwrap()
    };
    assert_eq!(part(0), br#"{"alg":"HS256","typ":"JWT"}"#);
    assert_eq!(part(1), br#"{"a":"\u003c\u0026\u003e","z":1}"#);
    // A JWK set: its first key.
    let set = r#"{"keys": [{"kty":"oct","k":"c2VjcmV0"}, {"kty":"oct","k":"eA"}]}"#;
    let t = sign(r#"{"alg":"HS256"}"#, "{}", set).unwrap();
    assert!(verify(Alg::HS256, &t, "secret").unwrap());
}

#[test]
fn refused_as_opa_refuses() {
    let keys = keys();
    let h = |alg: &str| format!(r#"{{"alg":"{alg}"}}"#);
    let k = |name: &str| keys[name].to_string();
    // Key type or curve not the algorithm's.
    assert!(sign(&h("RS256"), "{}", &k("p256")).is_none());
    assert!(sign(&h("ES256"), "{}", &k("p384")).is_none());
    assert!(sign(&h("ES384"), "{}", &k("rsa")).is_none());
    assert!(sign(&h("HS256"), "{}", &k("rsa")).is_none());
    assert!(sign(&h("EdDSA"), "{}", &k("p256")).is_none());
    assert!(sign(&h("PS256"), "{}", &k("oct")).is_none());
    // Unknown or missing alg, none.
    assert!(sign(&h("none"), "{}", &k("oct")).is_none());
    assert!(sign(&h("HS1"), "{}", &k("oct")).is_none());
    assert!(sign("{}", "{}", &k("oct")).is_none());
    assert!(sign(r#"{"alg":1}"#, "{}", &k("oct")).is_none());
    // A JWT payload must be JSON; another typ need not be.
    assert!(sign(&h("HS256"), "not json", &k("oct")).is_none());
    assert!(sign(r#"{"alg":"HS256","typ":"JWT"}"#, "not json", &k("oct")).is_none());
    assert!(sign(r#"{"alg":"HS256","typ":"text"}"#, "not json", &k("oct")).is_some());
    // Malformed keys: missing CRT parameters, bad base64, truncated RSA.
    let mut rsa = keys["rsa"].clone();
    rsa.as_object_mut().unwrap().remove("qi");
    assert!(sign(&h("RS256"), "{}", &rsa.to_string()).is_none());
    let mut rsa = keys["rsa"].clone();
    rsa["n"] = Json::from("!!!");
    assert!(sign(&h("RS256"), "{}", &rsa.to_string()).is_none());
    let mut rsa = keys["rsa"].clone();
    rsa["d"] = Json::from("AQAB");
    assert!(sign(&h("RS256"), "{}", &rsa.to_string()).is_none());
    let mut ec = keys["p256"].clone();
    ec["d"] = Json::from(URL_SAFE_NO_PAD.encode([1u8; 40]));
    assert!(sign(&h("ES256"), "{}", &ec.to_string()).is_none());
    assert!(sign(&h("HS256"), "{}", "not json").is_none());
    assert!(sign(&h("HS256"), "{}", r#"{"keys": []}"#).is_none());
    // encode_sign: the key must be an object (a JWK text is quoted).
    let args = [
        Value::from_json_str(&h("HS256")).unwrap(),
        Value::new_object(),
        Value::from(k("oct")),
    ];
    assert_eq!(encode_sign(&args), Value::Undefined);
    assert_eq!(encode_sign(&args[..2]), Value::Undefined);
    assert_eq!(
        encode_sign_raw(&[Value::from(h("HS256")), Value::from("{}"), Value::from(1)]),
        Value::Undefined
    );
}

#[test]
fn der_integers() {
    let mut out = Vec::new();
    der_uint(&mut out, &[0, 0, 0x7f]);
    der_uint(&mut out, &[0x80]);
    der_uint(&mut out, &[]);
    assert_eq!(out, [2, 1, 0x7f, 2, 2, 0, 0x80, 2, 1, 0]);
    let mut len = Vec::new();
    der_len(&mut len, 0x7f);
    der_len(&mut len, 0x80);
    der_len(&mut len, 0x1234);
    assert_eq!(len, [0x7f, 0x81, 0x80, 0x82, 0x12, 0x34]);
}
