//! How `usher ca serve` logs a flood of failed enrolments: the first
//! failure of an address's window in full, reaching the limit once, then
//! one summary line. A real server on 127.0.0.1 port 0, real TLS.
//!
//! The log is captured with a subscriber of the test's own thread (the
//! server's tasks run there too, on a current-thread runtime). This test
//! has a binary of its own: `tracing` caches per call site whether anyone
//! listens, and a site first reached by another test's thread at the
//! moment this subscriber is installed could be cached as unheard.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls_pki_types::pem::PemObject as _;
use usher_ca::{init_ca, make_key_and_csr, CaServer, CaServerConfig, SpiffeId};

#[path = "common/capture.rs"]
mod capture;
use capture::{Capture, Fields};

/// `POST /v1/enrol` with `body` from the loopback address `source`;
/// returns the status.
async fn enrol_from(source: IpAddr, addr: SocketAddr, bundle_pem: &str, body: Vec<u8>) -> u16 {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(source, 0)).unwrap();
    let tcp = socket.connect(addr).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(conn);
    let req = http::Request::post("/v1/enrol")
        .header("host", "localhost")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    resp.into_body().collect().await.unwrap();
    status
}

#[tokio::test]
async fn failed_enrolments_are_logged_once_then_summed_up() {
    let capture = Capture::default();
    let _log = tracing::subscriber::set_default(capture.clone());
    let dir = tempfile::tempdir().unwrap();
    init_ca(dir.path(), "example.org", false).unwrap();
    let mut cfg = CaServerConfig::new(dir.path(), "127.0.0.1:0".parse().unwrap());
    cfg.enrol_failure_limit = 3;
    cfg.enrol_failure_window = Duration::from_secs(600);
    let server = CaServer::start(cfg).await.unwrap();
    let bundle = std::fs::read_to_string(dir.path().join("ca.pem")).unwrap();
    let id = SpiffeId::parse("spiffe://example.org/ns/shop/sa/web").unwrap();
    let (_, csr) = make_key_and_csr(&id).unwrap();
    let guess = serde_json::json!({ "token": format!("usher-bt-{}", "cd".repeat(32)), "csr": csr })
        .to_string()
        .into_bytes();
    let guesser: IpAddr = "127.0.0.2".parse().unwrap();

    // Three failures (the limit), then five enrolments answered 429.
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(enrol_from(guesser, server.addr, &bundle, guess.clone()).await);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429, 429, 429]);
    // A lone failure from another address is logged, with no summary.
    let other: IpAddr = "127.0.0.3".parse().unwrap();
    assert_eq!(
        enrol_from(other, server.addr, &bundle, guess.clone()).await,
        401
    );

    // Summaries of windows still open are written at shutdown.
    server.shutdown().await;
    let from = |ip: &str| {
        let ip = ip.to_owned();
        move |e: &Fields| e["peer"] == ip || e["peer"].starts_with(&format!("{ip}:"))
    };
    let refused = capture.messages("CA request refused");
    let guesser_lines: Vec<_> = refused.iter().filter(|e| from("127.0.0.2")(e)).collect();
    assert_eq!(
        guesser_lines.len(),
        1,
        "only the first failure in full: {refused:?}"
    );
    assert_eq!(guesser_lines[0]["status"], "401");
    assert_eq!(
        refused.iter().filter(|e| from("127.0.0.3")(e)).count(),
        1,
        "{refused:?}"
    );
    let limit = capture.messages("CA enrolment failures from this address reached the limit");
    assert_eq!(limit.len(), 1, "{limit:?}");
    assert_eq!(limit[0]["peer"], "127.0.0.2");
    let retry: u64 = limit[0]["retry_after_secs"].parse().unwrap();
    assert!((590..=600).contains(&retry), "{retry}");
    let summary = capture.messages("CA enrolment failures from this address in the last window");
    assert_eq!(summary.len(), 1, "the lone failure needs none: {summary:?}");
    assert_eq!(summary[0]["peer"], "127.0.0.2");
    assert_eq!(summary[0]["failures"], "3");
    assert_eq!(summary[0]["not_logged"], "2");
    assert_eq!(summary[0]["rate_limited"], "5");
    for e in refused.iter().chain(&limit).chain(&summary) {
        assert_eq!(e["target"], "usher::audit", "{e:?}");
        assert_eq!(e.get("token"), None, "{e:?}");
    }
}
