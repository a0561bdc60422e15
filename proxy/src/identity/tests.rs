//! Loading identity files and the TLS configurations built from them, with
//! real certificates from usher's CA and real in-memory TLS handshakes.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, NamedGroup, ProtocolVersion, ServerConfig};
use rustls_pki_types::ServerName;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use usher_ca::{init_ca, write_issued, Ca, IssueRequest, SpiffeId};

use super::*;
use crate::config::{IdentityFiles, TlsConfig, TlsVersion};
use crate::connect::ConnectError;

const TD: &str = "mesh.local";

fn id(sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/shop/sa/{sa}")).unwrap()
}

/// A CA in a temporary folder, issuing into sub-folders of it.
struct Pki {
    dir: TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        Pki::for_trust_domain(TD)
    }

    fn for_trust_domain(td: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(&dir.path().join("ca"), td, false).unwrap();
        Pki { dir, ca }
    }

    fn issue_with(&self, name: &str, req: IssueRequest) -> IdentityFiles {
        let out = self.dir.path().join(name);
        write_issued(&out, &self.ca.issue(&req).unwrap()).unwrap();
        files(&out)
    }

    fn issue(&self, name: &str, spiffe_id: &SpiffeId) -> IdentityFiles {
        self.issue_with(name, IssueRequest::new(spiffe_id.clone()))
    }
}

fn files(dir: &Path) -> IdentityFiles {
    IdentityFiles {
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        bundle: dir.join("bundle.pem"),
        watch: true,
        allow_insecure_key_permissions: false,
    }
}

fn provider() -> Arc<CryptoProvider> {
    crypto_provider(&TlsConfig::default())
}

fn load(config: &IdentityFiles) -> Result<LoadedIdentity, IdentityError> {
    load_identity(config, &provider())
}

fn tls(min_version: TlsVersion) -> TlsConfig {
    TlsConfig {
        min_version,
        ..TlsConfig::default()
    }
}

#[track_caller]
fn assert_names(err: &IdentityError, path: &Path) {
    let shown = err.to_string();
    assert!(
        shown.starts_with(&path.display().to_string()),
        "the error starts with {}: {shown}",
        path.display()
    );
}

#[test]
fn load_identity_reports_the_spiffe_id_and_expiry() {
    let pki = Pki::new();
    let files = pki.issue("orders", &id("orders"));
    let loaded = load(&files).unwrap();
    assert_eq!(loaded.spiffe_id, id("orders"));
    assert_eq!(
        loaded.certified_key.cert.len(),
        1,
        "the leaf, no intermediates"
    );
    assert_eq!(loaded.roots.len(), 1, "the bundle's root");

    let left = loaded
        .not_after
        .duration_since(SystemTime::now())
        .expect("not_after is in the future");
    let day = Duration::from_secs(24 * 3600);
    assert!(
        left <= day && left > day - Duration::from_secs(300),
        "about 24 h left: {left:?}"
    );
}

#[test]
fn load_identity_reports_a_custom_lifetime() {
    let pki = Pki::new();
    let mut req = IssueRequest::new(id("orders"));
    req.ttl = Duration::from_secs(3600);
    let loaded = load(&pki.issue_with("orders", req)).unwrap();
    let left = loaded.not_after.duration_since(SystemTime::now()).unwrap();
    assert!(
        left <= Duration::from_secs(3600) && left > Duration::from_secs(3300),
        "{left:?}"
    );
}

#[test]
fn a_key_that_does_not_match_the_certificate_is_refused_naming_the_key() {
    let pki = Pki::new();
    let a = pki.issue("a", &id("a"));
    let b = pki.issue("b", &id("b"));
    let mixed = IdentityFiles {
        key: b.key.clone(),
        ..a
    };
    let err = load(&mixed).unwrap_err();
    assert!(
        matches!(&err, IdentityError::KeyMismatch { path, .. } if *path == b.key),
        "{err:?}"
    );
    assert_names(&err, &b.key);
    assert!(err.to_string().contains("does not match"), "{err}");
}

#[test]
fn missing_files_are_named() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    let gone = pki.dir.path().join("nowhere/missing.pem");

    for (which, config) in [
        (
            "cert",
            IdentityFiles {
                cert: gone.clone(),
                ..good.clone()
            },
        ),
        (
            "key",
            IdentityFiles {
                key: gone.clone(),
                ..good.clone()
            },
        ),
        (
            "bundle",
            IdentityFiles {
                bundle: gone.clone(),
                ..good.clone()
            },
        ),
    ] {
        let err = load(&config).unwrap_err();
        assert_names(&err, &gone);
        let ok = match which {
            "key" => matches!(&err, IdentityError::ReadKey { path, .. } if *path == gone),
            _ => matches!(&err, IdentityError::ReadCerts { path, .. } if *path == gone),
        };
        assert!(ok, "{which}: {err:?}");
    }
}

#[test]
fn a_bundle_without_certificates_is_refused() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    let empty = pki.dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    // A PEM file holding only a key has no certificate either.
    let key_only = good.key.clone();

    for bundle in [empty, key_only] {
        let config = IdentityFiles {
            bundle: bundle.clone(),
            ..good.clone()
        };
        let err = load(&config).unwrap_err();
        assert!(
            matches!(&err, IdentityError::NoCerts { path } if *path == bundle),
            "{err:?}"
        );
        assert_names(&err, &bundle);
        assert!(err.to_string().contains("no certificate found"), "{err}");
    }
}

#[test]
fn a_certificate_file_without_certificates_is_refused() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    let config = IdentityFiles {
        cert: good.key.clone(),
        ..good.clone()
    };
    let err = load(&config).unwrap_err();
    assert!(
        matches!(&err, IdentityError::NoCerts { path } if *path == good.key),
        "{err:?}"
    );
}

#[test]
fn a_key_file_without_a_key_is_refused() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    let config = IdentityFiles {
        key: good.cert.clone(),
        ..good.clone()
    };
    let err = load(&config).unwrap_err();
    assert!(
        matches!(&err, IdentityError::ReadKey { path, .. } if *path == good.cert),
        "{err:?}"
    );
    assert_names(&err, &good.cert);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn a_key_file_readable_by_group_or_others_is_refused_naming_file_mode_and_fix() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    for mode in [0o640, 0o604, 0o644, 0o660, 0o601, 0o610] {
        chmod(&good.key, mode);
        let err = load(&good).unwrap_err();
        assert!(
            matches!(&err, IdentityError::InsecureKeyPermissions { path, mode: m }
                if *path == good.key && *m == mode),
            "{mode:o}: {err:?}"
        );
        assert_names(&err, &good.key);
        let shown = err.to_string();
        assert!(shown.contains(&format!("mode 0{mode:o}")), "{shown}");
        assert!(
            shown.contains(&format!("chmod 600 {}", good.key.display())),
            "{shown}"
        );
        assert!(
            shown.contains("identity.allow_insecure_key_permissions"),
            "{shown}"
        );
    }
    for mode in [0o600, 0o400] {
        chmod(&good.key, mode);
        load(&good).unwrap_or_else(|e| panic!("{mode:o}: {e}"));
    }
}

#[test]
fn allow_insecure_key_permissions_accepts_an_unprotected_key() {
    let pki = Pki::new();
    let good = pki.issue("a", &id("a"));
    chmod(&good.key, 0o644);
    let config = IdentityFiles {
        allow_insecure_key_permissions: true,
        ..good.clone()
    };
    let loaded = load(&config).unwrap();
    assert_eq!(loaded.spiffe_id, id("a"));
    // And again (a file-mode reload): still accepted.
    load(&config).unwrap();
}

#[test]
fn a_wrong_key_file_is_reported_as_such_before_its_mode() {
    let pki = Pki::new();
    let a = pki.issue("a", &id("a"));
    let b = pki.issue("b", &id("b"));
    chmod(&b.key, 0o644);
    let mixed = IdentityFiles {
        key: b.key.clone(),
        ..a.clone()
    };
    let err = load(&mixed).unwrap_err();
    assert!(matches!(&err, IdentityError::KeyMismatch { .. }), "{err:?}");
}

// ---- TLS handshakes, in memory ------------------------------------------

fn server(files: &IdentityFiles, tls: &TlsConfig) -> (Arc<ServerConfig>, Arc<CertStore>) {
    let provider = crypto_provider(tls);
    let loaded = load_identity(files, &provider).unwrap();
    let certs = CertStore::new(loaded.certified_key);
    let trust = TrustStore::new(loaded.roots, provider.clone()).unwrap();
    let config = server_config(certs.clone(), trust, tls, provider).unwrap();
    (config, certs)
}

/// A client presenting `files`' certificate, trusting `files`' bundle and
/// accepting only `expected`, speaking exactly `versions`.
fn client(
    files: &IdentityFiles,
    expected: SpiffeId,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> Arc<ClientConfig> {
    let provider = provider();
    let loaded = load_identity(files, &provider).unwrap();
    let verifier = SpiffeServerVerifier::new(loaded.roots.clone(), expected, provider.clone());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(CertStore::new(loaded.certified_key));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

/// What each side of a finished handshake saw.
struct Handshake {
    client: Result<(ProtocolVersion, Option<SpiffeId>), io::Error>,
    server: Result<Option<SpiffeId>, io::Error>,
}

/// Runs a TLS handshake over an in-memory pipe, then one byte each way.
async fn handshake(client: Arc<ClientConfig>, server: Arc<ServerConfig>) -> Handshake {
    let (c, s) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from("ignored.by.spiffe").unwrap();
    let client = async move {
        let mut tls = tokio_rustls::TlsConnector::from(client)
            .connect(name, c)
            .await?;
        tls.write_all(b"?").await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        let (_, conn) = tls.get_ref();
        let version = conn.protocol_version().unwrap();
        Ok((version, peer_identity(conn)))
    };
    let server = async move {
        let mut tls = tokio_rustls::TlsAcceptor::from(server).accept(s).await?;
        let mut byte = [0u8; 1];
        tls.read_exact(&mut byte).await?;
        tls.write_all(b"!").await?;
        tls.flush().await?;
        let (_, conn) = tls.get_ref();
        Ok(peer_identity(conn))
    };
    let (client, server) = tokio::join!(client, server);
    Handshake { client, server }
}

#[tokio::test]
async fn handshake_succeeds_when_the_server_has_the_expected_id() {
    let pki = Pki::new();
    let (server_config, _) = server(&pki.issue("b", &id("b")), &TlsConfig::default());
    let client_config = client(
        &pki.issue("a", &id("a")),
        id("b"),
        &[&rustls::version::TLS13],
    );

    let done = handshake(client_config, server_config).await;
    let (version, server_id) = done.client.unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_3);
    assert_eq!(server_id, Some(id("b")), "the client sees the server's ID");
    assert_eq!(
        done.server.unwrap(),
        Some(id("a")),
        "the server sees the client's ID"
    );
}

#[tokio::test]
async fn handshake_with_another_server_id_is_an_identity_mismatch() {
    let pki = Pki::new();
    let (server_config, _) = server(&pki.issue("b", &id("b")), &TlsConfig::default());
    let client_config = client(
        &pki.issue("a", &id("a")),
        id("payments"),
        &[&rustls::version::TLS13],
    );

    let done = handshake(client_config, server_config).await;
    let err = done.client.expect_err("the client refuses the server");
    assert!(done.server.is_err(), "the server sees the handshake fail");
    match ConnectError::from_handshake(err) {
        ConnectError::IdentityMismatch(m) => {
            assert_eq!(m.expected, id("payments"));
            assert_eq!(m.presented, id("b"));
        }
        other => panic!("expected IdentityMismatch, got {other:?}"),
    }
}

#[tokio::test]
async fn server_from_another_trust_root_is_a_tls_error_not_a_mismatch() {
    // Same SPIFFE ID, but signed by a CA the client does not trust.
    let ours = Pki::new();
    let theirs = Pki::new();
    let (server_config, _) = server(&theirs.issue("b", &id("b")), &TlsConfig::default());
    let client_config = client(
        &ours.issue("a", &id("a")),
        id("b"),
        &[&rustls::version::TLS13],
    );

    let err = handshake(client_config, server_config)
        .await
        .client
        .expect_err("an untrusted chain is refused");
    match ConnectError::from_handshake(err) {
        // Both roots are named "usher root CA mesh.local": the chain is
        // found by name and fails on the signature.
        ConnectError::Tls(e) => assert!(
            e.to_string()
                .contains("invalid peer certificate: BadSignature"),
            "{e}"
        ),
        other => panic!("expected Tls, got {other:?}"),
    }
}

#[tokio::test]
async fn server_from_another_trust_domain_is_an_unknown_issuer() {
    let ours = Pki::new();
    let theirs = Pki::for_trust_domain("other.local");
    let their_b = SpiffeId::parse("spiffe://other.local/ns/shop/sa/b").unwrap();
    let (server_config, _) = server(&theirs.issue("b", &their_b), &TlsConfig::default());
    let client_config = client(
        &ours.issue("a", &id("a")),
        id("b"),
        &[&rustls::version::TLS13],
    );

    let err = handshake(client_config, server_config)
        .await
        .client
        .expect_err("a foreign root is refused");
    match ConnectError::from_handshake(err) {
        ConnectError::Tls(e) => assert!(e.to_string().contains("UnknownIssuer"), "{e}"),
        other => panic!("expected Tls, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_server_certificate_is_refused() {
    let pki = Pki::new();
    let mut req = IssueRequest::new(id("b"));
    req.not_before = Some(SystemTime::now() - Duration::from_secs(7200));
    req.ttl = Duration::from_secs(3600);
    let (server_config, _) = server(&pki.issue_with("b", req), &TlsConfig::default());
    let client_config = client(
        &pki.issue("a", &id("a")),
        id("b"),
        &[&rustls::version::TLS13],
    );

    let err = handshake(client_config, server_config)
        .await
        .client
        .expect_err("an expired certificate is refused");
    assert!(
        matches!(ConnectError::from_handshake(err), ConnectError::Tls(ref e) if e.to_string().contains("expired")),
    );
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_rebuilding_the_config() {
    let pki = Pki::new();
    let (server_config, certs) = server(&pki.issue("b", &id("b")), &TlsConfig::default());
    let a = pki.issue("a", &id("a"));

    let other = load(&pki.issue("b2", &id("b2"))).unwrap();
    certs.replace(other.certified_key.clone());
    assert!(Arc::ptr_eq(&certs.current(), &other.certified_key));

    let done = handshake(
        client(&a, id("b2"), &[&rustls::version::TLS13]),
        server_config.clone(),
    )
    .await;
    assert_eq!(done.client.unwrap().1, Some(id("b2")));
    let err = handshake(
        client(&a, id("b"), &[&rustls::version::TLS13]),
        server_config,
    )
    .await
    .client
    .unwrap_err();
    assert!(matches!(
        ConnectError::from_handshake(err),
        ConnectError::IdentityMismatch(_)
    ));
}

#[tokio::test]
async fn client_config_checks_the_routes_identity() {
    let pki = Pki::new();
    let (server_config, _) = server(&pki.issue("b", &id("b")), &TlsConfig::default());
    let a = load(&pki.issue("a", &id("a"))).unwrap();
    let certs = CertStore::new(a.certified_key);
    let config = |expected| {
        client_config(
            certs.clone(),
            TrustStore::new(a.roots.clone(), provider()).unwrap(),
            expected,
            Alpn::Http1,
            &TlsConfig::default(),
            provider(),
        )
        .unwrap()
    };
    assert_eq!(config(id("b")).alpn_protocols, vec![b"http/1.1".to_vec()]);

    let done = handshake(config(id("b")), server_config.clone()).await;
    assert_eq!(done.client.unwrap().1, Some(id("b")));
    assert_eq!(done.server.unwrap(), Some(id("a")));

    let err = handshake(config(id("c")), server_config)
        .await
        .client
        .unwrap_err();
    assert!(matches!(
        ConnectError::from_handshake(err),
        ConnectError::IdentityMismatch(m) if m.expected == id("c") && m.presented == id("b")
    ));
}

#[tokio::test]
async fn tls12_client_is_refused_by_default_and_accepted_with_min_version_12() {
    let pki = Pki::new();
    let b = pki.issue("b", &id("b"));
    let a = pki.issue("a", &id("a"));
    let tls12_only = || client(&a, id("b"), &[&rustls::version::TLS12]);

    let (strict, _) = server(&b, &TlsConfig::default());
    let done = handshake(tls12_only(), strict).await;
    let err = done.client.expect_err("TLS 1.2 is refused by default");
    assert!(done.server.is_err());
    assert!(
        matches!(ConnectError::from_handshake(err), ConnectError::Tls(ref e) if e.to_string().contains("ProtocolVersion")),
    );

    let (lenient, _) = server(&b, &tls(TlsVersion::Tls12));
    let done = handshake(tls12_only(), lenient.clone()).await;
    let (version, server_id) = done.client.unwrap();
    assert_eq!(version, ProtocolVersion::TLSv1_2);
    assert_eq!(server_id, Some(id("b")));
    assert_eq!(done.server.unwrap(), Some(id("a")));

    // TLS 1.3 clients still get TLS 1.3.
    let done = handshake(client(&a, id("b"), &[&rustls::version::TLS13]), lenient).await;
    assert_eq!(done.client.unwrap().0, ProtocolVersion::TLSv1_3);
}

#[test]
fn post_quantum_key_exchange_is_on_by_default_and_first() {
    let names: Vec<NamedGroup> = provider().kx_groups.iter().map(|g| g.name()).collect();
    assert_eq!(
        names.first(),
        Some(&NamedGroup::X25519MLKEM768),
        "{names:?}"
    );
}

#[test]
fn post_quantum_false_removes_x25519mlkem768() {
    let tls = TlsConfig {
        post_quantum: false,
        ..TlsConfig::default()
    };
    let names: Vec<NamedGroup> = crypto_provider(&tls)
        .kx_groups
        .iter()
        .map(|g| g.name())
        .collect();
    assert!(!names.contains(&NamedGroup::X25519MLKEM768), "{names:?}");
    assert!(
        names.contains(&NamedGroup::X25519),
        "classical X25519 stays: {names:?}"
    );
}

#[tokio::test]
async fn handshake_works_without_post_quantum() {
    let pki = Pki::new();
    let classic = TlsConfig {
        post_quantum: false,
        ..TlsConfig::default()
    };
    let (server_config, _) = server(&pki.issue("b", &id("b")), &classic);
    let done = handshake(
        client(
            &pki.issue("a", &id("a")),
            id("b"),
            &[&rustls::version::TLS13],
        ),
        server_config,
    )
    .await;
    assert_eq!(done.client.unwrap().1, Some(id("b")));
}
