//! The pieces of service account token checking that need no server; the
//! whole path, with real signed tokens and a real server, is in
//! `tests/k8s.rs`.

use super::jwks::Jwks;
use super::*;
use serde_json::json;

#[test]
fn path_segments() {
    for ok in ["shop", "kube-system", "a.b", "A_b-9"] {
        assert!(is_path_segment(ok), "{ok}");
    }
    for bad in ["", ".", "..", "a/b", "a:b", "a b", "é", "a%2Fb", "a?b"] {
        assert!(!is_path_segment(bad), "{bad:?}");
    }
}

#[test]
fn jwks_source_is_a_file_or_an_https_url() {
    assert_eq!(
        JwksSource::parse("https://kubernetes.default.svc/openid/v1/jwks").unwrap(),
        JwksSource::Url("https://kubernetes.default.svc/openid/v1/jwks".to_owned())
    );
    assert_eq!(
        JwksSource::parse("/etc/usher/jwks.json").unwrap(),
        JwksSource::File("/etc/usher/jwks.json".into())
    );
    assert!(JwksSource::parse("http://example.org/jwks").is_err());
    assert!(JwksSource::parse("https://u@example.org/jwks").is_err());
    assert!(JwksSource::parse("").is_err());
}

fn claims(sub: &str, ns: &str, sa: &str) -> serde_json::Value {
    json!({
        "sub": sub,
        "kubernetes.io": {
            "namespace": ns,
            "pod": {"name": "web-7d9f", "uid": "6f1c"},
            "serviceaccount": {"name": sa, "uid": "1e2f"}
        }
    })
}

#[test]
fn identity_comes_from_sub_and_the_kubernetes_claim_together() {
    let who = identity(
        &claims("system:serviceaccount:shop:web", "shop", "web"),
        "example.org",
    )
    .unwrap();
    assert_eq!(
        who.spiffe_id.as_str(),
        "spiffe://example.org/ns/shop/sa/web"
    );
    assert_eq!(who.pod.as_deref(), Some("web-7d9f"));

    for (sub, ns, sa) in [
        ("system:serviceaccount:shop:web", "bank", "web"),
        ("system:serviceaccount:shop:web", "shop", "admin"),
    ] {
        assert!(
            matches!(
                identity(&claims(sub, ns, sa), "example.org"),
                Err(K8sTokenError::Disagree { .. })
            ),
            "{sub} {ns} {sa}"
        );
    }
    for sub in [
        "system:serviceaccount:shop",
        "system:serviceaccount::web",
        "system:serviceaccount:shop:",
        "system:serviceaccount:shop:web:extra",
        "system:node:shop:web",
        "shop:web",
    ] {
        assert!(
            matches!(
                identity(&claims(sub, "shop", "web"), "example.org"),
                Err(K8sTokenError::BadSubject { .. })
            ),
            "{sub}"
        );
    }
    for (ns, sa) in [
        ("a/b", "web"),
        ("..", "web"),
        ("shop", "."),
        ("shop", "w b"),
    ] {
        let sub = format!("system:serviceaccount:{ns}:{sa}");
        assert!(
            matches!(
                identity(&claims(&sub, ns, sa), "example.org"),
                Err(K8sTokenError::BadName { .. })
            ),
            "{ns} {sa}"
        );
    }
    let no_claim = json!({"sub": "system:serviceaccount:shop:web"});
    assert!(matches!(
        identity(&no_claim, "example.org"),
        Err(K8sTokenError::MissingClaim(_))
    ));
}

#[test]
fn key_sets_keep_only_signing_public_keys() {
    let rsa = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let enc = jsonwebtoken::EncodingKey::from_rsa_pem(rsa.serialize_pem().as_bytes()).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&enc, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let rsa_json = serde_json::to_value(&jwk).unwrap();
    let set = json!({"keys": [
        rsa_json,
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "OKP", "kid": "x", "crv": "X25519", "x": "AAAA"}
    ]});
    let jwks = Jwks::parse(set.to_string().as_bytes()).unwrap();
    assert_eq!(jwks.keys.len(), 1);
    assert!(jwks.has_kid("k1"));
    assert!(!jwks.has_kid("hmac"));
    assert_eq!(jwks.skipped.len(), 2, "{:?}", jwks.skipped);

    let only_oct = json!({"keys": [{"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"}]});
    assert!(Jwks::parse(only_oct.to_string().as_bytes()).is_err());
    assert!(Jwks::parse(b"{\"keys\": []}").is_err());
    assert!(Jwks::parse(b"not json").is_err());
}
