//! The sidecar's JWT authentication (`usher_proxy::authn`): the bearer
//! token from a request header, checked against one issuer with a fixed
//! key set, and JWKS documents as an operator or issuer serves them.
//!
//! Input: a byte selects the part; the rest is a token or a JWKS document.
#![no_main]

use std::sync::{Arc, OnceLock};

use arc_swap::ArcSwap;
use libfuzzer_sys::fuzz_target;
use usher_proxy::authn::{Issuer, Jwks};

const JWKS: &str = r#"{"keys":[
 {"kty":"EC","crv":"P-256","kid":"ec","alg":"ES256",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"},
 {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
]}"#;

fn issuers() -> &'static [Issuer] {
    static ISSUERS: OnceLock<Vec<Issuer>> = OnceLock::new();
    ISSUERS.get_or_init(|| {
        let jwks = Jwks::parse(JWKS.as_bytes()).expect("the fixed key set parses");
        vec![Issuer {
            issuer: "https://login.test".into(),
            audiences: vec!["orders".into()],
            jwks: Arc::new(ArcSwap::from_pointee(jwks)),
        }]
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        // No key in the fixed set can have signed a fuzzed token: any
        // input must be refused, never accepted, never panic.
        let Ok(token) = std::str::from_utf8(rest) else {
            return;
        };
        let result = usher_proxy::authn::verify::verify(token, issuers(), 60, 8192);
        assert!(result.is_err(), "a fuzzed token was accepted");
    } else if let Ok(jwks) = Jwks::parse(rest) {
        // A parsed set never holds a symmetric key or an empty list.
        assert!(!jwks.keys.is_empty());
    }
});
