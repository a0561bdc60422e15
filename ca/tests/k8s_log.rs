//! What `usher ca serve` logs about enrolments with Kubernetes service
//! account tokens: who enrolled (namespace, service account, pod) as an
//! audit record, why a token was refused, and never the token itself.
//! A binary of its own for the reason given in tests/enrol_log.rs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use usher_ca::{
    init_ca, make_key_and_csr, CaClient, CaClientError, CaServer, CaServerConfig, JwksSource,
    K8sAuthConfig, SpiffeId,
};

#[path = "common/capture.rs"]
mod capture;
use capture::Capture;

fn token(key: &EncodingKey, aud: &str) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({
        "aud": [aud], "exp": now + 600, "iat": now, "nbf": now,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": "shop",
            "pod": {"name": "web-7d9f8c6b5-x2k4q", "uid": "9a8b7c6d"},
            "serviceaccount": {"name": "web", "uid": "1b2c3d4e"}
        },
        "sub": "system:serviceaccount:shop:web"
    });
    let mut header = Header::new(Algorithm::RS256);
    header.typ = None;
    header.kid = Some("k1".to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn token_enrolments_are_audited_and_tokens_never_logged() {
    let capture = Capture::default();
    let _log = tracing::subscriber::set_default(capture.clone());
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "example.org", false).unwrap();
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.cert_ttl = Duration::from_secs(3600);
    // Every failure opens a window of its own, so each is logged in full.
    cfg.enrol_failure_window = Duration::from_millis(1);
    cfg.k8s = Some(K8sAuthConfig::new(
        Some("https://kubernetes.default.svc.cluster.local".to_owned()),
        Some(JwksSource::File(jwks)),
    ));
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = CaClient::new(&format!("https://{}", server.addr), &bundle).unwrap();
    let id = SpiffeId::parse("spiffe://example.org/ns/shop/sa/web").unwrap();
    let (_, csr) = make_key_and_csr(&id).unwrap();

    let good = token(&key, "usher-ca");
    client.enrol(&good, &csr).await.unwrap();
    let wrong = token(&key, "https://kubernetes.default.svc.cluster.local");
    match client.enrol(&wrong, &csr).await {
        Err(CaClientError::Refused { status: 401, .. }) => {}
        other => panic!("{other:?}"),
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let garbage = "not-a-bootstrap-token.SECRETMARKER.xyz";
    assert!(client.enrol(garbage, &csr).await.is_err());
    server.shutdown().await;

    let enrolled = capture.messages("enrolled with a Kubernetes service account token");
    assert_eq!(enrolled.len(), 1, "{enrolled:?}");
    let e = &enrolled[0];
    assert_eq!(e["target"], "usher::audit");
    assert_eq!(e["spiffe_id"], "spiffe://example.org/ns/shop/sa/web");
    assert_eq!(e["namespace"], "shop");
    assert_eq!(e["service_account"], "web");
    assert_eq!(e["pod"], "web-7d9f8c6b5-x2k4q");

    let refused = capture.messages("CA request refused");
    assert_eq!(refused.len(), 2, "{refused:?}");
    assert!(refused.iter().all(|e| e["status"] == "401"), "{refused:?}");
    assert!(
        refused[0]["reason"].contains("aud does not contain the audience"),
        "{refused:?}"
    );
    assert!(refused[1]["reason"].contains("not a JWT"), "{refused:?}");

    // No field of any line holds a token, or a piece of one.
    let secrets = [
        good.as_str(),
        good.rsplit('.').next().unwrap(),
        wrong.as_str(),
        wrong.rsplit('.').next().unwrap(),
        "SECRETMARKER",
    ];
    for event in capture.0.lock().unwrap().iter() {
        for (field, value) in event {
            for secret in secrets {
                assert!(
                    !value.contains(secret),
                    "{field} holds (part of) a token: {event:?}"
                );
            }
        }
    }
}
