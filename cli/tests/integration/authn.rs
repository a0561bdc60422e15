//! JWT request authentication through the real sidecar pair, with tokens
//! signed in the test by keys it generates (RS256, ES256, EdDSA).

use crate::support;

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::backend::Backend;
use crate::support::client::{h1, read};
use crate::support::{assert_status, wait_until, Mesh};
use base64::Engine as _;
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const ISSUER: &str = "https://login.test";
const AUDIENCE: &str = "orders";

const POLICY: &str = r#"package usher.authz

default allow := false

# Anyone (with or without a token) may read; /headers/admin needs the admin role.
allow if not startswith(input.attributes.request.http.path, "/headers/admin")

allow if input.usher.jwt.claims.role == "admin"
"#;

/// A signing key and its public JWK.
struct Signer {
    alg: Algorithm,
    kid: String,
    key: EncodingKey,
    jwk: Jwk,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signer(alg: Algorithm, kid: &str) -> Signer {
    let (key, mut jwk) = match alg {
        Algorithm::RS256 => {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
            let key = EncodingKey::from_rsa_pem(kp.serialize_pem().as_bytes()).unwrap();
            // n and e from the public key (SubjectPublicKeyInfo → RSAPublicKey).
            use rustls::pki_types::pem::PemObject as _;
            use x509_parser::prelude::FromDer as _;
            let spki_der = rustls::pki_types::SubjectPublicKeyInfoDer::from_pem_slice(
                kp.public_key_pem().as_bytes(),
            )
            .unwrap();
            let (_, spki) = x509_parser::x509::SubjectPublicKeyInfo::from_der(&spki_der).unwrap();
            let x509_parser::public_key::PublicKey::RSA(rsa) = spki.parsed().unwrap() else {
                panic!("not an RSA key")
            };
            let strip = |b: &[u8]| b[b.iter().position(|x| *x != 0).unwrap_or(0)..].to_vec();
            let jwk: Jwk = serde_json::from_value(serde_json::json!({
                "kty": "RSA", "n": b64(&strip(rsa.modulus)), "e": b64(&strip(rsa.exponent)), "alg": "RS256"
            }))
            .unwrap();
            (key, jwk)
        }
        Algorithm::ES256 => {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
            let key = EncodingKey::from_ec_pem(kp.serialize_pem().as_bytes()).unwrap();
            let raw = kp.public_key_raw(); // 0x04 || x || y
            let jwk: Jwk = serde_json::from_value(serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": b64(&raw[1..33]), "y": b64(&raw[33..65]), "alg": "ES256"
            }))
            .unwrap();
            (key, jwk)
        }
        Algorithm::EdDSA => {
            let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
            let key = EncodingKey::from_ed_pem(kp.serialize_pem().as_bytes()).unwrap();
            let jwk: Jwk = serde_json::from_value(serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": b64(kp.public_key_raw()), "alg": "EdDSA"
            }))
            .unwrap();
            (key, jwk)
        }
        other => panic!("no test key for {other:?}"),
    };
    jwk.common.key_id = Some(kid.to_string());
    Signer {
        alg,
        kid: kid.to_string(),
        key,
        jwk,
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn claims(sub: &str, role: &str) -> serde_json::Value {
    serde_json::json!({
        "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "role": role,
        "iat": now(), "exp": now() + 600,
    })
}

fn sign(s: &Signer, claims: &serde_json::Value) -> String {
    let mut header = Header::new(s.alg);
    header.kid = Some(s.kid.clone());
    jsonwebtoken::encode(&header, claims, &s.key).unwrap()
}

fn jwks(signers: &[&Signer]) -> String {
    serde_json::to_string(&JwkSet {
        keys: signers.iter().map(|s| s.jwk.clone()).collect(),
    })
    .unwrap()
}

/// b checks tokens from ISSUER (keys in jwks.json) and runs POLICY.
async fn mesh(app: std::net::SocketAddr, keys: &str, required: bool) -> Mesh {
    let extra = format!(
        "authentication:\n  jwt:\n    - issuer: {ISSUER}\n      audiences: [{AUDIENCE}]\n      jwks_file: jwks.json\n      required: {required}\n      claims_to_headers: {{sub: x-user-id}}\n  leeway: 5s\n  max_token_bytes: 4096\npolicy:\n  files: [authz.rego]\n"
    );
    Mesh::start_with(app, &[("jwks.json", keys), ("authz.rego", POLICY)], &extra).await
}

/// GET `path` through a → b with `authorization` (if any) and extra headers.
async fn call(
    mesh: &Mesh,
    path: &str,
    token: Option<&str>,
    extra: &[(&str, &str)],
) -> (http::StatusCode, HashMap<String, String>, String) {
    let mut send = h1::<http_body_util::Empty<bytes::Bytes>>(mesh.a.addrs.outbound).await;
    let mut req = http::Request::get(path).header("host", "b");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    for (k, v) in extra {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let (status, body) = read(resp).await;
    (status, headers, body)
}

/// Asserts a 401 with the RFC 6750 challenge naming `why`.
fn assert_refused(got: (http::StatusCode, HashMap<String, String>, String), why: &str) {
    let (status, headers, body) = got;
    assert_eq!(status, 401, "{body}");
    let challenge = &headers["www-authenticate"];
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    assert!(challenge.contains(why), "{challenge} should say {why}");
    assert!(
        body.len() < 100 && body.starts_with("usher: invalid token"),
        "{body}"
    );
}

#[tokio::test]
async fn valid_tokens_of_every_key_type_pass_and_their_claims_reach_app_and_policy() {
    let app = Backend::start().await;
    let (rs, es, ed) = (
        signer(Algorithm::RS256, "rs"),
        signer(Algorithm::ES256, "es"),
        signer(Algorithm::EdDSA, "ed"),
    );
    let mesh = mesh(app.addr, &jwks(&[&rs, &es, &ed]), false).await;
    for s in [&rs, &es, &ed] {
        let token = sign(s, &claims("alice", "user"));
        let (status, _, body) =
            call(&mesh, "/headers", Some(&token), &[("x-user-id", "mallory")]).await;
        assert_eq!(status, 200, "{:?}: {body}", s.alg);
        let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
        assert_eq!(
            seen["x-user-id"], "alice",
            "claim to header, forged value replaced"
        );
        assert!(
            !seen.contains_key("authorization"),
            "the token is not forwarded by default"
        );
    }
    // The policy sees the claims: /admin needs role admin.
    let user = sign(&rs, &claims("alice", "user"));
    assert_eq!(call(&mesh, "/headers/admin", Some(&user), &[]).await.0, 403);
    let admin = sign(&es, &claims("root", "admin"));
    assert_eq!(
        call(&mesh, "/headers/admin", Some(&admin), &[]).await.0,
        200
    );
}

#[tokio::test]
async fn a_missing_token_is_401_when_required() {
    let app = Backend::start().await;
    let rs = signer(Algorithm::RS256, "rs");
    let mesh = mesh(app.addr, &jwks(&[&rs]), true).await;
    let (status, headers, body) = call(&mesh, "/headers", None, &[]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(headers["www-authenticate"], "Bearer realm=\"usher\"");
}

#[tokio::test]
async fn a_missing_token_goes_on_without_claims_when_optional() {
    let app = Backend::start().await;
    let rs = signer(Algorithm::RS256, "rs");
    let mesh = mesh(app.addr, &jwks(&[&rs]), false).await;
    assert_eq!(call(&mesh, "/headers", None, &[]).await.0, 200);
    assert_eq!(
        call(&mesh, "/headers/admin", None, &[]).await.0,
        403,
        "policy decides"
    );
}

async fn refused_with(why: &str, make: impl FnOnce(&Signer) -> String) {
    let app = Backend::start().await;
    let rs = signer(Algorithm::RS256, "rs");
    let token = make(&rs);
    let mesh = mesh(app.addr, &jwks(&[&rs]), false).await;
    assert_refused(call(&mesh, "/headers", Some(&token), &[]).await, why);
}

#[tokio::test]
async fn a_bad_signature_is_refused() {
    refused_with("bad signature", |rs| {
        // Same kid, another key.
        let other = signer(Algorithm::RS256, &rs.kid);
        sign(&other, &claims("alice", "user"))
    })
    .await;
}

#[tokio::test]
async fn an_expired_token_is_refused() {
    refused_with("token expired", |rs| {
        let mut c = claims("alice", "user");
        c["exp"] = (now() - 60).into(); // beyond the 5 s leeway
        sign(rs, &c)
    })
    .await;
}

#[tokio::test]
async fn a_token_not_yet_valid_is_refused() {
    refused_with("not yet valid", |rs| {
        let mut c = claims("alice", "user");
        c["nbf"] = (now() + 300).into();
        sign(rs, &c)
    })
    .await;
}

#[tokio::test]
async fn a_wrong_issuer_is_refused() {
    refused_with("unknown issuer", |rs| {
        let mut c = claims("alice", "user");
        c["iss"] = "https://evil.test".into();
        sign(rs, &c)
    })
    .await;
}

#[tokio::test]
async fn a_wrong_audience_is_refused() {
    refused_with("wrong audience", |rs| {
        let mut c = claims("alice", "user");
        c["aud"] = "payments".into();
        sign(rs, &c)
    })
    .await;
}

#[tokio::test]
async fn an_unknown_key_id_is_refused() {
    refused_with("unknown key id", |_| {
        let stranger = signer(Algorithm::RS256, "not-in-the-set");
        sign(&stranger, &claims("alice", "user"))
    })
    .await;
}

#[tokio::test]
async fn alg_none_is_refused() {
    refused_with("alg none", |_| {
        let header = b64(br#"{"alg":"none","typ":"JWT"}"#);
        let payload = b64(claims("alice", "admin").to_string().as_bytes());
        format!("{header}.{payload}.")
    })
    .await;
}

#[tokio::test]
async fn hmac_with_the_public_key_as_secret_is_refused() {
    refused_with("HMAC algorithm refused", |rs| {
        // Key confusion: sign HS256 with the RSA public key's bytes.
        let public = serde_json::to_vec(&rs.jwk).unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(rs.kid.clone());
        jsonwebtoken::encode(
            &header,
            &claims("alice", "admin"),
            &EncodingKey::from_secret(&public).unwrap(),
        )
        .unwrap()
    })
    .await;
}

#[tokio::test]
async fn a_malformed_token_is_refused() {
    refused_with("malformed token", |_| "not.a-jwt".to_string()).await;
}

#[tokio::test]
async fn an_oversized_token_is_refused() {
    refused_with("token too large", |rs| {
        let mut c = claims("alice", "user");
        c["pad"] = "x".repeat(5000).into();
        sign(rs, &c)
    })
    .await;
}

#[tokio::test]
async fn a_new_key_set_on_disk_is_used_without_a_restart() {
    let app = Backend::start().await;
    let old = signer(Algorithm::ES256, "old");
    let new = signer(Algorithm::ES256, "new");
    let mesh = mesh(app.addr, &jwks(&[&old]), false).await;
    let token = sign(&new, &claims("alice", "user"));
    assert_eq!(call(&mesh, "/headers", Some(&token), &[]).await.0, 401);
    support::replace_file(&mesh.b_dir().join("jwks.json"), &jwks(&[&new]));
    let accepted = wait_until(Duration::from_secs(10), || async {
        call(&mesh, "/headers", Some(&token), &[]).await.0 == 200
    })
    .await;
    assert!(accepted, "the new key set was not loaded");
}

#[tokio::test]
async fn a_key_set_from_a_url_is_fetched_and_used() {
    use std::convert::Infallible;
    let app = Backend::start().await;
    let es = signer(Algorithm::ES256, "url-key");
    // The issuer's JWKS endpoint, plain HTTP on loopback.
    let body = jwks(&[&es]);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(move |_req| {
                    let body = body.clone();
                    async move {
                        Ok::<_, Infallible>(http::Response::new(http_body_util::Full::new(
                            bytes::Bytes::from(body),
                        )))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    let extra = format!(
        "authentication:\n  jwt:\n    - issuer: {ISSUER}\n      audiences: [{AUDIENCE}]\n      jwks_url: http://{addr}/jwks.json\n      jwks_refresh: 1s\npolicy:\n  files: [authz.rego]\n"
    );
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", POLICY)], &extra).await;
    let token = sign(&es, &claims("alice", "user"));
    let accepted = wait_until(Duration::from_secs(10), || async {
        call(&mesh, "/headers", Some(&token), &[]).await.0 == 200
    })
    .await;
    assert!(accepted, "the key set from the URL was not used");
}

/// A mesh peer talking to b directly cannot make b drop the claim header
/// it sets (`Connection: x-user-id`), nor forge it with underscores.
#[tokio::test]
async fn a_peer_cannot_remove_or_forge_claim_headers() {
    use rustls::pki_types::ServerName;
    let app = Backend::start().await;
    let rs = signer(Algorithm::RS256, "rs");
    let mesh = mesh(app.addr, &jwks(&[&rs]), false).await;
    let certs = mesh.pki.issue("peer-certs", &support::id("peer"));
    let config = support::client::tls_client(
        &certs.join("bundle.pem"),
        Some(&certs),
        support::id("b"),
        b"http/1.1",
    );
    let tcp = tokio::net::TcpStream::connect(mesh.b.addrs.inbound)
        .await
        .unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("usher").unwrap(), tcp)
        .await
        .unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let token = sign(&rs, &claims("alice", "user"));
    let req = http::Request::get("/headers")
        .header("host", "b")
        .header("authorization", format!("Bearer {token}"))
        .header("connection", "x-user-id, keep-alive")
        .header("x_user_id", "mallory")
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let body = assert_status(
        read(send.send_request(req).await.unwrap()).await,
        200,
        "a valid token, x-user-id named in Connection",
    );
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    assert_eq!(
        seen.get("x-user-id").map(String::as_str),
        Some("alice"),
        "{body}"
    );
    assert!(!seen.contains_key("x_user_id"), "{body}");
}

/// Tokens usher does not verify must not reach the app: two values, a
/// second location, other spellings of the scheme are refused (or, for
/// another scheme, left alone); underscore spellings are removed.
#[tokio::test]
async fn a_token_usher_did_not_verify_never_reaches_the_app() {
    let app = Backend::start().await;
    let rs = signer(Algorithm::RS256, "rs");
    let mesh = mesh(app.addr, &jwks(&[&rs]), false).await;
    let good = sign(&rs, &claims("alice", "user"));
    let forged = format!("{}.c2ln", good.rsplit_once('.').unwrap().0);
    let cases: [(&str, Vec<(&str, String)>); 4] = [
        (
            "two values",
            vec![
                ("authorization", format!("Bearer {good}")),
                ("authorization", format!("Bearer {forged}")),
            ],
        ),
        (
            "Basic then Bearer",
            vec![
                ("authorization", "Basic Zm9vOmJhcg==".to_string()),
                ("authorization", format!("Bearer {forged}")),
            ],
        ),
        (
            "a tab after the scheme",
            vec![("authorization", format!("Bearer\t{forged}"))],
        ),
        (
            "no space after the scheme",
            vec![("authorization", format!("Bearer{forged}"))],
        ),
    ];
    for (why, headers) in cases {
        let extra: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (status, _, body) = call(&mesh, "/headers", None, &extra).await;
        assert_eq!(status, 401, "{why}: {body}");
    }
    // Another scheme is the app's business; underscore spellings go.
    let (status, _, body) = call(
        &mesh,
        "/headers",
        None,
        &[
            ("authorization", "Basic Zm9vOmJhcg=="),
            ("x_user_id", "mallory"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["authorization"], "Basic Zm9vOmJhcg==");
    assert!(!seen.contains_key("x_user_id"), "{body}");
}
