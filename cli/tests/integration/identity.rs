//! The identity lifecycle with a real CA server (`usher_ca::CaServer`, the
//! code behind `usher ca serve`): enrolment by token, renewal of
//! seconds-long certificates under continuous traffic, a CA outage through
//! expiry and back, a root rotation, and file-mode reloads.

use crate::support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::get1;
use crate::support::{assert_status, id, start_sidecar, wait_until, RouteSpec, TD};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use usher_ca::{CaServer, CaServerConfig, IdPattern, TokenSpec};
use usher_proxy::Sidecar;

/// A CA directory with a root, and a server for it.
struct Ca {
    dir: PathBuf,
    server: Option<CaServer>,
    addr: SocketAddr,
}

impl Ca {
    async fn start(dir: &Path, ttl: Duration) -> Ca {
        usher_ca::init_ca(dir, TD, false).unwrap();
        Ca::serve(dir, "127.0.0.1:0".parse().unwrap(), ttl).await
    }

    async fn serve(dir: &Path, listen: SocketAddr, ttl: Duration) -> Ca {
        let mut config = CaServerConfig::new(dir.to_path_buf(), listen);
        config.cert_ttl = ttl;
        let server = CaServer::start(config).await.unwrap();
        let addr = server.addr;
        Ca {
            dir: dir.to_path_buf(),
            server: Some(server),
            addr,
        }
    }

    async fn stop(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }

    /// A reusable token for every workload of the test namespace.
    fn token(&self, out: &Path) -> PathBuf {
        let spec = TokenSpec {
            pattern: IdPattern::parse(&format!("spiffe://{TD}/ns/test/*")).unwrap(),
            ttl: Duration::from_secs(3600),
            single_use: false,
        };
        let token = usher_ca::mint_token(&self.dir, &spec).unwrap();
        std::fs::write(out, token).unwrap();
        out.to_path_buf()
    }

    fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

/// `usher.yaml` for a CA-mode sidecar `sa` in `dir`.
fn ca_config(dir: &Path, ca: &Ca, sa: &str, app: SocketAddr, routes: &[RouteSpec]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let token = ca.token(&dir.join("token"));
    std::fs::copy(ca.dir.join("ca.pem"), dir.join("ca-bundle.pem")).unwrap();
    let mut yaml = format!(
        "service: {sa}\nidentity:\n  ca:\n    url: {url}\n    bundle: ca-bundle.pem\n    token_file: {token}\n    spiffe_id: {id}\n\
inbound:\n  listen: 127.0.0.1:0\n  app: {app}\nadmin:\n  listen: 127.0.0.1:0\noutbound:\n  listen: 127.0.0.1:0\n  connect_timeout: 2s\n  routes:\n",
        url = ca.url(),
        token = token.display(),
        id = id(sa),
    );
    if routes.is_empty() {
        yaml = yaml.replace("  routes:\n", "  routes: []\n");
    }
    for r in routes {
        yaml.push_str(&format!(
            "    - host: {}\n      address: {}\n      identity: {}\n",
            r.host, r.address, r.identity
        ));
    }
    let path = dir.join("usher.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// b (in front of `app`) and a (routing host b), both enrolled with `ca`.
async fn ca_pair(root: &Path, ca: &Ca, app: SocketAddr) -> (Sidecar, Sidecar) {
    let b = start_sidecar(&ca_config(&root.join("b"), ca, "b", app, &[])).await;
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.addrs.inbound,
        identity: id("b"),
    }];
    let a = start_sidecar(&ca_config(&root.join("a"), ca, "a", app, &routes)).await;
    (a, b)
}

/// Sends requests a → b back to back until stopped; counts failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<Vec<String>>,
}

impl Load {
    fn start(outbound: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let (s, o) = (stop.clone(), ok.clone());
        let task = tokio::spawn(async move {
            let mut errors = Vec::new();
            while !s.load(Ordering::SeqCst) {
                let (status, body) = get1(outbound, "b", "/headers").await;
                if status == 200 {
                    o.fetch_add(1, Ordering::SeqCst);
                } else {
                    errors.push(format!("{status}: {body}"));
                }
            }
            errors
        });
        Load { stop, ok, task }
    }

    async fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let errors = self.task.await.unwrap();
        (self.ok.load(Ordering::SeqCst), errors)
    }
}

fn serial(sidecar: &Sidecar) -> String {
    sidecar.identity.info().serial_hex.clone()
}

/// The serial of the certificate b's inbound listener presents, as a peer
/// sees it in the handshake (client certificate from `client_dir`).
async fn served_serial(addr: SocketAddr, trust: &Path, client_dir: &Path) -> String {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(trust).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = usher_proxy::identity::SpiffeServerVerifier::new(
        Arc::new(roots),
        id("b"),
        provider.clone(),
    );
    let chain: Vec<_> = CertificateDer::pem_file_iter(client_dir.join("cert.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(client_dir.join("key.pem")).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("b").unwrap(), tcp)
        .await
        .unwrap();
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    cert.tbs_certificate.raw_serial_as_string().replace(':', "")
}

async fn renewals(sidecar: &Sidecar) -> f64 {
    let (_, body) = get1(sidecar.addrs.admin, "admin", "/metrics").await;
    body.lines()
        .find(|l| l.starts_with("usher_identity_renewals_total{result=\"success\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_lived_certificates_renew_under_load_with_no_failed_request() {
    let tmp = tempfile::tempdir().unwrap();
    let app = Backend::start().await;
    let ca = Ca::start(&tmp.path().join("ca"), Duration::from_secs(4)).await;
    let (a, b) = ca_pair(tmp.path(), &ca, app.addr).await;
    assert_status(
        get1(b.addrs.admin, "admin", "/ready").await,
        200,
        "GET /ready (Host: admin)",
    );
    let first = serial(&b);

    let load = Load::start(a.addrs.outbound);
    // One enrolment and three renewals each.
    let renewed = wait_until(Duration::from_secs(40), || async {
        renewals(&a).await >= 4.0 && renewals(&b).await >= 4.0
    })
    .await;
    let (ok, errors) = load.finish().await;
    assert!(
        renewed,
        "a: {} b: {} renewals",
        renewals(&a).await,
        renewals(&b).await
    );
    assert!(
        errors.is_empty(),
        "{} failed requests: {errors:?}",
        errors.len()
    );
    assert!(ok > 50, "only {ok} requests");

    // The peer sees the new certificate.
    let client = tmp.path().join("probe");
    let probe = usher_ca::load_ca(&ca.dir)
        .unwrap()
        .issue(&usher_ca::IssueRequest::new(id("probe")))
        .unwrap();
    usher_ca::write_issued(&client, &probe).unwrap();
    let seen = served_serial(b.addrs.inbound, &ca.dir.join("ca.pem"), &client).await;
    assert_ne!(seen, first, "still the first certificate");
    assert_eq!(seen, serial(&b));
    // Every certificate is in the CA's log.
    let log = usher_ca::read_issued_log(&ca.dir).unwrap();
    assert!(
        log.iter().any(|e| e.serial.eq_ignore_ascii_case(&seen)),
        "{seen} not logged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ca_outage_runs_until_expiry_then_readiness_drops_and_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let app = Backend::start().await;
    let mut ca = Ca::start(&tmp.path().join("ca"), Duration::from_secs(4)).await;
    let (a, b) = ca_pair(tmp.path(), &ca, app.addr).await;
    assert_status(
        get1(a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );

    ca.stop().await;
    let expiry = b.identity.info().not_after;
    // Before expiry: renewal fails, traffic and readiness carry on.
    assert_status(
        get1(a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );
    assert_status(
        get1(b.addrs.admin, "admin", "/ready").await,
        200,
        "GET /ready (Host: admin)",
    );
    // After expiry: not ready, and it says why.
    let not_ready = wait_until(Duration::from_secs(20), || async {
        get1(b.addrs.admin, "admin", "/ready").await.0 == 503
    })
    .await;
    assert!(not_ready, "readiness did not drop at expiry");
    assert!(std::time::SystemTime::now() >= expiry);
    let (_, why) = get1(b.addrs.admin, "admin", "/ready").await;
    assert!(why.contains("expired"), "{why}");

    // The CA comes back (same address): b enrols again by itself.
    let listen = ca.addr;
    let _ca = Ca::serve(&ca.dir, listen, Duration::from_secs(30)).await;
    let back = wait_until(Duration::from_secs(30), || async {
        get1(b.addrs.admin, "admin", "/ready").await.0 == 200
            && get1(a.addrs.admin, "admin", "/ready").await.0 == 200
    })
    .await;
    assert!(back, "did not recover after the CA came back");
    assert_status(
        get1(a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn root_rotation_old_then_both_then_new_with_no_failed_request() {
    let tmp = tempfile::tempdir().unwrap();
    let app = Backend::start().await;
    let ttl = Duration::from_secs(3);
    let old_dir = tmp.path().join("ca-old");
    let mut old = Ca::start(&old_dir, ttl).await;
    let (a, b) = ca_pair(tmp.path(), &old, app.addr).await;
    let load = Load::start(a.addrs.outbound);
    let roots = |s: &Sidecar| s.identity.info().roots;

    // 1. A new root is made, and published next to the old one.
    let new_dir = tmp.path().join("ca-new");
    usher_ca::init_ca(&new_dir, TD, false).unwrap();
    let old_root = std::fs::read_to_string(old_dir.join("ca.pem")).unwrap();
    let new_root = std::fs::read_to_string(new_dir.join("ca.pem")).unwrap();
    let both = format!("{old_root}{new_root}");
    std::fs::write(old_dir.join("bundle.pem"), &both).unwrap();
    std::fs::write(new_dir.join("bundle.pem"), &both).unwrap();
    let trusted = wait_until(Duration::from_secs(30), || async {
        roots(&a) == 2 && roots(&b) == 2
    })
    .await;
    assert!(trusted, "both roots did not reach both sidecars");

    // 2. The CA now signs with the new root (same address).
    let listen = old.addr;
    old.stop().await;
    let new = Ca::serve(&new_dir, listen, ttl).await;
    let from_new = |s: &Sidecar| {
        let serial = serial(s);
        usher_ca::read_issued_log(&new_dir)
            .unwrap()
            .iter()
            .any(|e| e.serial.eq_ignore_ascii_case(&serial))
    };
    let moved = wait_until(Duration::from_secs(30), || async {
        from_new(&a) && from_new(&b)
    })
    .await;
    assert!(
        moved,
        "certificates from the new root did not reach both sidecars"
    );

    // 3. The old root is retired.
    std::fs::write(new_dir.join("bundle.pem"), &new_root).unwrap();
    let retired = wait_until(Duration::from_secs(30), || async {
        roots(&a) == 1 && roots(&b) == 1
    })
    .await;
    let (ok, errors) = load.finish().await;
    assert!(retired, "the old root is still trusted");
    assert!(
        errors.is_empty(),
        "{} failed requests: {errors:?}",
        errors.len()
    );
    assert!(ok > 50, "only {ok} requests");
    drop(new);
}

#[tokio::test]
async fn file_mode_serves_new_files_without_a_restart() {
    let app = Backend::start().await;
    let mesh = support::Mesh::start(app.addr).await;
    let b_certs = mesh.pki.dir.path().join("b-certs");
    let before = serial(&mesh.b);
    let probe = mesh.pki.issue("probe", &id("probe"));
    assert_eq!(
        served_serial(mesh.b.addrs.inbound, &b_certs.join("bundle.pem"), &probe).await,
        before
    );

    // What `usher ca issue` (or cert-manager) does: new files in place.
    mesh.pki.issue("b-certs", &id("b"));
    let changed = wait_until(Duration::from_secs(10), || async {
        serial(&mesh.b) != before
    })
    .await;
    assert!(changed, "the new files were not picked up");
    let after = serial(&mesh.b);
    assert_eq!(
        served_serial(mesh.b.addrs.inbound, &b_certs.join("bundle.pem"), &probe).await,
        after,
        "the new certificate is served"
    );
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );
}

#[tokio::test]
async fn a_ca_mode_sidecar_is_not_ready_until_it_enrols() {
    let tmp = tempfile::tempdir().unwrap();
    let app = Backend::start().await;
    // A CA that is not running yet: the token and bundle exist, the server not.
    let ca_dir = tmp.path().join("ca");
    usher_ca::init_ca(&ca_dir, TD, false).unwrap();
    let addr = free_port().await;
    let placeholder = Ca {
        dir: ca_dir.clone(),
        server: None,
        addr,
    };
    // The admin port is chosen here so that it can be probed while start-up
    // is still waiting for the CA.
    let admin = free_port().await;
    let path = ca_config(&tmp.path().join("b"), &placeholder, "b", app.addr, &[]);
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "admin:\n  listen: 127.0.0.1:0",
        &format!("admin:\n  listen: {admin}"),
    );
    std::fs::write(&path, yaml).unwrap();
    let config = usher_proxy::Config::load(&path).unwrap();
    let starting = tokio::spawn(async move { Sidecar::start(&config).await.map(|s| s.addrs) });
    let waiting = wait_until(Duration::from_secs(10), || async {
        let Ok(tcp) = tokio::net::TcpStream::connect(admin).await else {
            return false;
        };
        drop(tcp);
        let (status, body) = get1(admin, "admin", "/ready").await;
        status == 503 && body.contains("no workload certificate yet")
    })
    .await;
    assert!(waiting, "not ready while the CA is unreachable");
    assert!(!starting.is_finished());
    let _ca = Ca::serve(&ca_dir, addr, Duration::from_secs(60)).await;
    let addrs = tokio::time::timeout(Duration::from_secs(20), starting)
        .await
        .expect("enrolled once the CA answered")
        .unwrap()
        .unwrap();
    assert_eq!(addrs.admin, admin);
    assert_status(
        get1(addrs.admin, "admin", "/ready").await,
        200,
        "GET /ready (Host: admin)",
    );
}

/// A loopback address nothing listens on yet, for a server started later.
/// Its port is below the kernel's ephemeral range, so that neither a socket
/// bound to port 0 nor an outgoing connection of another test in this
/// process takes it in the meantime.
async fn free_port() -> SocketAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let range = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap();
    let low: u32 = range.split_whitespace().next().unwrap().parse().unwrap();
    let first = low.saturating_sub(10_000).max(1024);
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed) + std::process::id();
        let port = u16::try_from(first + n % (low - first)).unwrap();
        if let Ok(l) = tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            return l.local_addr().unwrap();
        }
    }
    panic!("no free port below {low}");
}

/// A Kubernetes-shaped projected service account token for
/// `system:serviceaccount:test:<sa>`, signed by `key` (kid "k1"), valid
/// from `iat` for ten minutes.
fn projected_token(key: &jsonwebtoken::EncodingKey, sa: &str, iat: u64) -> String {
    let claims = serde_json::json!({
        "aud": ["usher-ca"],
        "exp": iat + 600,
        "iat": iat,
        "nbf": iat,
        "iss": "https://kubernetes.default.svc.cluster.local",
        "kubernetes.io": {
            "namespace": "test",
            "pod": {"name": format!("{sa}-0"), "uid": "6f1c0a52-1d2e-4b7f-9a3c-5e8d7f6a4b21"},
            "serviceaccount": {"name": sa, "uid": "0c9b8a7d-6e5f-4a3b-2c1d-0e9f8a7b6c5d"}
        },
        "sub": format!("system:serviceaccount:test:{sa}")
    });
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
    header.typ = None;
    header.kid = Some("k1".to_owned());
    jsonwebtoken::encode(&header, &claims, key).unwrap()
}

#[tokio::test]
async fn a_sidecar_enrols_with_a_projected_token_read_afresh_at_each_attempt() {
    let tmp = tempfile::tempdir().unwrap();
    let app = Backend::start().await;
    // The "cluster": an RSA signing key and its JWKS.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256).unwrap();
    let key = jsonwebtoken::EncodingKey::from_rsa_pem(pair.serialize_pem().as_bytes()).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::RS256).unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();

    let ca_dir = tmp.path().join("ca");
    usher_ca::init_ca(&ca_dir, TD, false).unwrap();
    let mut config = CaServerConfig::new(ca_dir.clone(), "127.0.0.1:0".parse().unwrap());
    config.cert_ttl = Duration::from_secs(60);
    config.k8s = Some(usher_ca::K8sAuthConfig::new(
        Some("https://kubernetes.default.svc.cluster.local".to_owned()),
        Some(usher_ca::JwksSource::File(jwks)),
    ));
    let server = CaServer::start(config).await.unwrap();
    let ca = Ca {
        dir: ca_dir,
        addr: server.addr,
        server: Some(server),
    };
    let path = ca_config(&tmp.path().join("b"), &ca, "b", app.addr, &[]);
    // The kubelet's token, not yet rotated: expired an hour ago.
    let token_file = tmp.path().join("b").join("token");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    std::fs::write(&token_file, projected_token(&key, "b", now - 3600)).unwrap();
    let config = usher_proxy::Config::load(&path).unwrap();
    let starting = tokio::spawn(async move { Sidecar::start(&config).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!starting.is_finished(), "enrolled with an expired token");
    // The kubelet rotates the token: the next attempt reads the new one.
    std::fs::write(
        &token_file,
        format!("{}\n", projected_token(&key, "b", now)),
    )
    .unwrap();
    let b = tokio::time::timeout(Duration::from_secs(20), starting)
        .await
        .expect("enrolled once the token was rotated")
        .unwrap()
        .unwrap();
    assert_status(
        get1(b.addrs.admin, "admin", "/ready").await,
        200,
        "GET /ready (Host: admin)",
    );
    let log = usher_ca::read_issued_log(&ca.dir).unwrap();
    assert!(
        log.iter().any(
            |e| e.how == usher_ca::IssuedHow::ServiceAccount && e.spiffe_id == id("b").as_str()
        ),
        "{log:?}"
    );
}
