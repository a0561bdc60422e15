//! JWT header and claims handling: `io.jwt.decode`, `io.jwt.verify_hs256`
//! and `io.jwt.decode_verify` as usher supplies them to Rego policies, on
//! tokens taken from request headers.
//!
//! Input: the token, then optionally `\n` and the HMAC secret.
#![no_main]

use libfuzzer_sys::fuzz_target;
use regorus::Value;
use usher_policy::builtins::{decode, decode_verify_at, verify, Alg};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (token, secret) = text.split_once('\n').unwrap_or((text, "secret"));

    match decode(token) {
        Ok(Value::Array(parts)) => {
            assert_eq!(parts.len(), 3);
            assert!(matches!(parts[0], Value::Object(_)), "header is an object");
            assert!(matches!(parts[1], Value::Object(_)), "payload is an object");
            match &parts[2] {
                Value::String(hex) => {
                    assert!(hex.len() % 2 == 0);
                    assert!(hex.bytes().all(|b| b.is_ascii_hexdigit()));
                }
                other => panic!("signature is not a string: {other:?}"),
            }
        }
        Ok(other) => panic!("decode gave {other:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    for alg in [Alg::HS256, Alg::HS512] {
        if let Err(e) = verify(alg, token, secret) {
            assert!(!e.to_string().is_empty());
        }
    }

    let mut constraints = String::from(r#"{"secret": "#);
    push_json_string(&mut constraints, secret);
    constraints.push_str(r#", "time": 1700000000000000000}"#);
    let constraints = Value::from_json_str(&constraints).expect("constraints are JSON");
    match decode_verify_at(token, &constraints, 0.0) {
        Ok(Value::Array(r)) => {
            assert_eq!(r.len(), 3);
            assert!(matches!(r[0], Value::Bool(_)));
            if r[0] == Value::Bool(false) {
                assert_eq!(r[1], Value::new_object());
                assert_eq!(r[2], Value::new_object());
            }
        }
        Ok(other) => panic!("decode_verify gave {other:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});

fn push_json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
