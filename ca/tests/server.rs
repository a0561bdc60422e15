//! The CA server and its client, end to end: a real server on 127.0.0.1
//! port 0, real TLS, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, IsCa, KeyPair, SanType,
    PKCS_ECDSA_P256_SHA256,
};
use rustls::client::danger::ServerCertVerifier as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls_pki_types::pem::PemObject as _;
use tokio::net::TcpStream;
use usher_ca::{
    init_ca, init_intermediate, load_ca, make_key_and_csr, mint_token, mint_token_at,
    read_issued_log, spiffe_id_from_cert_der, CaClient, CaClientError, CaServer, CaServerConfig,
    IdPattern, IssueRequest, IssuedHow, SignedCert, SpiffeId, TokenSpec, CA_BUNDLE_FILE,
};

const TD: &str = "example.org";
const WEB: &str = "spiffe://example.org/ns/shop/sa/web";
const DB: &str = "spiffe://example.org/ns/shop/sa/db";

fn id(s: &str) -> SpiffeId {
    SpiffeId::parse(s).unwrap()
}

fn token(dir: &Path, pattern: &str, single_use: bool) -> String {
    mint_token(
        dir,
        &TokenSpec {
            pattern: IdPattern::parse(pattern).unwrap(),
            ttl: Duration::from_secs(600),
            single_use,
        },
    )
    .unwrap()
}

fn certs(pem: &str) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap()
}

async fn start(dir: &Path) -> CaServer {
    let mut cfg = CaServerConfig::new(dir, "127.0.0.1:0".parse().unwrap());
    cfg.cert_ttl = Duration::from_secs(3600);
    CaServer::start(cfg).await.unwrap()
}

fn client(server: &CaServer, dir: &Path) -> CaClient {
    let bundle = std::fs::read_to_string(dir.join("ca.pem")).unwrap();
    CaClient::new(&format!("https://{}", server.addr), &bundle).unwrap()
}

/// A CA, a running server for it, and a client trusting it.
struct Fixture {
    dir: tempfile::TempDir,
    server: CaServer,
    client: CaClient,
}

async fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let server = start(dir.path()).await;
    let client = client(&server, dir.path());
    Fixture {
        dir,
        server,
        client,
    }
}

/// Verifies `chain_pem` against the roots in `bundle_pem` as rustls will,
/// as a client certificate.
fn verify(bundle_pem: &str, chain_pem: &str) -> Result<(), rustls::Error> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in certs(bundle_pem) {
        roots.add(root).unwrap();
    }
    let chain = certs(chain_pem);
    let (leaf, intermediates) = chain.split_first().unwrap();
    let verifier =
        rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    verifier
        .verify_client_cert(leaf, intermediates, UnixTime::now())
        .map(|_| ())
}

fn leaf_id(chain_pem: &str) -> SpiffeId {
    spiffe_id_from_cert_der(&certs(chain_pem)[0]).unwrap()
}

async fn enrol(f: &Fixture, spiffe_id: &str) -> (String, SignedCert) {
    let tok = token(f.dir.path(), spiffe_id, true);
    let (key, csr) = make_key_and_csr(&id(spiffe_id)).unwrap();
    (key, f.client.enrol(&tok, &csr).await.unwrap())
}

fn refused(result: Result<SignedCert, CaClientError>) -> (u16, String) {
    match result {
        Err(CaClientError::Refused { status, message }) => (status, message),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A CSR for WEB built by hand, with `edit` applied.
fn hostile_csr(edit: impl FnOnce(&mut CertificateParams)) -> String {
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(Ia5String::try_from(WEB).unwrap())];
    edit(&mut params);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

/// A raw HTTPS request to the server (for what the client cannot send).
async fn raw(
    addr: SocketAddr,
    bundle_pem: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value, http::HeaderMap) {
    raw_from(None, addr, bundle_pem, method, path, body).await
}

/// [`raw`], from the loopback address `source` (any 127.0.0.0/8 address
/// works on Linux) when given, so that requests come from several clients.
async fn raw_from(
    source: Option<std::net::IpAddr>,
    addr: SocketAddr,
    bundle_pem: &str,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> (u16, serde_json::Value, http::HeaderMap) {
    let tls = tls_connect(source, addr, bundle_pem).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method(method)
        .uri(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    (status, json, headers)
}

/// A TLS connection to the server trusting `bundle_pem`, from `source`.
async fn tls_connect(
    source: Option<std::net::IpAddr>,
    addr: SocketAddr,
    bundle_pem: &str,
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in certs(bundle_pem) {
        roots.add(root).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = match source {
        None => TcpStream::connect(addr).await.unwrap(),
        Some(ip) => {
            let socket = tokio::net::TcpSocket::new_v4().unwrap();
            socket.bind(SocketAddr::new(ip, 0)).unwrap();
            socket.connect(addr).await.unwrap()
        }
    };
    tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads from `stream` up to the end of a response head; returns its
/// status code.
async fn read_head(stream: &mut tokio_rustls::client::TlsStream<TcpStream>) -> u16 {
    use tokio::io::AsyncReadExt as _;
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0u8; 1];
        assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "closed: {head:?}");
        head.push(byte[0]);
    }
    let line = String::from_utf8_lossy(&head);
    line.split(' ').nth(1).unwrap().parse().unwrap()
}

// ---- enrolment ---------------------------------------------------------------------

#[tokio::test]
async fn enrol_with_a_token_returns_a_chain_that_verifies_and_is_logged() {
    let f = fixture().await;
    let (key_pem, signed) = enrol(&f, WEB).await;
    assert_eq!(leaf_id(&signed.cert_chain_pem), id(WEB));
    verify(&signed.bundle_pem, &signed.cert_chain_pem).unwrap();
    assert_eq!(
        signed.bundle_pem,
        std::fs::read_to_string(f.dir.path().join("ca.pem")).unwrap()
    );
    // The leaf carries the key made by the workload.
    let key = KeyPair::from_pem(&key_pem).unwrap();
    let leaf_der = certs(&signed.cert_chain_pem).remove(0);
    let (_, leaf) = x509_parser::parse_x509_certificate(&leaf_der).unwrap();
    assert_eq!(
        leaf.public_key().subject_public_key.data.as_ref(),
        key.public_key_raw()
    );
    assert_eq!(
        signed.not_after,
        SystemTime::UNIX_EPOCH + Duration::from_secs(leaf.validity().not_after.timestamp() as u64)
    );
    assert_eq!(signed.serial_hex, hex(leaf.raw_serial()));

    let log = read_issued_log(f.dir.path()).unwrap();
    let entry = log
        .iter()
        .find(|e| e.serial == signed.serial_hex)
        .expect("serial logged");
    assert_eq!(entry.spiffe_id, WEB);
    assert_eq!(entry.how, IssuedHow::Token);
    // The server's own certificate is logged too.
    assert!(log
        .iter()
        .any(|e| e.how == IssuedHow::Server && e.spiffe_id == "spiffe://example.org/usher/ca"));
    f.server.shutdown().await;
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn unknown_expired_and_used_tokens_are_401() {
    let f = fixture().await;
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();

    let fake = format!("usher-bt-{}", "ab".repeat(32));
    let (status, message) = refused(f.client.enrol(&fake, &csr).await);
    assert_eq!(status, 401);
    assert_eq!(message, "unknown bootstrap token");

    let expired = mint_token_at(
        f.dir.path(),
        &TokenSpec {
            pattern: IdPattern::parse(WEB).unwrap(),
            ttl: Duration::from_secs(1),
            single_use: false,
        },
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap();
    let (status, message) = refused(f.client.enrol(&expired, &csr).await);
    assert_eq!(status, 401);
    assert_eq!(message, "bootstrap token expired");

    let once = token(f.dir.path(), WEB, true);
    f.client.enrol(&once, &csr).await.unwrap();
    let (status, message) = refused(f.client.enrol(&once, &csr).await);
    assert_eq!(status, 401);
    assert_eq!(message, "bootstrap token already used");
    f.server.shutdown().await;
}

#[tokio::test]
async fn token_for_another_namespace_is_403() {
    let f = fixture().await;
    let tok = token(f.dir.path(), "spiffe://example.org/ns/a/*", true);
    let (_, csr) = make_key_and_csr(&id("spiffe://example.org/ns/b/x")).unwrap();
    let (status, _) = refused(f.client.enrol(&tok, &csr).await);
    assert_eq!(status, 403);
    // Not spent by the refusal.
    let (_, csr) = make_key_and_csr(&id("spiffe://example.org/ns/a/x")).unwrap();
    f.client.enrol(&tok, &csr).await.unwrap();
    f.server.shutdown().await;
}

#[tokio::test]
async fn hostile_csrs_are_400() {
    let f = fixture().await;
    let tok = token(f.dir.path(), WEB, false);

    let ca_rights = hostile_csr(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
    let (status, message) = refused(f.client.enrol(&tok, &ca_rights).await);
    assert_eq!(
        (status, message.as_str()),
        (400, "the CSR asks for CA rights")
    );

    let extra = hostile_csr(|p| {
        p.subject_alt_names.push(SanType::DnsName(
            Ia5String::try_from("evil.example").unwrap(),
        ))
    });
    let (status, _) = refused(f.client.enrol(&tok, &extra).await);
    assert_eq!(status, 400);

    let two_uris = hostile_csr(|p| {
        p.subject_alt_names.push(SanType::URI(
            Ia5String::try_from("spiffe://example.org/admin").unwrap(),
        ))
    });
    let (status, _) = refused(f.client.enrol(&tok, &two_uris).await);
    assert_eq!(status, 400);

    let good = hostile_csr(|_| {});
    let mut der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(good.as_bytes())
        .unwrap()
        .as_ref()
        .to_vec();
    let last = der.len() - 1;
    der[last] ^= 0x01;
    let bad_sig = pem("CERTIFICATE REQUEST", &der);
    let (status, message) = refused(f.client.enrol(&tok, &bad_sig).await);
    assert_eq!(
        (status, message.as_str()),
        (400, "the CSR's signature does not verify")
    );

    let (status, _) = refused(f.client.enrol(&tok, "not a csr").await);
    assert_eq!(status, 400);

    // Nothing but the server's own certificate was issued.
    assert!(read_issued_log(f.dir.path())
        .unwrap()
        .iter()
        .all(|e| e.how == IssuedHow::Server));
    f.server.shutdown().await;
}

fn pem(label: &str, der: &[u8]) -> String {
    use std::fmt::Write as _;
    const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = (u32::from(chunk[0]) << 16)
            | (u32::from(*chunk.get(1).unwrap_or(&0)) << 8)
            | u32::from(*chunk.get(2).unwrap_or(&0));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(B64[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        writeln!(out, "{}", std::str::from_utf8(line).unwrap()).unwrap();
    }
    writeln!(out, "-----END {label}-----").unwrap();
    out
}

#[tokio::test]
async fn oversized_body_is_413() {
    let f = fixture().await;
    let tok = token(f.dir.path(), WEB, false);
    let huge = "A".repeat(70 * 1024);
    let (status, _) = refused(f.client.enrol(&tok, &huge).await);
    assert_eq!(status, 413);
    f.server.shutdown().await;
}

#[tokio::test]
async fn routing_errors_and_malformed_json() {
    let f = fixture().await;
    let bundle = f.client.bundle().await.unwrap();
    let (status, json, _) = raw(f.server.addr, &bundle, "GET", "/nope", Vec::new()).await;
    assert_eq!(status, 404);
    assert_eq!(json["error"], "not found");
    let (status, _, headers) = raw(f.server.addr, &bundle, "GET", "/v1/enrol", Vec::new()).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "POST");
    let (status, _, headers) = raw(f.server.addr, &bundle, "POST", "/v1/bundle", Vec::new()).await;
    assert_eq!(status, 405);
    assert_eq!(headers["allow"], "GET");
    let (status, json, headers) = raw(
        f.server.addr,
        &bundle,
        "POST",
        "/v1/enrol",
        b"{not json".to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(json["error"]
        .as_str()
        .unwrap()
        .starts_with("malformed JSON"));
    assert_eq!(headers["content-type"], "application/json");
    let (status, _, _) = raw(
        f.server.addr,
        &bundle,
        "POST",
        "/v1/enrol",
        br#"{"token":"x","csr":"y","extra":1}"#.to_vec(),
    )
    .await;
    assert_eq!(status, 400);
    f.server.shutdown().await;
}

// ---- renewal -----------------------------------------------------------------------

#[tokio::test]
async fn renew_with_the_issued_certificate_gets_a_new_serial() {
    let f = fixture().await;
    let (key, first) = enrol(&f, WEB).await;
    let (new_key, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let renewed = f
        .client
        .renew(&first.cert_chain_pem, &key, &csr)
        .await
        .unwrap();
    assert_ne!(renewed.serial_hex, first.serial_hex);
    assert_eq!(leaf_id(&renewed.cert_chain_pem), id(WEB));
    verify(&renewed.bundle_pem, &renewed.cert_chain_pem).unwrap();
    let log = read_issued_log(f.dir.path()).unwrap();
    let entry = log.iter().find(|e| e.serial == renewed.serial_hex).unwrap();
    assert_eq!(entry.how, IssuedHow::Renewal);
    // And the renewed certificate renews in turn.
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    f.client
        .renew(&renewed.cert_chain_pem, &new_key, &csr)
        .await
        .unwrap();
    f.server.shutdown().await;
}

#[tokio::test]
async fn renew_for_another_identity_is_403() {
    let f = fixture().await;
    let (key, web) = enrol(&f, WEB).await;
    let (_, csr) = make_key_and_csr(&id(DB)).unwrap();
    let (status, message) = refused(f.client.renew(&web.cert_chain_pem, &key, &csr).await);
    assert_eq!(status, 403);
    assert!(message.contains("does not match"), "{message}");
    f.server.shutdown().await;
}

#[tokio::test]
async fn renew_without_a_client_certificate_is_401() {
    let f = fixture().await;
    let bundle = f.client.bundle().await.unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let body = serde_json::to_vec(&serde_json::json!({ "csr": csr })).unwrap();
    let (status, json, _) = raw(f.server.addr, &bundle, "POST", "/v1/renew", body).await;
    assert_eq!(status, 401);
    assert_eq!(json["error"], "renewal requires a client certificate");
    f.server.shutdown().await;
}

#[tokio::test]
async fn renew_with_an_expired_or_foreign_certificate_fails_tls() {
    let f = fixture().await;
    let ca = load_ca(f.dir.path()).unwrap();
    let mut req = IssueRequest::new(id(WEB));
    req.not_before = Some(SystemTime::now() - Duration::from_secs(7200));
    req.ttl = Duration::from_secs(3600);
    let expired = ca.issue(&req).unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    match f
        .client
        .renew(&expired.cert_pem, &expired.key_pem, &csr)
        .await
    {
        Err(CaClientError::Tls { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    // A certificate from another CA of the same trust domain.
    let other_dir = tempfile::tempdir().unwrap();
    let other = init_ca(other_dir.path(), TD, false).unwrap();
    let foreign = other.issue(&IssueRequest::new(id(WEB))).unwrap();
    match f
        .client
        .renew(&foreign.cert_pem, &foreign.key_pem, &csr)
        .await
    {
        Err(CaClientError::Tls { .. }) => {}
        other => panic!("unexpected {other:?}"),
    }
    f.server.shutdown().await;
}

// ---- restarts, bundle, intermediates --------------------------------------------------

#[tokio::test]
async fn issued_log_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut serials = Vec::new();
    for _ in 0..2 {
        let server = start(dir.path()).await;
        let client = client(&server, dir.path());
        let tok = token(dir.path(), WEB, true);
        let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
        serials.push(client.enrol(&tok, &csr).await.unwrap().serial_hex);
        server.shutdown().await;
    }
    assert_ne!(serials[0], serials[1]);
    let logged: Vec<_> = read_issued_log(dir.path())
        .unwrap()
        .into_iter()
        .filter(|e| e.how == IssuedHow::Token)
        .map(|e| e.serial)
        .collect();
    assert_eq!(logged, serials);
    // Every serial in the log is distinct (server certificates included).
    let all: Vec<_> = read_issued_log(dir.path())
        .unwrap()
        .into_iter()
        .map(|e| e.serial)
        .collect();
    let unique: std::collections::HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), all.len());
}

#[tokio::test]
async fn bundle_endpoint_follows_edits_of_bundle_pem() {
    let f = fixture().await;
    let ca_pem = std::fs::read_to_string(f.dir.path().join("ca.pem")).unwrap();
    assert_eq!(f.client.bundle().await.unwrap(), ca_pem);

    // Root rotation: the operator adds the next root.
    let next_dir = tempfile::tempdir().unwrap();
    let next = init_ca(next_dir.path(), TD, false).unwrap();
    let both = format!("{ca_pem}{}", next.cert_pem());
    std::fs::write(f.dir.path().join(CA_BUNDLE_FILE), &both).unwrap();
    assert_eq!(f.client.bundle().await.unwrap(), both);
    let (_, signed) = enrol(&f, WEB).await;
    assert_eq!(signed.bundle_pem, both);

    // A broken edit does not break the server: the last good bundle stays.
    std::fs::write(f.dir.path().join(CA_BUNDLE_FILE), "oops").unwrap();
    assert_eq!(f.client.bundle().await.unwrap(), both);
    f.server.shutdown().await;
}

#[tokio::test]
async fn intermediate_backed_server_issues_chains_to_the_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root_dir = tmp.path().join("root");
    let int_dir = tmp.path().join("int");
    let root = init_ca(&root_dir, TD, false).unwrap();
    init_intermediate(&int_dir, &root_dir, false).unwrap();
    let server = start(&int_dir).await;
    // Workloads trust only the root.
    let client = CaClient::new(&format!("https://{}", server.addr), root.cert_pem()).unwrap();
    let tok = token(&int_dir, "spiffe://example.org/*", false);
    let (key, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let signed = client.enrol(&tok, &csr).await.unwrap();
    assert_eq!(certs(&signed.cert_chain_pem).len(), 2);
    assert_eq!(signed.bundle_pem, root.cert_pem());
    verify(root.cert_pem(), &signed.cert_chain_pem).unwrap();
    // Renewal through the intermediate chain works as well.
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let renewed = client
        .renew(&signed.cert_chain_pem, &key, &csr)
        .await
        .unwrap();
    verify(root.cert_pem(), &renewed.cert_chain_pem).unwrap();
    server.shutdown().await;
}

// ---- the server's own certificate and the client ---------------------------------------

#[tokio::test]
async fn server_certificate_names_and_client_by_hostname() {
    let dir = tempfile::tempdir().unwrap();
    let ca = init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.dns_names = vec!["ca.mesh.internal".to_owned()];
    let server = CaServer::start(cfg).await.unwrap();

    let by_name = CaClient::new(
        &format!("https://localhost:{}/", server.addr.port()),
        ca.cert_pem(),
    )
    .unwrap();
    assert_eq!(by_name.bundle().await.unwrap(), ca.cert_pem());

    // Fetch the served certificate and check its names with webpki.
    let served = read_issued_log(dir.path())
        .unwrap()
        .into_iter()
        .find(|e| e.how == IssuedHow::Server)
        .unwrap();
    assert_eq!(served.spiffe_id, "spiffe://example.org/usher/ca");
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(certs(ca.cert_pem()).remove(0)).unwrap();
    let roots = Arc::new(roots);
    let mut config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    assert!(
        tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .is_err(),
        "TLS 1.2 is refused"
    );
    let tcp = TcpStream::connect(server.addr).await.unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots.clone())
        .with_no_client_auth();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let chain = tls.get_ref().1.peer_certificates().unwrap().to_vec();
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(roots, provider)
        .build()
        .unwrap();
    for name in ["localhost", "ca.mesh.internal", "127.0.0.1"] {
        verifier
            .verify_server_cert(
                &chain[0],
                &[],
                &ServerName::try_from(name).unwrap(),
                &[],
                UnixTime::now(),
            )
            .unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    assert_eq!(
        spiffe_id_from_cert_der(&chain[0]).unwrap().as_str(),
        "spiffe://example.org/usher/ca"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn client_errors_are_distinguished() {
    let f = fixture().await;
    // Another CA's bundle: the server is not trusted.
    let stranger_dir = tempfile::tempdir().unwrap();
    let stranger = init_ca(stranger_dir.path(), TD, false).unwrap();
    let distrustful =
        CaClient::new(&format!("https://{}", f.server.addr), stranger.cert_pem()).unwrap();
    assert!(matches!(
        distrustful.bundle().await,
        Err(CaClientError::Tls { .. })
    ));
    let bundle = f.client.bundle().await.unwrap();
    // Nothing listening.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let nobody = CaClient::new(&format!("https://127.0.0.1:{port}"), &bundle).unwrap();
    assert!(matches!(
        nobody.bundle().await,
        Err(CaClientError::Unreachable { .. })
    ));
    // Bad arguments.
    for url in [
        "http://127.0.0.1:1",
        "https://127.0.0.1:1/v1",
        "127.0.0.1:1",
        "https://u@127.0.0.1:1",
    ] {
        assert!(
            matches!(
                CaClient::new(url, &bundle),
                Err(CaClientError::InvalidUrl { .. })
            ),
            "{url}"
        );
    }
    assert!(matches!(
        CaClient::new("https://127.0.0.1:1", "no pem"),
        Err(CaClientError::InvalidBundle { .. })
    ));
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    assert!(matches!(
        f.client.renew("nope", "nope", &csr).await,
        Err(CaClientError::InvalidCredentials { .. })
    ));
    f.server.shutdown().await;
}

#[tokio::test]
async fn server_refuses_bad_config() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    assert!(matches!(
        CaServer::start(cfg.clone()).await,
        Err(usher_ca::CaServerError::Ca(
            usher_ca::CaError::Missing { .. }
        ))
    ));
    init_ca(dir.path(), TD, false).unwrap();
    cfg.cert_ttl = Duration::ZERO;
    assert!(matches!(
        CaServer::start(cfg.clone()).await,
        Err(usher_ca::CaServerError::InvalidCertTtl { .. })
    ));
    cfg.cert_ttl = Duration::from_secs(60);
    cfg.dns_names = vec!["not a name".to_owned()];
    assert!(matches!(
        CaServer::start(cfg.clone()).await,
        Err(usher_ca::CaServerError::Ca(
            usher_ca::CaError::InvalidDnsName { .. }
        ))
    ));
    // A port in use.
    cfg.dns_names.clear();
    let first = CaServer::start(cfg.clone()).await.unwrap();
    cfg.listen = first.addr;
    assert!(matches!(
        CaServer::start(cfg).await,
        Err(usher_ca::CaServerError::Bind { .. })
    ));
    first.shutdown().await;
}

#[tokio::test]
async fn short_lived_certificates_can_be_issued() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.cert_ttl = Duration::from_secs(1);
    let server = CaServer::start(cfg).await.unwrap();
    let client = client(&server, dir.path());
    let tok = token(dir.path(), WEB, true);
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let signed = client.enrol(&tok, &csr).await.unwrap();
    let left = signed
        .not_after
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    assert!(left <= Duration::from_secs(2), "{left:?}");
    server.shutdown().await;
}

// ---- failed enrolments: limited per address -------------------------------

#[tokio::test]
async fn failed_enrolments_are_limited_per_address() {
    // How they are logged: tests/enrol_log.rs.
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.cert_ttl = Duration::from_secs(3600);
    cfg.enrol_failure_limit = 3;
    cfg.enrol_failure_window = Duration::from_secs(600);
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let body = |token: &str| {
        serde_json::json!({ "token": token, "csr": csr })
            .to_string()
            .into_bytes()
    };
    let guesser: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let neighbour: std::net::IpAddr = "127.0.0.3".parse().unwrap();
    let enrol = |from, token: &str| {
        raw_from(
            Some(from),
            server.addr,
            &bundle,
            "POST",
            "/v1/enrol",
            body(token),
        )
    };

    // Guessing tokens: refused as usual up to the limit...
    let guess = format!("usher-bt-{}", "cd".repeat(32));
    for i in 0..3 {
        let (status, json, _) = enrol(guesser, &guess).await;
        assert_eq!(status, 401, "guess {i}: {json}");
        assert_eq!(json["error"], "unknown bootstrap token");
    }
    // ...then 429 with Retry-After, before the token is looked at: even a
    // valid single-use token is not spent.
    let good = token(dir.path(), WEB, true);
    for _ in 0..2 {
        let (status, json, headers) = enrol(guesser, &good).await;
        assert_eq!(status, 429, "{json}");
        let retry: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((590..=600).contains(&retry), "Retry-After: {retry}");
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("too many failed enrolments"),
            "{json}"
        );
    }
    assert!(
        read_issued_log(dir.path())
            .unwrap()
            .iter()
            .all(|e| e.how == IssuedHow::Server),
        "nothing was issued to the guesser"
    );
    // Another address is served, with the token the 429s did not spend.
    let (status, json, _) = enrol(neighbour, &good).await;
    assert_eq!(status, 200, "{json}");
    assert!(json["cert_chain"].is_string(), "{json}");
    // The bundle is not an enrolment: not limited.
    let (status, _, _) = raw_from(
        Some(guesser),
        server.addr,
        &bundle,
        "GET",
        "/v1/bundle",
        Vec::new(),
    )
    .await;
    assert_eq!(status, 200);

    server.shutdown().await;
}

#[tokio::test]
async fn guesses_sent_at_once_do_not_overrun_the_limit() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.enrol_failure_limit = 3;
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let (_, csr) = make_key_and_csr(&id(WEB)).unwrap();
    let source = Some("127.0.0.4".parse().unwrap());

    // Ten guesses whose heads all reach the server before any token is
    // checked: each is let in (no failure yet) and waits for its body,
    // which `100 Continue` proves.
    let mut waiting = Vec::new();
    for i in 0..10 {
        let body =
            serde_json::json!({ "token": format!("usher-bt-{i:064x}"), "csr": csr }).to_string();
        let mut tls = tls_connect(source, server.addr, &bundle).await;
        let head = format!(
            "POST /v1/enrol HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nexpect: 100-continue\r\n\r\n",
            body.len()
        );
        tls.write_all(head.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        assert_eq!(
            read_head(&mut tls).await,
            100,
            "guess {i} waits for its body"
        );
        waiting.push((tls, body));
    }
    // Now the bodies: only the limit's worth of tokens is checked.
    let mut statuses = Vec::new();
    for (mut tls, body) in waiting {
        tls.write_all(body.as_bytes()).await.unwrap();
        tls.flush().await.unwrap();
        statuses.push(read_head(&mut tls).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429, 429, 429]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_zero_enrolment_failure_limit_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), TD, false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.enrol_failure_limit = 0;
    assert!(matches!(
        CaServer::start(cfg.clone()).await,
        Err(usher_ca::CaServerError::InvalidEnrolLimit { .. })
    ));
    cfg.enrol_failure_limit = 1;
    cfg.enrol_failure_window = Duration::ZERO;
    assert!(matches!(
        CaServer::start(cfg).await,
        Err(usher_ca::CaServerError::InvalidEnrolLimit { .. })
    ));
}
