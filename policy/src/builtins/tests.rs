//! The io.jwt.* builtins against OPA's own test cases (test vectors from
//! open-policy-agent/opa test/cases/testdata/v1/jwtbuiltins and
//! jwtdecodeverify), then against tokens signed here with keys of every
//! family (signed with aws-lc-rs directly, independently of the code under
//! test).

use std::time::{SystemTime, UNIX_EPOCH};

use super::range::bounded_range;
use super::verify::unverified;
use super::*;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::{hmac, signature as sig};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use x509_parser::prelude::FromDer as _;
use x509_parser::x509::SubjectPublicKeyInfo;

fn json(s: &str) -> Value {
    Value::from_json_str(s).unwrap()
}

fn constraints(v: serde_json::Value) -> Value {
    Value::from(v)
}

// ---------------------------------------------------------------- OPA's cases

/// The certificate of OPA's jwtdecodeverify cases (RSA 2048).
const OPA_CERT: &str = "-----BEGIN CERTIFICATE-----\nMIIC/DCCAeSgAwIBAgIJAJRvYDU3ei3EMA0GCSqGSIb3DQEBCwUAMBMxETAPBgNV\nBAMMCHdoYXRldmVyMB4XDTE4MDgxMDEwMzgxNloXDTE4MDkwOTEwMzgxNlowEzER\nMA8GA1UEAwwId2hhdGV2ZXIwggEiMA0GCSqGSIb3DQEBAQUAA4IBDwAwggEKAoIB\nAQC4kCmzLMW/5jzkzkmN7Me8wPD+ymBUIjsGqliGfMrfFfDV2eTPVtZcYD3IXoB4\nAOUT7XJzWjOsBRFOcVKKEiCPjXiLcwLb/QWQ1x0Budft32r3+N0KQd1rgcRHTPNc\nJoeWCfOgDPp51RTzTT6HQuV4ud+CDhRJP7QMVMIgal9Nuzs49LLZaBPW8/rFsHjk\nJQ4kDujSrpcT6F2FZY3SmWsOJgP7RjVKk5BheYeFKav5ZV4p6iHn/TN4RVpvpNBh\n5z/XoHITJ6lpkHSDpbIaQUTpobU2um8N3biz+HsEAmD9Laa27WUpYSpiM6DDMSXl\ndBDJdumerVRJvXYCtfXqtl17AgMBAAGjUzBRMB0GA1UdDgQWBBRz74MkVzT2K52/\nFJC4mTa9coM/DTAfBgNVHSMEGDAWgBRz74MkVzT2K52/FJC4mTa9coM/DTAPBgNV\nHRMBAf8EBTADAQH/MA0GCSqGSIb3DQEBCwUAA4IBAQAD1ZE4IaIAetqGG+vt9oz1\nIx0j4EPok0ONyhhmiSsF6rSv8zlNWweVf5y6Z+AoTNY1Fym0T7dbpbqIox0EdKV3\nFLzniWOjznupbnqfXwHX/g1UAZSyt3akSatVhvNpGlnd7efTIAiNinX/TkzIjhZ7\nihMIZCGykT1P0ys1OaeEf57wAzviatD4pEMTIW0OOqY8bdRGhuJR1kKUZ/2Nm8Ln\ny7E0y8uODVbH9cAwGyzWB/QFc+bffNgi9uJaPQQc5Zxwpu9utlqyzFvXgV7MBYUK\nEYSLyxp4g4e5aujtLugaC8H6n9vP1mEBr/+T8HGynBZHNTKlDhhL9qDbpkkNB6/w\n-----END CERTIFICATE-----";

#[test]
fn opa_decode_simple() {
    // jwtbuiltins/simple
    let v = decode("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwiaXNzIjoib3BhIn0.XmVoLoHI3pxMtMO_WRONMSJzGUDP9pDjy8Jp0_tdRXY").unwrap();
    assert_eq!(
        v,
        json(
            r#"[{"alg":"HS256","typ":"JWT"},{"iss":"opa","sub":"0"},"5e65682e81c8de9c4cb4c3bf59138d3122731940cff690e3cbc269d3fb5d4576"]"#
        )
    );
}

#[test]
fn opa_decode_complex_values() {
    // jwtbuiltins/complex-values
    let v = decode("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwiaXNzIjoib3BhIiwiZXh0Ijp7ImFiYyI6IjEyMyIsImNiYSI6WzEwLCIxMCJdfX0.IIxF-uJ6i4K5Dj71xNLnUeqB9jmujl6ujTInhii1PxE").unwrap();
    assert_eq!(
        v,
        json(
            r#"[{"alg":"HS256","typ":"JWT"},{"ext":{"abc":"123","cba":[10,"10"]},"iss":"opa","sub":"0"},"208c45fae27a8b82b90e3ef5c4d2e751ea81f639ae8e5eae8d32278628b53f11"]"#
        )
    );
}

#[test]
fn opa_decode_errors() {
    // jwtbuiltins/wrong-period-count
    let e = decode("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXV.CJ9eyJzdWIiOiIwIiwiaXNzIjoib3BhIn0XmVoLoHI3pxMtMO_WRONMSJzGUDP9pDjy8Jp0_tdRXY").unwrap_err();
    assert_eq!(e.0, "encoded JWT must have 3 sections, found 2");
    // jwtbuiltins/bad-signature-encoding
    let e = decode("eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIwIiwiaXNzIjoib3BhIn0.XmVoLoHI3pxMtMO(_WRONMSJzGUDP9pDjy8Jp0_tdRXY").unwrap_err();
    assert!(e.0.starts_with("JWT signature had invalid encoding"), "{e}");
    assert_eq!(
        decode("nodots").unwrap_err().0,
        "encoded JWT had no period separators"
    );
    // Not JSON, not an object, a JWE.
    let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
    assert!(decode(&format!("{}.{}.", b("nope"), b("{}"))).is_err());
    assert!(decode(&format!("{}.{}.", b("{}"), b("[1]"))).is_err());
    let jwe = decode(&format!(
        "{}.{}.",
        b(r#"{"alg":"RSA-OAEP","enc":"A256GCM"}"#),
        b("{}")
    ));
    assert!(jwe.unwrap_err().0.contains("JWE"));
}

#[test]
fn decode_nested_cty_jwt() {
    let b = |s: &str| URL_SAFE_NO_PAD.encode(s);
    let inner = format!(
        "{}.{}.{}",
        b(r#"{"alg":"HS256"}"#),
        b(r#"{"sub":"inner"}"#),
        b("sig")
    );
    let outer = format!(
        "{}.{}.{}",
        b(r#"{"alg":"HS256","cty":"JWT"}"#),
        b(&format!("\"{inner}\"")),
        b("x")
    );
    let v = decode(&outer).unwrap();
    assert_eq!(v[1], json(r#"{"sub":"inner"}"#));
    assert_eq!(v[0], json(r#"{"alg":"HS256"}"#));
}

#[test]
fn opa_decode_verify_ps256_unconstrained() {
    // jwtdecodeverify/ps256-unconstrained
    let token = "eyJhbGciOiAiUFMyNTYiLCAidHlwIjogIkpXVCJ9.eyJpc3MiOiAieHh4In0.iCePYnD1U13oBe_6ylhmojmkY_VZNYXqVszAej8RImMGv51OEqARmYFkRZYTiYCiVFober7vcDq_stOj1uAJCuttygGW_dpHiN-3EWsU2E2vCnXlygWe0ud38pOC-OVyEFbXxO9-m51vnS-3VmBjEO8G1UE8bLFXTeFOGkUIj9dqlefJSWh5wa8XA3g9mj0jqpuJi-7QgEIeVHk-JzhGpoFqI2f-Df_agVvc2x4V-6fJmj7wV2IsaFPRi36mVQmg8S-dkxu4AlaeCILhyNZl8ewjBHHBjJFRwzcy88L00mzdO51ZxEYsBdQav3ux2sc6vjT9PvvjAwzcthQxEoEaNA";
    let v = decode_verify(token, &constraints(serde_json::json!({ "cert": OPA_CERT }))).unwrap();
    assert_eq!(
        v,
        json(r#"[true, {"alg":"PS256","typ":"JWT"}, {"iss":"xxx"}]"#)
    );
    // The same signature checked by verify_ps256, and refused by verify_rs256.
    assert_eq!(verify(Alg::PS256, token, OPA_CERT), Ok(true));
    assert_eq!(verify(Alg::RS256, token, OPA_CERT), Ok(false));
}

#[test]
fn opa_decode_verify_rs256_exp_expired() {
    // jwtdecodeverify/rs256-exp-expired: exp 3000 s, time 4000 s
    let token = "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJpc3MiOiAieHh4IiwgImV4cCI6IDMwMDB9.hqDP3AzshNhUZMI02U3nLPrj93QFrgs-74XFrF1Vry2bplrz-NKpdVdfTu8iY_bhmkWf2Om5DdwRZj2ZgpGahtnshnHaRq0RyqF-m3Y7oNj6JL_YMwgxsFIIHtBlagBqDU-gZK99iqSOSGqVhvxqX6gCqFgE7vnEGHeeDedtRM53coAJuwzy8rQV9m3TewoofPdPasGv-dBLQZ3qgmnibkSgb7SmFpjXBy8zL3xJXOZhAHYlgcmcEoFVaWlBguIcWA87WZlpCLYcdYTJzSZweC3QLUhZ4RLJW84-LMKp6xWLLPrp3OgnsduB2G9PYMmYw_qCkuY1KGwfH4PvCQbAzQ";
    let c = |t: u64| constraints(serde_json::json!({ "cert": OPA_CERT, "time": t }));
    assert_eq!(
        decode_verify(token, &c(4_000_000_000_000)).unwrap(),
        unverified()
    );
    // Before exp it verifies; at exp it no longer does.
    assert_eq!(
        decode_verify(token, &c(2_999_000_000_000)).unwrap()[0],
        Value::from(true)
    );
    assert_eq!(
        decode_verify(token, &c(3_000_000_000_000)).unwrap()[0],
        Value::from(false)
    );
    assert_eq!(verify(Alg::RS256, token, OPA_CERT), Ok(true));
}

#[test]
fn opa_decode_verify_rs256_nbf_ok() {
    // jwtdecodeverify/rs256-nbf-ok: nbf 1000 s, time 2000 s
    let token = "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCJ9.eyJuYmYiOiAxMDAwLCAiaXNzIjogInh4eCJ9.cwwYDfJhU_ambPIpwBJwDek05miffoudprr41IAYsl0IKekb1ii2uEgwkNM-LJtVXHe9hsK3gANFyfqoJuCZIBvaNMx_3Z0BUdeBs4k1UwBiZCpuud0ofgHKURwvehNgqDvRfchq_-K_Agi2iRdl0oShgLjN-gVbBl8pRwUbQrvASlcsCpZIKUyOzXNtaIZEFh1z6ISDy8UHHOdoieKpN23swya7QAcEb0wXEEKMkkhiRd5QHgWLk37Lnw2K89mKcq4Om0CtV9nHrxxmpYGSMPojCy16Gjdg5-xKyJWvxCfb3YUBUVM4RWa7ICOPRJWPuHxu9pPYG63hb_qDU6NLsw";
    let v = decode_verify(
        token,
        &constraints(serde_json::json!({ "cert": OPA_CERT, "time": 2_000_000_000_000u64 })),
    )
    .unwrap();
    assert_eq!(
        v,
        json(r#"[true, {"alg":"RS256","typ":"JWT"}, {"iss":"xxx","nbf":1000}]"#)
    );
    // Before nbf: not yet valid.
    let v = decode_verify(
        token,
        &constraints(serde_json::json!({ "cert": OPA_CERT, "time": 999_000_000_000u64 })),
    )
    .unwrap();
    assert_eq!(v, unverified());
    // `iss` and `alg` constraints.
    let with = |extra: serde_json::Value| {
        let mut c = serde_json::json!({ "cert": OPA_CERT, "time": 2_000_000_000_000u64 });
        if let (Some(c), Some(e)) = (c.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        decode_verify(token, &constraints(c)).unwrap()[0].clone()
    };
    assert_eq!(with(serde_json::json!({"iss": "xxx"})), Value::from(true));
    assert_eq!(with(serde_json::json!({"iss": "yyy"})), Value::from(false));
    assert_eq!(with(serde_json::json!({"alg": "RS256"})), Value::from(true));
    assert_eq!(
        with(serde_json::json!({"alg": "RS512"})),
        Value::from(false)
    );
    // The token has no `aud`: an `aud` constraint fails it.
    assert_eq!(with(serde_json::json!({"aud": "svc"})), Value::from(false));
}

#[test]
fn opa_decode_verify_nested() {
    // jwtdecodeverify/rsa256-nested2: a cty=JWT token holding a cty=JWT token holding a token.
    let token = "eyJhbGciOiAiUlMyNTYiLCAidHlwIjogIkpXVCIsICJjdHkiOiAiSldUIn0.ZXlKaGJHY2lPaUFpVWxNeU5UWWlMQ0FpZEhsd0lqb2dJa3BYVkNJc0lDSmpkSGtpT2lBaVNsZFVJbjAuWlhsS2FHSkhZMmxQYVVGcFZXeE5lVTVVV1dsTVEwRnBaRWhzZDBscWIyZEphM0JZVmtOS09TNWxlVXB3WXpOTmFVOXBRV2xsU0dnMFNXNHdMbkpTVW5KbFVVOURZVzlaTFcxTmF6Y3lhazVHWlZrMVlWbEZVV2hKWjBsRmRGWmtVVGxZYmxsdFVVd3lUSGRmYURkTmJrazBVMFZQTVZCd2EwSklWRXB5Wm5samJFcGxUSHBmYWxKMlVHZEpNbGN4YURGQ05HTmFWRGhEWjIxcFZYZHhRWEk1YzBwdVpIbFZRMUZ0U1dScmJtNTNXa0k1Y1hBdFgzQlRkR1JIV0VvNVduQXplRW80TlhvdFZFSnBXbE4wUVVOVVpGZGxVa2xHU1VVM1ZreFBhMjB0Um14WmR6aDVPVGRuYVVONFRteFVkV2wzYW14bFRqTXdaRGhuV0hVeE5rWkdRekpUU2xodFJqWktiWFl0TmpKSGJFUmhMVzFDV0ZaMGJHSlZTVFZsV1ZVd2FUZHVlVE55UWpCWVVWUXhSa3Q0WlVaM09GODVOMDlGZFY5alkzVkxjbDgyWkhsSFpWRkhkblE1WTNKSmVFRkJNV0ZaYkRkbWJWQnJOa1ZoY2psbFRUTkthR1ZZTWkwMFdreDBkMUZPWTFSRFQwMVlWMGRJY2sxRGFHNU1XVmM0V0VGclRISkVibDl5Um14VWFWTXRady5YaWNjMnNXQ1pfTml0aHVjc3c5WEQ3WU9LcmlyVWRFbkgzTXlpUE0tQ2szdkVVMlJzVEJzZlUySlBoZmpwM3BoYzBWT2dzQVhDendVNVB3eU55VW8xNDkwcThZU3ltLWxpTXlPMkxrLWhqSDVmQXhvaXpnOXlENElJX2xLNld6X1RucGMwYkJHRExkYnVVaHZndk83eXFvLWxlQlFsc2ZSWE92dzRWU1BTRXk4UVB0YlVSdGJuTHBXWTJqR0JLejd2R0lfbzRxREozUGljRzBreUVpV1pOaDN3amVlQ1lSQ1d2WE44cWg3VWs1RUEtOEo1dlg2NTFHcVYtN2dtYVgxbi04RFhhbWhhQ1FjRS1wMWNqU2owNC1YLV9iSmxRdG1iLVRUM2JTeVVQeGdIVm5jdnhOVWJ5OGprVVR6Zmk1TU1ibUl6V1dreEk1WXRKVGR0bUNrUFE.ODBVH_gooCLJxtPVr1MjJC1syG4MnVUFP9LkI9pSaj0QABV4vpfqrBshHn8zOPgUTDeHwbc01Qy96cQlTMQQb94YANmZyL1nzwmdR4piiGXMGSlcCNfDg1o8DK4msMSR-X-j2IkxBDB8rfeFSfLRMgDCjAF0JolW7qWmMD9tBmFNYAjly4vMwToOXosDmFLl5eqyohXDf-3Ohljm5kIjtyMWkt5S9EVuwlIXh2owK5l59c4-TH29gkuaZ3uU4LFPjD7XKUrlOQnEMuu2QD8LAqTyxbnY4JyzUWEvyTM1dVmGnFpLKCg9QBly__y1u2ffhvDsHyuCmEKAbhPE98YvFA";
    let v = decode_verify(token, &constraints(serde_json::json!({ "cert": OPA_CERT }))).unwrap();
    assert_eq!(
        v,
        json(r#"[true, {"alg":"RS256","typ":"JWT"}, {"iss":"xxx"}]"#)
    );
}

#[test]
fn opa_decode_verify_hs256_float_times() {
    // jwtdecodeverify/hs256-float-nbf
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJ4eHgiLCJuYmYiOjEwMDAuMX0.8ab0xurlRs_glclA3Sm7OMQgwkQvE4HuLsfMOc4nVO8";
    let v = decode_verify(
        token,
        &json(r#"{"secret": "secret", "time": 2000000000000.1}"#),
    )
    .unwrap();
    assert_eq!(
        v,
        json(r#"[true, {"alg":"HS256","typ":"JWT"}, {"iss":"xxx","nbf":1000.1}]"#)
    );
    assert_eq!(verify(Alg::HS256, token, "secret"), Ok(true));
    assert_eq!(verify(Alg::HS256, token, "Secret"), Ok(false));
    assert_eq!(verify(Alg::HS384, token, "secret"), Ok(false));

    // hs256-float-nbf-equal and hs256-float-one-tenth-second-after-nbf
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJ4eHgiLCJuYmYiOjEuNTg5Mzg1NzcwMTIzNGUrMDl9.lvrsV1nam-BZr0SomWwsr4dBfu6BDrR2FzQ1iS_Xnrw";
    for time in ["1589385770123400000", "1589385770223400000"] {
        let v = decode_verify(
            token,
            &json(&format!(r#"{{"secret": "secret", "time": {time}}}"#)),
        )
        .unwrap();
        assert_eq!(v[0], Value::from(true), "time {time}");
        assert_eq!(v[2]["nbf"], json("1589385770.1234"));
    }
    // A tenth of a second before nbf.
    let v = decode_verify(
        token,
        &json(r#"{"secret": "secret", "time": 1589385770023400000}"#),
    )
    .unwrap();
    assert_eq!(v, unverified());
}

#[test]
fn opa_decode_verify_constraint_errors() {
    let token = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJpc3MiOiJ4eHgiLCJuYmYiOjEwMDAuMX0.8ab0xurlRs_glclA3Sm7OMQgwkQvE4HuLsfMOc4nVO8";
    let e = |c: &str| decode_verify(token, &json(c)).unwrap_err().0;
    assert_eq!(e(r#"{}"#), "no key constraint");
    assert_eq!(
        e(&format!(
            r#"{{"secret": "s", "cert": {}}}"#,
            serde_json::json!(OPA_CERT)
        )),
        "duplicate key constraints"
    );
    assert_eq!(
        e(r#"{"secret": "s", "bogus": 1}"#),
        "unknown token validation constraint: bogus"
    );
    assert_eq!(e(r#"{"secret": 1}"#), "secret constraint: must be a string");
    assert_eq!(
        e(r#"{"secret": "s", "time": "now"}"#),
        "token time constraint: must be a number"
    );
    assert_eq!(
        e(r#"{"secret": "s", "time": -1}"#),
        "token time constraint: must not be negative"
    );
    assert!(
        e(r#"{"cert": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----"}"#)
            .contains("certificate")
    );
    assert!(e(r#"{"cert": "not a key"}"#).contains("JWK"));
}

#[test]
fn opa_missing_iss_while_required_and_bad_claim_types() {
    // jwtdecodeverify/missing-iss-while-required
    let t = hs_token(r#"{"alg":"HS256"}"#, "{}", "42");
    assert_eq!(
        decode_verify(&t, &json(r#"{"secret":"42","iss":"xxx"}"#)).unwrap(),
        unverified()
    );
    // invalid-exp-type / invalid-nbf-type: errors, not `false`.
    let t = hs_token(r#"{"alg":"HS256"}"#, r#"{"exp":"soon"}"#, "42");
    assert_eq!(
        decode_verify(&t, &json(r#"{"secret":"42"}"#))
            .unwrap_err()
            .0,
        "exp value must be a number"
    );
    let t = hs_token(r#"{"alg":"HS256"}"#, r#"{"nbf":"later"}"#, "42");
    assert_eq!(
        decode_verify(&t, &json(r#"{"secret":"42"}"#))
            .unwrap_err()
            .0,
        "nbf value must be a number"
    );
}

#[test]
fn audience_rules() {
    let check = |payload: &str, c: &str| {
        decode_verify(&hs_token(r#"{"alg":"HS256"}"#, payload, "k"), &json(c)).unwrap()[0].clone()
    };
    let yes = Value::from(true);
    let no = Value::from(false);
    assert_eq!(
        check(r#"{"aud":"svc"}"#, r#"{"secret":"k","aud":"svc"}"#),
        yes
    );
    assert_eq!(
        check(r#"{"aud":["a","svc"]}"#, r#"{"secret":"k","aud":"svc"}"#),
        yes
    );
    assert_eq!(
        check(r#"{"aud":["a","b"]}"#, r#"{"secret":"k","aud":"svc"}"#),
        no
    );
    // A token with an audience needs an `aud` constraint that matches it.
    assert_eq!(check(r#"{"aud":"svc"}"#, r#"{"secret":"k"}"#), no);
    assert_eq!(check(r#"{}"#, r#"{"secret":"k"}"#), yes);
}

#[test]
fn header_rules() {
    let c = r#"{"secret":"k"}"#;
    let check = |header: &str| decode_verify(&hs_token(header, "{}", "k"), &json(c));
    // No alg, or an unknown critical parameter: not valid.
    assert_eq!(check(r#"{"typ":"JWT"}"#).unwrap(), unverified());
    assert_eq!(
        check(r#"{"alg":"HS256","crit":["exp2"],"exp2":1}"#).unwrap(),
        unverified()
    );
    // A critical parameter usher understands is fine.
    assert_eq!(
        check(r#"{"alg":"HS256","crit":["kid"],"kid":"a"}"#).unwrap()[0],
        Value::from(true)
    );
    // Malformed header fields are errors.
    assert!(check(r#"{"alg":1}"#).is_err());
    assert!(check(r#"{"alg":"HS256","crit":[]}"#).is_err());
}

// ------------------------------------------------------- tokens signed here

const RSA: &str = include_str!("testdata/rsa.pem");
const RSA_PUB: &str = include_str!("testdata/rsa.pub.pem");
const RSA_CRT: &str = include_str!("testdata/rsa.crt.pem");
const P256: &str = include_str!("testdata/p256.pem");
const P256_PUB: &str = include_str!("testdata/p256.pub.pem");
const P256_CRT: &str = include_str!("testdata/p256.crt.pem");
const P384: &str = include_str!("testdata/p384.pem");
const P384_PUB: &str = include_str!("testdata/p384.pub.pem");
const P384_CRT: &str = include_str!("testdata/p384.crt.pem");
const P521: &str = include_str!("testdata/p521.pem");
const P521_PUB: &str = include_str!("testdata/p521.pub.pem");
const P521_CRT: &str = include_str!("testdata/p521.crt.pem");
const ED: &str = include_str!("testdata/ed.pem");
const ED_PUB: &str = include_str!("testdata/ed.pub.pem");
const ED_CRT: &str = include_str!("testdata/ed.crt.pem");

fn der(pem: &str) -> Vec<u8> {
    x509_parser::pem::parse_x509_pem(pem.as_bytes())
        .unwrap()
        .1
        .contents
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Signs `header.payload` with the PKCS#8 key `key` (or the HMAC secret).
fn sign(alg: &str, key: &str, message: &[u8]) -> Vec<u8> {
    let rng = SystemRandom::new();
    let rsa = |params: &'static dyn sig::RsaEncoding| {
        let kp = sig::RsaKeyPair::from_pkcs8(&der(key)).unwrap();
        let mut out = vec![0; kp.public_modulus_len()];
        kp.sign(params, &rng, message, &mut out).unwrap();
        out
    };
    let ec = |a: &'static sig::EcdsaSigningAlgorithm| {
        let kp = sig::EcdsaKeyPair::from_pkcs8(a, &der(key)).unwrap();
        kp.sign(&rng, message).unwrap().as_ref().to_vec()
    };
    let mac = |a| {
        hmac::sign(&hmac::Key::new(a, key.as_bytes()), message)
            .as_ref()
            .to_vec()
    };
    match alg {
        "RS256" => rsa(&sig::RSA_PKCS1_SHA256),
        "RS384" => rsa(&sig::RSA_PKCS1_SHA384),
        "RS512" => rsa(&sig::RSA_PKCS1_SHA512),
        "PS256" => rsa(&sig::RSA_PSS_SHA256),
        "PS384" => rsa(&sig::RSA_PSS_SHA384),
        "PS512" => rsa(&sig::RSA_PSS_SHA512),
        "ES256" => ec(&sig::ECDSA_P256_SHA256_FIXED_SIGNING),
        "ES384" => ec(&sig::ECDSA_P384_SHA384_FIXED_SIGNING),
        "ES512" => ec(&sig::ECDSA_P521_SHA512_FIXED_SIGNING),
        "EdDSA" => sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der(key))
            .unwrap()
            .sign(message)
            .as_ref()
            .to_vec(),
        "HS256" => mac(hmac::HMAC_SHA256),
        "HS384" => mac(hmac::HMAC_SHA384),
        "HS512" => mac(hmac::HMAC_SHA512),
        other => panic!("no signer for {other}"),
    }
}

fn token_with(header: &str, payload: &str, alg: &str, key: &str) -> String {
    let message = format!("{}.{}", b64(header.as_bytes()), b64(payload.as_bytes()));
    let signature = sign(alg, key, message.as_bytes());
    format!("{message}.{}", b64(&signature))
}

fn token(alg: &str, key: &str) -> String {
    token_with(
        &format!(r#"{{"alg":"{alg}","typ":"JWT"}}"#),
        r#"{"sub":"alice","iss":"usher"}"#,
        alg,
        key,
    )
}

fn hs_token(header: &str, payload: &str, secret: &str) -> String {
    token_with(header, payload, "HS256", secret)
}

/// Flips a character of the payload, keeping the signature.
fn tampered(token: &str) -> String {
    let mut parts: Vec<String> = token.split('.').map(String::from).collect();
    let payload = String::from_utf8(URL_SAFE_NO_PAD.decode(&parts[1]).unwrap()).unwrap();
    parts[1] = b64(payload.replace("alice", "mallory").as_bytes());
    parts.join(".")
}

struct Family {
    algs: &'static [(&'static str, Alg)],
    key: &'static str,
    public: [&'static str; 2],
    other_public: &'static str,
}

fn families() -> Vec<Family> {
    vec![
        Family {
            algs: &[
                ("RS256", Alg::RS256),
                ("RS384", Alg::RS384),
                ("RS512", Alg::RS512),
                ("PS256", Alg::PS256),
                ("PS384", Alg::PS384),
                ("PS512", Alg::PS512),
            ],
            key: RSA,
            public: [RSA_PUB, RSA_CRT],
            other_public: P256_PUB,
        },
        Family {
            algs: &[("ES256", Alg::ES256)],
            key: P256,
            public: [P256_PUB, P256_CRT],
            other_public: P384_PUB,
        },
        Family {
            algs: &[("ES384", Alg::ES384)],
            key: P384,
            public: [P384_PUB, P384_CRT],
            other_public: P256_CRT,
        },
        Family {
            algs: &[("ES512", Alg::ES512)],
            key: P521,
            public: [P521_PUB, P521_CRT],
            other_public: RSA_CRT,
        },
        Family {
            algs: &[("EdDSA", Alg::EdDSA)],
            key: ED,
            public: [ED_PUB, ED_CRT],
            other_public: P521_PUB,
        },
    ]
}

#[test]
fn verify_every_asymmetric_algorithm() {
    for f in families() {
        for (name, alg) in f.algs {
            let t = token(name, f.key);
            for public in f.public {
                assert_eq!(
                    verify(*alg, &t, public),
                    Ok(true),
                    "{name} with {public:.30}"
                );
                assert_eq!(
                    verify(*alg, &tampered(&t), public),
                    Ok(false),
                    "{name} tampered"
                );
                let v =
                    decode_verify(&t, &constraints(serde_json::json!({ "cert": public }))).unwrap();
                assert_eq!(v[0], Value::from(true), "decode_verify {name}");
                assert_eq!(v[2], json(r#"{"sub":"alice","iss":"usher"}"#));
                let v = decode_verify(
                    &tampered(&t),
                    &constraints(serde_json::json!({ "cert": public })),
                )
                .unwrap();
                assert_eq!(v, unverified(), "decode_verify {name} tampered");
            }
            // Another key (of another type, or curve) never verifies.
            assert_eq!(
                verify(*alg, &t, f.other_public),
                Ok(false),
                "{name} with another key"
            );
            // A secret never verifies an asymmetric algorithm.
            let v = decode_verify(&t, &json(r#"{"secret":"s"}"#)).unwrap();
            assert_eq!(v, unverified(), "{name} with a secret");
        }
    }
}

#[test]
fn verify_hmac_algorithms() {
    for (name, alg) in [
        ("HS256", Alg::HS256),
        ("HS384", Alg::HS384),
        ("HS512", Alg::HS512),
    ] {
        let t = token(name, "s3cr3t");
        assert_eq!(verify(alg, &t, "s3cr3t"), Ok(true), "{name}");
        assert_eq!(verify(alg, &t, "other"), Ok(false), "{name}");
        assert_eq!(verify(alg, &tampered(&t), "s3cr3t"), Ok(false), "{name}");
        let v = decode_verify(&t, &json(r#"{"secret":"s3cr3t"}"#)).unwrap();
        assert_eq!(v[0], Value::from(true));
        // Algorithm confusion: an HMAC token "signed" with a public key's
        // text does not verify against that key.
        let forged = token(name, RSA_PUB);
        let v = decode_verify(
            &forged,
            &constraints(serde_json::json!({ "cert": RSA_PUB })),
        )
        .unwrap();
        assert_eq!(v, unverified(), "{name} forged with the public key");
    }
}

#[test]
fn alg_none_is_never_accepted() {
    let message = format!(
        "{}.{}",
        b64(br#"{"alg":"none"}"#),
        b64(br#"{"sub":"root"}"#)
    );
    let unsigned = format!("{message}.");
    for c in [
        serde_json::json!({ "secret": "s" }),
        serde_json::json!({ "cert": RSA_PUB }),
        serde_json::json!({ "secret": "s", "alg": "none" }),
    ] {
        assert_eq!(
            decode_verify(&unsigned, &constraints(c)).unwrap(),
            unverified()
        );
    }
    assert_eq!(verify(Alg::RS256, &unsigned, RSA_PUB), Ok(false));
    assert_eq!(verify(Alg::HS256, &unsigned, ""), Ok(false));
    assert_eq!(Alg::from_name("none"), None);
    // decode is not verification: it still shows such a token.
    assert_eq!(decode(&unsigned).unwrap()[0]["alg"], Value::from("none"));
}

/// The public key of a PEM, as JWK members.
fn jwk(public: &str, kid: &str, alg: &str) -> serde_json::Value {
    use x509_parser::public_key::PublicKey;
    let d = der(public);
    let (_, spki) = SubjectPublicKeyInfo::from_der(&d).unwrap();
    match spki.parsed().unwrap() {
        PublicKey::RSA(k) => serde_json::json!({
            "kty": "RSA", "kid": kid, "alg": alg,
            "n": b64(k.modulus), "e": b64(k.exponent),
        }),
        PublicKey::EC(point) => {
            let p = point.data();
            let size = (p.len() - 1) / 2;
            let crv = match size {
                32 => "P-256",
                48 => "P-384",
                _ => "P-521",
            };
            serde_json::json!({
                "kty": "EC", "crv": crv, "kid": kid, "alg": alg,
                "x": b64(&p[1..1 + size]), "y": b64(&p[1 + size..]),
            })
        }
        _ => serde_json::json!({
            "kty": "OKP", "crv": "Ed25519", "kid": kid, "alg": alg,
            "x": b64(&spki.subject_public_key.data),
        }),
    }
}

#[test]
fn jwks_keys_chosen_by_kid_and_alg() {
    let jwks = serde_json::json!({ "keys": [
        jwk(P256_PUB, "ec-1", "ES256"),
        jwk(RSA_PUB, "rsa-1", "RS256"),
        jwk(P521_PUB, "ec-521", "ES512"),
        jwk(ED_PUB, "ed-1", "EdDSA"),
    ]})
    .to_string();
    let with_kid = |alg: &str, key: &str, kid: &str| {
        token_with(
            &format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
            r#"{"sub":"alice"}"#,
            alg,
            key,
        )
    };
    // kid selects the key.
    assert_eq!(
        verify(Alg::RS256, &with_kid("RS256", RSA, "rsa-1"), &jwks),
        Ok(true)
    );
    assert_eq!(
        verify(Alg::ES512, &with_kid("ES512", P521, "ec-521"), &jwks),
        Ok(true)
    );
    assert_eq!(
        verify(Alg::EdDSA, &with_kid("EdDSA", ED, "ed-1"), &jwks),
        Ok(true)
    );
    // A kid naming the wrong key: only that key is tried.
    assert_eq!(
        verify(Alg::RS256, &with_kid("RS256", RSA, "ec-1"), &jwks),
        Ok(false)
    );
    // No kid: every key whose alg matches the header's.
    assert_eq!(verify(Alg::ES256, &token("ES256", P256), &jwks), Ok(true));
    // A JWK whose alg differs from the header's is skipped.
    let only_rs512 = serde_json::json!({ "keys": [jwk(RSA_PUB, "", "RS512")] }).to_string();
    assert_eq!(
        verify(Alg::RS256, &token("RS256", RSA), &only_rs512),
        Ok(false)
    );
    // A single JWK (not a set) works too, and in decode_verify.
    let single = jwk(P384_PUB, "", "ES384").to_string();
    assert_eq!(verify(Alg::ES384, &token("ES384", P384), &single), Ok(true));
    let v = decode_verify(
        &token("ES384", P384),
        &constraints(serde_json::json!({ "cert": single })),
    )
    .unwrap();
    assert_eq!(v[0], Value::from(true));
    // An HMAC key in a JWKS verifies HS tokens in decode_verify.
    let oct = serde_json::json!({ "keys": [{ "kty": "oct", "k": b64(b"k3y"), "alg": "HS256" }] })
        .to_string();
    let v = decode_verify(
        &token("HS256", "k3y"),
        &constraints(serde_json::json!({ "cert": oct })),
    )
    .unwrap();
    assert_eq!(v[0], Value::from(true));
}

#[test]
fn key_parsing_errors() {
    let t = token("RS256", RSA);
    assert!(verify(Alg::RS256, &t, "garbage").is_err());
    assert!(verify(
        Alg::RS256,
        &t,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
    )
    .is_err());
    // Extra data after the PEM block.
    assert!(verify(Alg::RS256, &t, &format!("{RSA_PUB}trailing")).is_err());
    // A private key is not a verification key.
    assert!(verify(Alg::RS256, &t, RSA).is_err());
    assert!(verify(Alg::RS256, "a.b", RSA_PUB).is_err());
}

#[test]
fn decode_verify_time_defaults_to_now() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let fresh = hs_token(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{}}}"#, now + 600),
        "k",
    );
    let stale = hs_token(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"exp":{}}}"#, now - 600),
        "k",
    );
    let early = hs_token(
        r#"{"alg":"HS256"}"#,
        &format!(r#"{{"nbf":{}}}"#, now + 600),
        "k",
    );
    let c = json(r#"{"secret":"k"}"#);
    assert_eq!(decode_verify(&fresh, &c).unwrap()[0], Value::from(true));
    assert_eq!(decode_verify(&stale, &c).unwrap(), unverified());
    assert_eq!(decode_verify(&early, &c).unwrap(), unverified());
}

// ----------------------------------------------------------- through Rego

fn eval(rego: &str, query: &str) -> Value {
    let mut engine = Engine::new();
    register(&mut engine).unwrap();
    engine.add_policy("t.rego".into(), rego.into()).unwrap();
    engine.eval_rule(query.into()).unwrap()
}

#[test]
fn builtins_in_rego() {
    let t = token("ES256", P256);
    let rego = format!(
        r#"package t
token := "{t}"
cert := {cert}
header := io.jwt.decode(token)[0]
ok := io.jwt.verify_es256(token, cert)
wrong := io.jwt.verify_rs256(token, cert)
valid if {{
    [valid, _, payload] := io.jwt.decode_verify(token, {{"cert": cert, "iss": "usher"}})
    valid
    payload.sub == "alice"
}}
garbage := io.jwt.decode("garbage")
"#,
        cert = serde_json::json!(P256_CRT)
    );
    assert_eq!(
        eval(&rego, "data.t.header"),
        json(r#"{"alg":"ES256","typ":"JWT"}"#)
    );
    assert_eq!(eval(&rego, "data.t.ok"), Value::from(true));
    assert_eq!(eval(&rego, "data.t.wrong"), Value::from(false));
    assert_eq!(eval(&rego, "data.t.valid"), Value::from(true));
    // A malformed token makes the call undefined (OPA without strict errors).
    assert_eq!(eval(&rego, "data.t.garbage"), Value::Undefined);
}

#[test]
fn bounded_ranges() {
    let rego = r#"package t
small := numbers.range(1, 3)
down := numbers.range(3, 1)
stepped := numbers.range_step(0, 10, 5)
"#;
    assert_eq!(eval(rego, "data.t.small"), json("[1,2,3]"));
    assert_eq!(eval(rego, "data.t.down"), json("[3,2,1]"));
    assert_eq!(eval(rego, "data.t.stepped"), json("[0,5,10]"));
    let mut engine = Engine::new();
    register_one(&mut engine, "numbers.range").unwrap();
    engine
        .add_policy(
            "t.rego".into(),
            "package t\nhuge := count(numbers.range(1, 100000000))\n".into(),
        )
        .unwrap();
    let e = engine.eval_rule("data.t.huge".into()).unwrap_err();
    assert!(format!("{e:#}").contains("exceed usher's limit"), "{e:#}");
    // The widest range there is: refused, not overflowed into an empty one.
    let r = bounded_range(&[Value::from(i64::MIN), Value::from(i64::MAX)], false);
    assert!(r.is_err());
}
