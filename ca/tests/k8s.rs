//! Enrolment with Kubernetes projected service account tokens, end to end:
//! a real CA server on 127.0.0.1 port 0, tokens shaped exactly as the API
//! server issues them (RS256 / ES256, `kid`, `aud`, `iss`, `exp`/`nbf`/`iat`,
//! `sub` and the `kubernetes.io` claim) signed by keys made here, the keys
//! read from a JWKS file or found by OIDC discovery on a real local HTTPS
//! server; then every way such a token can be wrong.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, IsCa, KeyPair,
    SanType, PKCS_ECDSA_P256_SHA256, PKCS_RSA_SHA256,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{json, Value};
use usher_ca::{
    init_ca, init_intermediate, make_key_and_csr, mint_token, read_issued_log,
    spiffe_id_from_cert_der, CaClient, CaClientError, CaError, CaServer, CaServerConfig,
    CaServerError, IdPattern, IssuedHow, JwksSource, K8sAuthConfig, SignedCert, SpiffeId,
    TokenSpec,
};

const TD: &str = "example.org";
const ISSUER: &str = "https://kubernetes.default.svc.cluster.local";
const WEB: &str = "spiffe://example.org/ns/shop/sa/web";

// ---- keys and tokens ----------------------------------------------------------------

/// A signing key of the "cluster", with its JWK.
struct Signer {
    kid: String,
    alg: Algorithm,
    key: EncodingKey,
    jwk: Jwk,
    public_pem: String,
}

fn signer(alg: Algorithm, kid: &str) -> Signer {
    let (pair, key) = match alg {
        Algorithm::RS256 => {
            let pair = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
            let key = EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
            (pair, key)
        }
        Algorithm::ES256 => {
            let pair = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
            let key = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
            (pair, key)
        }
        other => panic!("no test key for {other:?}"),
    };
    let mut jwk = Jwk::from_encoding_key(&key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_owned());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Signer {
        kid: kid.to_owned(),
        alg,
        key,
        jwk,
        public_pem: pair.public_key_pem(),
    }
}

/// `{"keys": [...]}` as `/openid/v1/jwks` serves it.
fn jwks(signers: &[&Signer]) -> String {
    json!({ "keys": signers.iter().map(|s| &s.jwk).collect::<Vec<_>>() }).to_string()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a projected token (`serviceAccountToken` volume source,
/// audience usher-ca, ten minutes), as Kubernetes 1.30 writes them.
fn claims(ns: &str, sa: &str) -> Value {
    let now = now();
    json!({
        "aud": ["usher-ca"],
        "exp": now + 600,
        "iat": now,
        "iss": ISSUER,
        "jti": "4c8d1b1e-7a1f-4b8e-9d55-2f3e8c1a9b70",
        "kubernetes.io": {
            "namespace": ns,
            "node": {"name": "kind-worker", "uid": "0d3f6b5a-2c1e-4a8b-9f7d-6e5c4b3a2910"},
            "pod": {"name": format!("{sa}-7d9f8c6b5-x2k4q"), "uid": "9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d"},
            "serviceaccount": {"name": sa, "uid": "1b2c3d4e-5f6a-4b7c-8d9e-0f1a2b3c4d5e"}
        },
        "nbf": now,
        "sub": format!("system:serviceaccount:{ns}:{sa}")
    })
}

/// Signs `claims` as the API server does: header `{"alg", "kid"}` only.
fn sign(signer: &Signer, claims: &Value) -> String {
    let mut header = Header::new(signer.alg);
    header.typ = None;
    header.kid = Some(signer.kid.clone());
    jsonwebtoken::encode(&header, claims, &signer.key).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

// ---- the CA ---------------------------------------------------------------------------

struct Ca {
    dir: tempfile::TempDir,
    server: CaServer,
    client: CaClient,
}

fn k8s_config(jwks: JwksSource) -> K8sAuthConfig {
    K8sAuthConfig::new(Some(ISSUER.to_owned()), Some(jwks))
}

async fn start_ca(k8s: Option<K8sAuthConfig>) -> Result<Ca, CaServerError> {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.cert_ttl = Duration::from_secs(3600);
    // The attack tests fail on purpose, many times, from one address.
    cfg.enrol_failure_limit = 1000;
    cfg.k8s = k8s;
    let server = CaServer::start(cfg).await?;
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = CaClient::new(&format!("https://{}", server.addr), &bundle).unwrap();
    Ok(Ca {
        dir,
        server,
        client,
    })
}

/// A CA whose keys are the JWKS file `signers` make.
async fn file_ca(signers: &[&Signer]) -> (Ca, tempfile::TempDir) {
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("jwks.json");
    std::fs::write(&path, jwks(signers)).unwrap();
    let ca = start_ca(Some(k8s_config(JwksSource::File(path))))
        .await
        .unwrap();
    (ca, keys)
}

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

/// A CSR with no SAN at all (the CA is to put the token's ID).
fn csr_without_id() -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

async fn enrol(ca: &Ca, token: &str, spiffe_id: &str) -> Result<SignedCert, CaClientError> {
    let (_, csr) = make_key_and_csr(&id(spiffe_id)).unwrap();
    ca.client.enrol(token, &csr).await
}

fn refusal(result: Result<SignedCert, CaClientError>) -> (u16, String) {
    match result {
        Err(CaClientError::Refused { status, message }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// Enrols for WEB with `token`; the status and message of the refusal.
async fn refused(ca: &Ca, token: &str) -> (u16, String) {
    refusal(enrol(ca, token, WEB).await)
}

fn leaf_id(signed: &SignedCert) -> SpiffeId {
    let der = CertificateDer::pem_slice_iter(signed.cert_chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    spiffe_id_from_cert_der(&der).unwrap()
}

fn nothing_issued_but_the_server(dir: &Path) {
    let log = read_issued_log(dir).unwrap();
    assert!(
        log.iter().all(|e| e.how == IssuedHow::Server),
        "issued: {log:?}"
    );
}

// ---- enrolment ---------------------------------------------------------------------------

#[tokio::test]
async fn a_projected_token_enrols_for_its_service_account() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let ec = signer(Algorithm::ES256, "ec-1");
    let (ca, _keys) = file_ca(&[&rsa, &ec]).await;

    // RS256, the CSR asking for exactly the token's ID.
    let token = sign(&rsa, &claims("shop", "web"));
    let signed = enrol(&ca, &token, WEB).await.unwrap();
    assert_eq!(leaf_id(&signed), id(WEB));

    // The same token again: a projected token is not single-use (a
    // restarted sidecar presents it again until the kubelet rotates it).
    let again = enrol(&ca, &token, WEB).await.unwrap();
    assert_ne!(again.serial_hex, signed.serial_hex);

    // ES256, and a CSR with no SAN: the CA puts the token's ID.
    let token = sign(&ec, &claims("bank", "ledger"));
    let signed = ca.client.enrol(&token, &csr_without_id()).await.unwrap();
    assert_eq!(
        leaf_id(&signed),
        id("spiffe://example.org/ns/bank/sa/ledger")
    );

    // Just inside the leeway still works.
    let mut c = claims("shop", "web");
    c["exp"] = json!(now() - 5);
    enrol(&ca, &sign(&rsa, &c), WEB).await.unwrap();

    let log = read_issued_log(ca.dir.path()).unwrap();
    let by_token: Vec<_> = log
        .iter()
        .filter(|e| e.how == IssuedHow::ServiceAccount)
        .map(|e| e.spiffe_id.as_str())
        .collect();
    assert_eq!(
        by_token,
        [WEB, WEB, "spiffe://example.org/ns/bank/sa/ledger", WEB]
    );
    ca.server.shutdown().await;
}

#[tokio::test]
async fn renewal_after_a_token_enrolment_uses_the_certificate() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let (key, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let first = ca
        .client
        .enrol(&sign(&rsa, &claims("shop", "web")), &csr)
        .await
        .unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let renewed = ca
        .client
        .renew(&first.cert_chain_pem, &key, &csr)
        .await
        .unwrap();
    assert_eq!(leaf_id(&renewed), id(WEB));
    ca.server.shutdown().await;
}

#[tokio::test]
async fn a_csr_for_another_spiffe_id_is_403() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let token = sign(&rsa, &claims("shop", "web"));
    for other in [
        "spiffe://example.org/ns/shop/sa/db",
        "spiffe://example.org/ns/kube-system/sa/web",
        "spiffe://example.org/ns/shop/sa/web/extra",
        "spiffe://other.org/ns/shop/sa/web",
    ] {
        let (status, message) = refusal(enrol(&ca, &token, other).await);
        assert_eq!(
            (status, message.as_str()),
            (
                403,
                "the service account token does not allow this SPIFFE ID"
            ),
            "{other}"
        );
    }
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

// ---- the token's claims -------------------------------------------------------------------

/// Signs `claims("shop", "web")` after `edit` with `rsa` and expects the
/// refusal `(status, message)`.
async fn expect_refused(ca: &Ca, rsa: &Signer, edit: impl FnOnce(&mut Value), want: (u16, &str)) {
    let mut c = claims("shop", "web");
    edit(&mut c);
    let (status, message) = refused(ca, &sign(rsa, &c)).await;
    assert_eq!((status, message.as_str()), want, "claims: {c}");
}

#[tokio::test]
async fn wrong_audience_is_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let want = (401, "service account token for another audience");
    // The API server's own audience: an ordinary pod token.
    expect_refused(&ca, &rsa, |c| c["aud"] = json!([ISSUER]), want).await;
    expect_refused(&ca, &rsa, |c| c["aud"] = json!("usher-ca-dev"), want).await;
    expect_refused(&ca, &rsa, |c| c["aud"] = json!([]), want).await;
    let no_aud = (401, "service account token without a required claim");
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c.as_object_mut().unwrap().remove("aud");
        },
        no_aud,
    )
    .await;
    // Among several audiences, usher-ca is enough.
    let mut c = claims("shop", "web");
    c["aud"] = json!([ISSUER, "usher-ca"]);
    enrol(&ca, &sign(&rsa, &c), WEB).await.unwrap();
    ca.server.shutdown().await;
}

#[tokio::test]
async fn a_configured_audience_replaces_usher_ca() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&rsa])).unwrap();
    let mut k8s = k8s_config(JwksSource::File(path));
    k8s.audience = "mesh-ca".to_owned();
    let ca = start_ca(Some(k8s)).await.unwrap();
    let (status, message) = refused(&ca, &sign(&rsa, &claims("shop", "web"))).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "service account token for another audience")
    );
    let mut c = claims("shop", "web");
    c["aud"] = json!(["mesh-ca"]);
    enrol(&ca, &sign(&rsa, &c), WEB).await.unwrap();
    ca.server.shutdown().await;
}

#[tokio::test]
async fn wrong_issuer_is_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let want = (401, "service account token from another issuer");
    expect_refused(
        &ca,
        &rsa,
        |c| c["iss"] = json!("https://evil.example"),
        want,
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| c["iss"] = json!("kubernetes/serviceaccount"),
        want,
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c.as_object_mut().unwrap().remove("iss");
        },
        (401, "service account token without a required claim"),
    )
    .await;
    ca.server.shutdown().await;
}

#[tokio::test]
async fn expired_and_not_yet_valid_tokens_are_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let n = now();
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c["iat"] = json!(n - 1200);
            c["nbf"] = json!(n - 1200);
            c["exp"] = json!(n - 120);
        },
        (401, "service account token expired"),
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c["nbf"] = json!(n + 300);
            c["iat"] = json!(n + 300);
            c["exp"] = json!(n + 900);
        },
        (401, "service account token not valid yet"),
    )
    .await;
    // nbf in the future alone.
    expect_refused(
        &ca,
        &rsa,
        |c| c["nbf"] = json!(n + 300),
        (401, "service account token not valid yet"),
    )
    .await;
    // iat in the future with a valid nbf: iat is checked too.
    expect_refused(
        &ca,
        &rsa,
        |c| c["iat"] = json!(n + 300),
        (401, "service account token not valid yet"),
    )
    .await;
    for claim in ["exp", "nbf", "iat"] {
        expect_refused(
            &ca,
            &rsa,
            |c| {
                c.as_object_mut().unwrap().remove(claim);
            },
            (401, "service account token without a required claim"),
        )
        .await;
    }
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

#[tokio::test]
async fn sub_and_kubernetes_claim_must_agree() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let want = (
        401,
        "the service account token's sub and kubernetes.io claims do not agree",
    );
    // The claim says another service account, or another namespace.
    expect_refused(
        &ca,
        &rsa,
        |c| c["kubernetes.io"]["serviceaccount"]["name"] = json!("admin"),
        want,
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| c["kubernetes.io"]["namespace"] = json!("kube-system"),
        want,
    )
    .await;
    // sub is not a service account's.
    expect_refused(
        &ca,
        &rsa,
        |c| c["sub"] = json!("system:node:kind-worker"),
        want,
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| c["sub"] = json!("system:serviceaccount:shop:web:extra"),
        want,
    )
    .await;
    let missing = (401, "service account token without a required claim");
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c.as_object_mut().unwrap().remove("kubernetes.io");
        },
        missing,
    )
    .await;
    expect_refused(
        &ca,
        &rsa,
        |c| {
            c.as_object_mut().unwrap().remove("sub");
        },
        missing,
    )
    .await;
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

#[tokio::test]
async fn a_namespace_or_name_that_is_not_a_path_segment_is_403() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    for (ns, sa) in [
        ("shop/sa/admin", "web"),
        ("..", "web"),
        ("shop", ".."),
        ("shop", "a/b"),
    ] {
        let token = sign(&rsa, &claims(ns, sa));
        // With no SAN in the CSR, only the token decides the ID.
        let (status, message) = refusal(ca.client.enrol(&token, &csr_without_id()).await);
        assert_eq!(
            (status, message.as_str()),
            (
                403,
                "the service account's namespace or name is not a valid SPIFFE path segment"
            ),
            "{ns}/{sa}"
        );
    }
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

// ---- the token's signature ----------------------------------------------------------------

#[tokio::test]
async fn a_token_signed_by_another_key_is_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    // The attacker's key, claiming the cluster's kid.
    let forger = signer(Algorithm::RS256, "rsa-1");
    let (status, message) = refused(&ca, &sign(&forger, &claims("shop", "web"))).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "the service account token's signature does not verify")
    );
    // A valid token with its payload swapped for another service account's.
    let good = sign(&rsa, &claims("shop", "web"));
    let other = sign(&rsa, &claims("kube-system", "admin"));
    let mut parts: Vec<&str> = good.split('.').collect();
    parts[1] = other.split('.').nth(1).unwrap();
    let (status, message) = refusal(ca.client.enrol(&parts.join("."), &csr_without_id()).await);
    assert_eq!(
        (status, message.as_str()),
        (401, "the service account token's signature does not verify")
    );
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_kid_is_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&rsa])).unwrap();
    let stranger = signer(Algorithm::RS256, "rsa-2");
    let token = sign(&stranger, &claims("shop", "web"));
    let mut k8s = k8s_config(JwksSource::File(path.clone()));
    // Long enough for the two refusals below to fall within it.
    k8s.min_refresh_interval = Duration::from_secs(2);
    let ca = start_ca(Some(k8s)).await.unwrap();
    let want = (401, "service account token signed by an unknown key");
    let (status, message) = refused(&ca, &token).await;
    assert_eq!((status, message.as_str()), want);
    // The cluster publishes the key: the file is read again for the next
    // token naming it, once the rate limit allows.
    std::fs::write(&path, jwks(&[&rsa, &stranger])).unwrap();
    let (status, message) = refused(&ca, &token).await;
    assert_eq!((status, message.as_str()), want, "rate-limited");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let signed = enrol(&ca, &token, WEB).await.unwrap();
    assert_eq!(leaf_id(&signed), id(WEB));
    ca.server.shutdown().await;
}

#[tokio::test]
async fn alg_none_and_hmac_keyed_with_the_public_key_are_refused() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let payload = b64(claims("shop", "web").to_string().as_bytes());

    // alg none, with and without a signature part.
    for header in [
        json!({"alg": "none", "kid": "rsa-1"}),
        json!({"alg": "none"}),
        json!({"alg": "None", "kid": "rsa-1"}),
    ] {
        let head = b64(header.to_string().as_bytes());
        for token in [format!("{head}.{payload}."), format!("{head}.{payload}")] {
            let (status, message) = refused(&ca, &token).await;
            assert_eq!(
                (status, message.as_str()),
                (401, "malformed service account token"),
                "{header}"
            );
        }
    }

    // HS256 "signed" with the RSA public key (PEM, and the JWK's modulus)
    // as the HMAC secret: the key-confusion attack.
    let n = match &rsa.jwk.algorithm {
        jsonwebtoken::jwk::AlgorithmParameters::RSA(p) => p.n.clone(),
        _ => unreachable!(),
    };
    for secret in [rsa.public_pem.as_bytes(), n.as_bytes()] {
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let mut header = Header::new(alg);
            header.kid = Some("rsa-1".to_owned());
            let token = jsonwebtoken::encode(
                &header,
                &claims("shop", "web"),
                &EncodingKey::from_secret(secret).unwrap(),
            )
            .unwrap();
            let (status, message) = refused(&ca, &token).await;
            assert_eq!(
                (status, message.as_str()),
                (
                    401,
                    "service account token signed with an algorithm that is not accepted"
                ),
                "{alg:?}"
            );
        }
    }
    // RS512 and PS256 with the real key: not what Kubernetes signs with.
    let rsa_pem = KeyPair::generate_for(&PKCS_RSA_SHA256).unwrap();
    for alg in [Algorithm::RS512, Algorithm::PS256] {
        let mut header = Header::new(alg);
        header.kid = Some("rsa-1".to_owned());
        let token = jsonwebtoken::encode(
            &header,
            &claims("shop", "web"),
            &EncodingKey::from_rsa_pem(rsa_pem.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
        let (status, message) = refused(&ca, &token).await;
        assert_eq!(
            (status, message.as_str()),
            (
                401,
                "service account token signed with an algorithm that is not accepted"
            )
        );
    }
    // Not a JWT at all.
    for token in ["", "a.b", "a.b.c.d", "eyJ.eyJ.sig"] {
        let (status, _) = refused(&ca, token).await;
        assert_eq!(status, 401, "{token:?}");
    }
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

#[tokio::test]
async fn a_legacy_secret_token_is_refused() {
    // The long-lived token of a kubernetes.io/service-account-token Secret:
    // no aud, no exp, iss "kubernetes/serviceaccount", flat claims.
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let legacy = json!({
        "iss": "kubernetes/serviceaccount",
        "kubernetes.io/serviceaccount/namespace": "shop",
        "kubernetes.io/serviceaccount/secret.name": "web-token-x2k4q",
        "kubernetes.io/serviceaccount/service-account.name": "web",
        "kubernetes.io/serviceaccount/service-account.uid": "1b2c3d4e",
        "sub": "system:serviceaccount:shop:web"
    });
    let (status, _) = refused(&ca, &sign(&rsa, &legacy)).await;
    assert_eq!(status, 401);
    nothing_issued_but_the_server(ca.dir.path());
    ca.server.shutdown().await;
}

// ---- bootstrap tokens beside service account tokens ---------------------------------------

#[tokio::test]
async fn bootstrap_tokens_keep_working_and_stay_single_use() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let (ca, _keys) = file_ca(&[&rsa]).await;
    let once = mint_token(
        ca.dir.path(),
        &TokenSpec {
            pattern: IdPattern::parse(WEB).unwrap(),
            ttl: Duration::from_secs(600),
            single_use: true,
        },
    )
    .unwrap();
    let signed = enrol(&ca, &once, WEB).await.unwrap();
    assert_eq!(leaf_id(&signed), id(WEB));
    // Replayed: still spent.
    let (status, message) = refused(&ca, &once).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "bootstrap token already used")
    );
    let log = read_issued_log(ca.dir.path()).unwrap();
    assert_eq!(
        log.iter().filter(|e| e.how == IssuedHow::Token).count(),
        1,
        "{log:?}"
    );
    ca.server.shutdown().await;

    // A server without --k8s-*: a service account token is just an
    // unknown bootstrap token.
    let plain = start_ca(None).await.unwrap();
    let (status, message) = refused(&plain, &sign(&rsa, &claims("shop", "web"))).await;
    assert_eq!((status, message.as_str()), (401, "unknown bootstrap token"));
    plain.server.shutdown().await;
}

#[tokio::test]
async fn failed_token_enrolments_count_toward_the_limit() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let keys = tempfile::tempdir().unwrap();
    let path = keys.path().join("jwks.json");
    std::fs::write(&path, jwks(&[&rsa])).unwrap();
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.enrol_failure_limit = 3;
    cfg.enrol_failure_window = Duration::from_secs(600);
    cfg.k8s = Some(k8s_config(JwksSource::File(path)));
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let client = CaClient::new(&format!("https://{}", server.addr), &bundle).unwrap();
    let ca = Ca {
        dir,
        server,
        client,
    };
    let forger = signer(Algorithm::RS256, "rsa-1");
    for _ in 0..3 {
        let (status, _) = refused(&ca, &sign(&forger, &claims("shop", "web"))).await;
        assert_eq!(status, 401);
    }
    // Now even a good token waits.
    let (status, message) = refused(&ca, &sign(&rsa, &claims("shop", "web"))).await;
    assert_eq!(status, 429, "{message}");
    ca.server.shutdown().await;
}

// ---- keys from OIDC discovery over HTTPS --------------------------------------------------

/// What the local identity provider saw: host, path, Authorization.
type Seen = Arc<Mutex<Vec<(String, String, Option<String>)>>>;

/// A local HTTPS server playing the API server's service account issuer
/// discovery: `/.well-known/openid-configuration` and `/openid/v1/jwks`.
struct Idp {
    issuer: String,
    ca_file: PathBuf,
    /// The JWKS it serves; `None`: 500.
    jwks: Arc<Mutex<Option<String>>>,
    /// The `jwks_uri` its discovery document names.
    jwks_uri: Arc<Mutex<String>>,
    seen: Seen,
    _dir: tempfile::TempDir,
    task: tokio::task::JoinHandle<()>,
}

impl Idp {
    fn jwks_fetches(&self) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, path, _)| path == "/openid/v1/jwks")
            .count()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn idp(jwks_json: String) -> Idp {
    // Its own CA and a certificate for localhost and 127.0.0.1.
    let ca_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let cert = params.signed_by(&key, &*ca).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("cluster-ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            PrivateKeyDer::from_pem_slice(key.serialize_pem().as_bytes()).unwrap(),
        )
        .unwrap();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let issuer = format!("https://localhost:{}", addr.port());
    let jwks = Arc::new(Mutex::new(Some(jwks_json)));
    let jwks_uri = Arc::new(Mutex::new(format!("{issuer}/openid/v1/jwks")));
    let seen: Seen = Arc::default();
    let task = {
        let (issuer, jwks, jwks_uri, seen) =
            (issuer.clone(), jwks.clone(), jwks_uri.clone(), seen.clone());
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let Ok(tls) = acceptor.accept(tcp).await else {
                    continue;
                };
                let (issuer, jwks, jwks_uri, seen) =
                    (issuer.clone(), jwks.clone(), jwks_uri.clone(), seen.clone());
                let service =
                    hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let host = req
                            .headers()
                            .get("host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                            .to_owned();
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|h| h.to_str().ok())
                            .map(str::to_owned);
                        let path = req.uri().path().to_owned();
                        seen.lock().unwrap().push((host, path.clone(), auth));
                        let (status, body) = match path.as_str() {
                            "/.well-known/openid-configuration" => (
                                200,
                                json!({
                                    "issuer": issuer,
                                    "jwks_uri": *jwks_uri.lock().unwrap(),
                                    "response_types_supported": ["id_token"],
                                    "subject_types_supported": ["public"],
                                    "id_token_signing_alg_values_supported": ["ES256", "RS256"]
                                })
                                .to_string(),
                            ),
                            "/openid/v1/jwks" => match jwks.lock().unwrap().clone() {
                                Some(body) => (200, body),
                                None => (500, "{}".to_owned()),
                            },
                            _ => (404, "{}".to_owned()),
                        };
                        let resp = http::Response::builder()
                            .status(status)
                            .header("content-type", "application/json")
                            .body(Full::new(Bytes::from(body)))
                            .unwrap();
                        async move { Ok::<_, Infallible>(resp) }
                    });
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service),
                );
            }
        })
    };
    Idp {
        issuer,
        ca_file,
        jwks,
        jwks_uri,
        seen,
        _dir: dir,
        task,
    }
}

fn discovery_config(idp: &Idp, api_token: Option<PathBuf>) -> K8sAuthConfig {
    let mut k8s = K8sAuthConfig::new(Some(idp.issuer.clone()), None);
    k8s.ca_file = Some(idp.ca_file.clone());
    k8s.api_token_file = api_token;
    k8s
}

/// `claims` with the local issuer.
fn claims_of(idp: &Idp, ns: &str, sa: &str) -> Value {
    let mut c = claims(ns, sa);
    c["iss"] = json!(idp.issuer);
    c
}

#[tokio::test]
async fn keys_found_by_oidc_discovery_over_https() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let idp = idp(jwks(&[&rsa])).await;
    let dir = tempfile::tempdir().unwrap();
    let api_token = dir.path().join("token");
    std::fs::write(&api_token, "the-ca-own-token\n").unwrap();
    let ca = start_ca(Some(discovery_config(&idp, Some(api_token))))
        .await
        .unwrap();
    let signed = enrol(&ca, &sign(&rsa, &claims_of(&idp, "shop", "web")), WEB)
        .await
        .unwrap();
    assert_eq!(leaf_id(&signed), id(WEB));
    // Discovery, then the keys; the CA's own token went with both (same
    // origin as the issuer).
    let seen = idp.seen.lock().unwrap().clone();
    let paths: Vec<_> = seen.iter().map(|(_, p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/.well-known/openid-configuration", "/openid/v1/jwks"]
    );
    for (_, _, auth) in &seen {
        assert_eq!(auth.as_deref(), Some("Bearer the-ca-own-token"));
    }
    // The fixture's issuer is not this one: refused.
    let (status, message) = refused(&ca, &sign(&rsa, &claims("shop", "web"))).await;
    assert_eq!(
        (status, message.as_str()),
        (401, "service account token from another issuer")
    );
    ca.server.shutdown().await;
}

#[tokio::test]
async fn the_api_token_goes_only_to_the_configured_origin() {
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let idp = idp(jwks(&[&rsa])).await;
    // Discovery points the keys to another origin (127.0.0.1, not localhost).
    let port = idp.issuer.rsplit(':').next().unwrap().to_owned();
    *idp.jwks_uri.lock().unwrap() = format!("https://127.0.0.1:{port}/openid/v1/jwks");
    let dir = tempfile::tempdir().unwrap();
    let api_token = dir.path().join("token");
    std::fs::write(&api_token, "the-ca-own-token").unwrap();
    let ca = start_ca(Some(discovery_config(&idp, Some(api_token))))
        .await
        .unwrap();
    enrol(&ca, &sign(&rsa, &claims_of(&idp, "shop", "web")), WEB)
        .await
        .unwrap();
    let seen = idp.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].2.as_deref(), Some("Bearer the-ca-own-token"));
    assert!(seen[1].0.starts_with("127.0.0.1:"), "{seen:?}");
    assert_eq!(
        seen[1].2, None,
        "the token must not follow jwks_uri elsewhere"
    );
    ca.server.shutdown().await;
}

#[tokio::test]
async fn keys_are_refreshed_for_an_unknown_kid_rate_limited_and_kept_on_failure() {
    let old = signer(Algorithm::RS256, "old");
    let new = signer(Algorithm::ES256, "new");
    let idp = idp(jwks(&[&old])).await;
    let mut k8s = discovery_config(&idp, None);
    k8s.min_refresh_interval = Duration::from_secs(1);
    let ca = start_ca(Some(k8s)).await.unwrap();
    assert_eq!(idp.jwks_fetches(), 1);
    enrol(&ca, &sign(&old, &claims_of(&idp, "shop", "web")), WEB)
        .await
        .unwrap();
    assert_eq!(idp.jwks_fetches(), 1, "a known kid fetches nothing");

    // The cluster rotates its key: the first token with the new kid makes
    // the CA fetch the keys again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    *idp.jwks.lock().unwrap() = Some(jwks(&[&old, &new]));
    enrol(&ca, &sign(&new, &claims_of(&idp, "shop", "web")), WEB)
        .await
        .unwrap();
    assert_eq!(idp.jwks_fetches(), 2);

    // Unknown kids in a burst: one fetch per interval at most.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let stranger = signer(Algorithm::RS256, "stranger");
    for _ in 0..5 {
        let (status, message) =
            refused(&ca, &sign(&stranger, &claims_of(&idp, "shop", "web"))).await;
        assert_eq!(
            (status, message.as_str()),
            (401, "service account token signed by an unknown key")
        );
    }
    assert_eq!(idp.jwks_fetches(), 3);

    // The issuer fails: the keys in use stay.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    *idp.jwks.lock().unwrap() = None;
    let (status, _) = refused(&ca, &sign(&stranger, &claims_of(&idp, "shop", "web"))).await;
    assert_eq!(status, 401);
    assert_eq!(idp.jwks_fetches(), 4);
    for s in [&old, &new] {
        enrol(&ca, &sign(s, &claims_of(&idp, "shop", "web")), WEB)
            .await
            .unwrap();
    }
    ca.server.shutdown().await;
}

// ---- configuration --------------------------------------------------------------------------

fn k8s_error(result: Result<Ca, CaServerError>) -> String {
    match result {
        Err(CaServerError::K8s { reason }) => reason,
        Err(other) => panic!("expected a K8s error, got {other}"),
        Ok(_) => panic!("expected a K8s error, the server started"),
    }
}

#[tokio::test]
async fn bad_k8s_settings_stop_the_server_from_starting() {
    let dir = tempfile::tempdir().unwrap();
    let reason = k8s_error(start_ca(Some(K8sAuthConfig::new(None, None))).await);
    assert!(reason.contains("--k8s-issuer"), "{reason}");
    // Keys without an issuer to check `iss` against: refused too.
    let keys = tempfile::NamedTempFile::new().unwrap();
    let reason = k8s_error(
        start_ca(Some(K8sAuthConfig::new(
            None,
            Some(JwksSource::File(keys.path().to_path_buf())),
        )))
        .await,
    );
    assert!(reason.contains("--k8s-issuer"), "{reason}");

    let missing = dir.path().join("missing.json");
    let reason = k8s_error(start_ca(Some(k8s_config(JwksSource::File(missing)))).await);
    assert!(reason.contains("cannot read --k8s-jwks"), "{reason}");

    let empty = dir.path().join("empty.json");
    std::fs::write(&empty, r#"{"keys": []}"#).unwrap();
    let reason = k8s_error(start_ca(Some(k8s_config(JwksSource::File(empty)))).await);
    assert!(reason.contains("no keys"), "{reason}");

    let hmac = dir.path().join("hmac.json");
    std::fs::write(
        &hmac,
        r#"{"keys": [{"kty": "oct", "kid": "h", "k": "c2VjcmV0"}]}"#,
    )
    .unwrap();
    let reason = k8s_error(start_ca(Some(k8s_config(JwksSource::File(hmac)))).await);
    assert!(reason.contains("no usable key"), "{reason}");

    // Discovery needs an https issuer.
    let reason = k8s_error(
        start_ca(Some(K8sAuthConfig::new(
            Some("http://kubernetes.default.svc".to_owned()),
            None,
        )))
        .await,
    );
    assert!(reason.contains("https"), "{reason}");

    // Nobody answers: the server does not start without keys.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let reason = k8s_error(
        start_ca(Some(K8sAuthConfig::new(
            Some(format!("https://127.0.0.1:{port}")),
            None,
        )))
        .await,
    );
    assert!(reason.contains("openid-configuration"), "{reason}");

    // An issuer whose certificate the CA does not trust.
    let rsa = signer(Algorithm::RS256, "rsa-1");
    let idp = idp(jwks(&[&rsa])).await;
    let mut k8s = discovery_config(&idp, None);
    k8s.ca_file = None;
    let reason = k8s_error(start_ca(Some(k8s)).await);
    assert!(reason.contains("TLS"), "{reason}");

    let mut k8s = k8s_config(JwksSource::File(dir.path().join("x")));
    k8s.audience = String::new();
    let reason = k8s_error(start_ca(Some(k8s)).await);
    assert!(reason.contains("audience"), "{reason}");
}

// ---- the CA directory as a Kubernetes Secret ----------------------------------------------

#[tokio::test]
async fn a_secret_mounted_ca_dir_with_a_separate_state_dir() {
    use std::os::unix::fs::PermissionsExt as _;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    let issuing = tmp.path().join("issuing");
    let state = tmp.path().join("state");
    init_ca(&root, TD, false).unwrap();
    init_intermediate(&issuing, &root, false).unwrap();
    // A Secret volume for a pod with fsGroup: root-owned, group-readable.
    let key = issuing.join("ca-key.pem");
    let mode = |m| std::fs::set_permissions(&key, std::fs::Permissions::from_mode(m)).unwrap();
    mode(0o440);

    let rsa = signer(Algorithm::RS256, "rsa-1");
    let keys = tmp.path().join("jwks.json");
    std::fs::write(&keys, jwks(&[&rsa])).unwrap();
    let mut cfg = CaServerConfig::new(&issuing, "127.0.0.1:0".parse().unwrap());
    cfg.state_dir = Some(state.clone());
    cfg.k8s = Some(k8s_config(JwksSource::File(keys)));
    match CaServer::start(cfg.clone()).await {
        Err(CaServerError::Ca(CaError::KeyPermissions { mode, .. })) => assert_eq!(mode, 0o440),
        other => panic!("a group-readable key needs the option: {other:?}"),
    }
    cfg.allow_group_readable_key = true;
    for bad in [0o444, 0o460, 0o640 | 0o004] {
        mode(bad);
        assert!(
            matches!(
                CaServer::start(cfg.clone()).await,
                Err(CaServerError::Ca(CaError::KeyPermissions { .. }))
            ),
            "{bad:o}"
        );
    }
    mode(0o440);
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(root.join("ca.pem")).unwrap();
    let client = CaClient::new(&format!("https://{}", server.addr), &bundle).unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    client
        .enrol(&sign(&rsa, &claims("shop", "web")), &csr)
        .await
        .unwrap();
    server.shutdown().await;
    // Everything written went to the state directory.
    assert!(!issuing.join("issued.jsonl").exists());
    let log = read_issued_log(&state).unwrap();
    assert!(log.iter().any(|e| e.how == IssuedHow::ServiceAccount));
}
