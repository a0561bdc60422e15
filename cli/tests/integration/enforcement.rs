//! Attacks on the controls, as a compromised mesh peer (it holds a valid
//! mesh certificate) or an app made to send arbitrary requests would make
//! them: raw HTTP/1.1 bytes and HTTP/2 frames written by the test, over
//! real mTLS to the inbound listener or plain TCP to the outbound one, and
//! an app that echoes exactly the request head it received.
//!
//! The policy under attack allows `frontend` (and `a`) on `/orders/` only.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::tls_client;
use crate::support::raw::{header_names, header_value, read_response, EchoApp, MeshPeer};
use crate::support::{assert_status, id, start_sidecar, write_config_with, Mesh, Pki};
use http::StatusCode;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const POLICY: &str = "policy:\n  files: [authz.rego]\n";

fn policy() -> String {
    format!(
        r#"package usher.authz

default allow := false

callers := {{"{frontend}", "{a}"}}

allow if {{
    callers[input.attributes.source.principal]
    startswith(input.attributes.request.http.path, "/orders/")
    not input.attributes.request.http.headers.upgrade == "forbidden-proto"
}}
"#,
        frontend = id("frontend"),
        a = id("a"),
    )
}

/// A lone sidecar b in front of `app` (with `inbound_extra` in its
/// `inbound:` section, `extra` appended, the test policy file beside it),
/// and a mesh peer calling it.
async fn lone_b(
    app: SocketAddr,
    inbound_extra: &str,
    extra: &str,
) -> (Pki, usher_proxy::Sidecar, MeshPeer) {
    let pki = Pki::new();
    let b_dir = pki.dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::write(b_dir.join("authz.rego"), policy()).unwrap();
    let certs = pki.issue("b-certs", &id("b"));
    let b = start_sidecar(&write_config_with(
        &b_dir,
        &certs,
        app,
        &[],
        inbound_extra,
        extra,
    ))
    .await;
    let peer = MeshPeer::new(&pki, "frontend", b.addrs.inbound);
    (pki, b, peer)
}

async fn guarded_mesh(app: SocketAddr, b_extra: &str) -> Mesh {
    let extra = format!("{POLICY}{b_extra}");
    Mesh::start_with(app, &[("authz.rego", &policy())], &extra).await
}

#[tokio::test]
async fn h2c_upgrade_is_stripped_on_the_inbound_listener() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let (status, body) = peer
        .h1("GET /orders/1 HTTP/1.1\r\nHost: b\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        .await;
    assert_eq!(
        status, 200,
        "served as plain HTTP/1.1, not switched: {body}"
    );
    let names = header_names(&body);
    for gone in ["upgrade", "http2-settings", "connection"] {
        assert!(
            !names.contains(&gone.to_string()),
            "{gone} reached the app: {body}"
        );
    }
}

#[tokio::test]
async fn h2c_upgrade_from_the_app_is_stripped_on_the_outbound_listener() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let mut tcp = TcpStream::connect(mesh.a.addrs.outbound).await.unwrap();
    tcp.write_all(b"GET /orders/2 HTTP/1.1\r\nHost: b\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\nConnection: Upgrade, HTTP2-Settings\r\n\r\n")
        .await
        .unwrap();
    let body = assert_status(
        read_response(&mut tcp).await,
        200,
        "an h2c upgrade offer from the app",
    );
    assert!(header_value(&body, "upgrade").is_none(), "{body}");
    assert!(header_value(&body, "http2-settings").is_none(), "{body}");
}

#[tokio::test]
async fn upgrades_that_are_not_configured_are_refused_and_the_policy_sees_the_others() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let body = assert_status(
        peer.h1(
            "GET /orders/1 HTTP/1.1\r\nHost: b\r\nUpgrade: tunnel/1\r\nConnection: upgrade\r\n\r\n",
        )
        .await,
        403,
        "GET /orders/1",
    );
    assert_eq!(
        body,
        "usher: the requested protocol upgrade is not allowed\n"
    );
    assert_status(
        peer.h1("CONNECT admin:443 HTTP/1.1\r\nHost: admin:443\r\n\r\n")
            .await,
        403,
        "CONNECT is refused",
    );
    assert!(
        app.heads().is_empty(),
        "nothing reached the app: {:?}",
        app.heads()
    );
}

#[tokio::test]
async fn the_policy_can_deny_an_allowed_upgrade_by_its_header() {
    // `forbidden-proto` is allowed by config; the policy denies it.
    let pki_app = EchoApp::start().await;
    let (_pki, _b, peer) = lone_b(
        pki_app.addr,
        "  upgrades: [websocket, forbidden-proto]\n",
        POLICY,
    )
    .await;
    let body = assert_status(peer
        .h1("GET /orders/1 HTTP/1.1\r\nHost: b\r\nUpgrade: forbidden-proto\r\nConnection: upgrade\r\n\r\n")
        .await, 403, "GET /orders/1");
    assert_eq!(body, "usher: request denied by policy\n");
    assert!(pki_app.heads().is_empty());
}

#[tokio::test]
async fn connection_header_cannot_remove_the_verified_identity() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let body = assert_status(peer
        .h1("GET /orders/1 HTTP/1.1\r\nHost: b\r\nConnection: x-forwarded-client-cert, close\r\n\r\n")
        .await, 200, "GET /orders/1");
    assert_eq!(
        header_value(&body, "x-forwarded-client-cert"),
        Some(format!("By={};URI={}", id("b"), id("frontend")).as_str()),
        "{body}"
    );
}

#[tokio::test]
async fn identity_and_forwarded_headers_are_removed_in_every_spelling() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let forged = format!("By={};URI={}", id("b"), id("admin"));
    let body = assert_status(peer
        .h1(&format!(
            "GET /orders/1 HTTP/1.1\r\nHost: b\r\nx_forwarded_client_cert: {forged}\r\nX_Forwarded_Client_Cert: {forged}\r\nx-forwarded-client-cert: {forged}\r\nX-Forwarded-For: 10.0.0.1\r\nx_forwarded_for: 10.0.0.1\r\nX-Real-IP: 10.0.0.1\r\nx-forwarded-proto: http\r\nForwarded: for=10.0.0.1\r\nConnection: close\r\n\r\n"
        ))
        .await, 200, "forged identity and forwarded headers");
    let names = header_names(&body);
    assert_eq!(
        names
            .iter()
            .filter(|n| n.replace('_', "-") == "x-forwarded-client-cert")
            .count(),
        1,
        "only usher's own: {body}"
    );
    assert!(!body.contains(&format!("URI={}", id("admin"))), "{body}");
    for gone in [
        "x-forwarded-for",
        "x_forwarded_for",
        "x-real-ip",
        "x-forwarded-proto",
        "forwarded",
    ] {
        assert!(
            !names.contains(&gone.to_string()),
            "{gone} reached the app: {body}"
        );
    }
}

#[tokio::test]
async fn forwarded_headers_pass_when_trusted() {
    let app = EchoApp::start().await;
    let (_pki, _b, peer) = lone_b(app.addr, "  trust_forwarded_headers: true\n", "").await;
    let body = assert_status(peer
        .h1("GET /x HTTP/1.1\r\nHost: b\r\nX-Forwarded-For: 10.0.0.1\r\nx_forwarded_client_cert: forged\r\nConnection: close\r\n\r\n")
        .await, 200, "GET /x");
    assert_eq!(header_value(&body, "x-forwarded-for"), Some("10.0.0.1"));
    assert!(
        header_value(&body, "x_forwarded_client_cert").is_none(),
        "{body}"
    );
}

#[tokio::test]
async fn identity_headers_in_every_spelling_over_http2() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let req = http::Request::get("https://b/headers/../headers/x")
        .header("x_forwarded_client_cert", format!("URI={}", id("admin")))
        .header("x-forwarded-client-cert", format!("URI={}", id("admin")))
        .header("x_real_ip", "10.0.0.1")
        .body(())
        .unwrap();
    let body = assert_status(
        peer.h2(req).await.unwrap(),
        StatusCode::OK,
        "identity headers over HTTP/2",
    );
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen[":path"], "/headers/x", "{body}");
    assert_eq!(
        seen["x-forwarded-client-cert"],
        format!("By={};URI={}", id("b"), id("frontend"))
    );
    assert!(seen.get("x_forwarded_client_cert").is_none(), "{body}");
    assert!(seen.get("x_real_ip").is_none(), "{body}");
}

#[tokio::test]
async fn paths_are_normalised_before_the_policy_and_the_app_gets_that_path() {
    let app = EchoApp::start().await;
    let mesh = guarded_mesh(app.addr, "").await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    // Each walk-around attempt: denied by the policy (it sees /admin...)
    // or refused outright (400).
    let attacks = [
        ("/orders/../admin/stats", 403),
        ("/orders/%2e%2e/admin/stats", 403),
        ("/orders/%2E%2E/admin/stats", 403),
        ("/orders/./../admin", 403),
        ("/orders//../../admin", 403),
        ("/orders/..;/admin", 400),
        ("/orders/..\\admin", 400),
        ("/orders/%2F../admin", 400),
        ("/orders/%5c../admin", 400),
        ("/orders/%00", 400),
        ("/orders/%zz", 400),
    ];
    for (path, want) in attacks {
        assert_status(
            peer.h1(&format!(
                "GET {path} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n"
            ))
            .await,
            want,
            path,
        );
    }
    assert!(
        app.heads().is_empty(),
        "no attack reached the app: {:?}",
        app.heads()
    );

    // Allowed after normalisation: the app gets the normal form.
    let body = assert_status(
        peer.h1("GET /orders/./x/../%31?q=/../a HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .await,
        200,
        "GET /orders/./x/../%31?q=/../a",
    );
    assert!(
        body.starts_with("GET /orders/1?q=/../a HTTP/1.1\r\n"),
        "{body}"
    );
}

#[tokio::test]
async fn route_rate_limits_see_the_normalised_path() {
    let app = EchoApp::start().await;
    let mesh = Mesh::start_with(
        app.addr,
        &[],
        "rate_limit:\n  routes:\n    - {path_prefix: /reports/, requests_per_second: 1, burst: 1}\n",
    )
    .await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    let get = |p: &str| format!("GET {p} HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_status(
        peer.h1(&get("/reports/x")).await,
        200,
        "GET /reports/x, the first in the bucket",
    );
    for other in ["//reports/x", "/%72eports/x", "/x/../reports/x"] {
        assert_status(
            peer.h1(&get(other)).await,
            429,
            format_args!("{other} shares the /reports/ bucket"),
        );
    }
}

#[tokio::test]
async fn path_normalisation_can_be_relaxed_for_apps_that_need_raw_paths() {
    let app = EchoApp::start().await;
    let (_pki, _b, peer) = lone_b(
        app.addr,
        "  path_normalization:\n    merge_slashes: false\n    escaped_slashes: keep\n",
        "",
    )
    .await;
    let body = assert_status(
        peer.h1("GET //files/a%2fb/../c HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .await,
        200,
        "GET //files/a%2fb/../c",
    );
    assert!(body.starts_with("GET //files/c HTTP/1.1\r\n"), "{body}");
}

#[tokio::test]
async fn the_policy_and_the_app_see_one_and_the_same_host() {
    let app = EchoApp::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    // Absolute form: the target's authority replaces Host.
    let body = assert_status(peer
        .h1("GET http://public.orders/x HTTP/1.1\r\nHost: admin.orders\r\nConnection: close\r\n\r\n")
        .await, 200, "GET http://public.orders/x");
    let hosts: Vec<_> = header_names(&body)
        .into_iter()
        .filter(|n| n == "host")
        .collect();
    assert_eq!(hosts.len(), 1, "{body}");
    assert_eq!(header_value(&body, "host"), Some("public.orders"), "{body}");

    for (raw, why) in [
        ("GET /x HTTP/1.1\r\nHost: public.orders\r\nHost: admin.orders\r\nConnection: close\r\n\r\n", "two Host headers"),
        ("GET /x HTTP/1.1\r\nConnection: close\r\n\r\n", "no Host"),
        ("GET /x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", "a Host that is no host"),
    ] {
        let (status, body) = peer.h1(raw).await;
        assert_eq!(status, 400, "{why}: {body}");
    }

    // HTTP/2: a `host` that differs from :authority.
    let req = http::Request::get("https://public.orders/headers")
        .header("host", "admin.orders")
        .body(())
        .unwrap();
    match peer.h2(req).await {
        Ok((status, body)) => assert_eq!(status, StatusCode::BAD_REQUEST, "{body}"),
        Err(e) => panic!("expected a 400, got {e}"),
    }
    assert_eq!(
        app.heads().len(),
        1,
        "only the absolute-form request reached the app"
    );
}

#[tokio::test]
async fn http2_authority_reaches_the_app_alone() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    // To an HTTP/2 app (gRPC): `:authority` only, no second `host`.
    let req = http::Request::get("https://public.orders/headers")
        .header("host", "public.orders")
        .header("content-type", "application/grpc")
        .body(())
        .unwrap();
    let body = assert_status(
        peer.h2(req).await.unwrap(),
        StatusCode::OK,
        "HTTP/2 to a gRPC app",
    );
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen[":version"], "HTTP/2.0", "{body}");
    assert!(
        seen.get("host").is_none(),
        "no second host beside :authority: {body}"
    );
    // To an HTTP/1.1 app: the authority becomes its one Host.
    let req = http::Request::get("https://public.orders/headers")
        .header("host", "public.orders")
        .body(())
        .unwrap();
    let body = assert_status(
        peer.h2(req).await.unwrap(),
        StatusCode::OK,
        "HTTP/2 to an HTTP/1.1 app",
    );
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen[":version"], "HTTP/1.1", "{body}");
    assert_eq!(seen["host"], "public.orders", "{body}");
}

/// Two CAs whose roots b trusts (a shared bundle, as in federation): a
/// certificate from the other trust domain is refused unless b lists it.
#[tokio::test]
async fn peers_from_other_trust_domains_are_refused_unless_configured() {
    let app = EchoApp::start().await;
    let pki = Pki::new();
    let other = Pki::with_trust_domain("other.td");
    let b_dir = pki.dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let certs = pki.issue("b-certs", &id("b"));
    let mut bundle = std::fs::read_to_string(certs.join("bundle.pem")).unwrap();
    bundle.push_str(&std::fs::read_to_string(other.dir.path().join("ca/ca.pem")).unwrap());
    std::fs::write(certs.join("bundle.pem"), &bundle).unwrap();

    let outsider_id = usher_ca::SpiffeId::parse("spiffe://other.td/ns/test/sa/frontend").unwrap();
    let outsider = other.issue("outsider", &outsider_id);

    for (inbound_extra, accepted) in [
        ("", false),
        ("  trust_domains: [mesh.test, other.td]\n", true),
    ] {
        let dir = b_dir.join(if accepted { "fed" } else { "own" });
        let b = start_sidecar(&write_config_with(
            &dir,
            &certs,
            app.addr,
            &[],
            inbound_extra,
            "",
        ))
        .await;
        // The outsider trusts b's root too (it got b's bundle).
        let config = tls_client(
            &certs.join("bundle.pem"),
            Some(&outsider),
            id("b"),
            b"http/1.1",
        );
        let result = support::client::tls_get(b.addrs.inbound, config, "/x").await;
        match (accepted, result) {
            (false, Ok((status, body))) => panic!("other.td accepted: {status} {body}"),
            (false, Err(_)) => {}
            (true, Ok((status, body))) => assert_eq!(status, StatusCode::OK, "{body}"),
            (true, Err(e)) => panic!("other.td refused although configured: {e}"),
        }
        let metrics = support::client::get1(b.addrs.admin, "admin", "/metrics")
            .await
            .1;
        assert_eq!(
            metrics.contains("reason=\"trust_domain\""),
            !accepted,
            "{metrics}"
        );
    }
}

/// A spliced WebSocket tunnel is still a connection: it counts under
/// `max_connections`, and the idle timeout closes it.
#[tokio::test]
async fn tunnels_count_as_connections_and_close_when_idle() {
    use tokio::io::AsyncReadExt;
    let app = Backend::start().await;
    let (_pki, _b, peer) = lone_b(app.addr, "  max_connections: 2\n  idle_timeout: 1s\n", "").await;
    let mut tunnels = Vec::new();
    for _ in 0..2 {
        let mut tls = peer.tls_h1().await;
        tls.write_all(b"GET /upgrade HTTP/1.1\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
            .await
            .unwrap();
        let (status, _) = read_response(&mut tls).await;
        assert_eq!(status, 101);
        tls.write_all(b"ping").await.unwrap();
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await.unwrap();
        assert_eq!(&buf, b"ping");
        tunnels.push(tls);
    }
    // Both slots are held by tunnels: a third connection is refused.
    let third = peer
        .try_h1("GET /headers HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await;
    assert!(third.is_err(), "a third connection was served: {third:?}");
    // Idle tunnels are closed by the idle timeout (1 s), then a new
    // connection is served.
    for mut tls in tunnels {
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut buf)).await;
        assert!(
            matches!(read, Ok(Ok(0)) | Ok(Err(_))),
            "tunnel still open: {read:?}"
        );
    }
    let served = support::wait_until(Duration::from_secs(10), || async {
        peer.try_h1("GET /headers HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
            .await
            .is_ok_and(|(status, _)| status == 200)
    })
    .await;
    assert!(served, "a connection is served once the tunnels are gone");
}

/// The connection pools are keyed by the destination, never by a host the
/// caller makes up: many authorities, one connection.
#[tokio::test]
async fn made_up_hosts_do_not_open_a_connection_each() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    for i in 0..20 {
        let req = http::Request::get(format!("https://h{i}.example/headers"))
            .body(())
            .unwrap();
        assert_status(
            peer.h2(req).await.unwrap(),
            StatusCode::OK,
            format_args!("HTTP/2 to h{i}.example"),
        );
        assert_status(peer
            .h1(&format!("GET http://abs{i}.example/headers HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
            .await, 200, format_args!("HTTP/1.1 to abs{i}.example"));
    }
    let to_app = app.accepted.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        to_app <= 2,
        "{to_app} connections to the app for 40 requests"
    );

    // Outbound: every port spelling of host b takes route b, one pool.
    let mut tcp = TcpStream::connect(mesh.a.addrs.outbound).await.unwrap();
    for i in 0..20 {
        tcp.write_all(
            format!(
                "GET http://b:{}/headers HTTP/1.1\r\nHost: b\r\n\r\n",
                1000 + i
            )
            .as_bytes(),
        )
        .await
        .unwrap();
        assert_status(
            read_response(&mut tcp).await,
            200,
            format_args!("GET http://b:{}/headers", 1000 + i),
        );
    }
    let metrics = support::client::get1(mesh.b.addrs.admin, "admin", "/metrics")
        .await
        .1;
    let accepted: f64 = metrics
        .lines()
        .find(|l| l.starts_with("usher_connections_total{direction=\"inbound\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{metrics}"));
    // 40 peer connections above, plus a's pool (one or two).
    assert!(
        accepted <= 42.0,
        "{accepted} inbound connections: {metrics}"
    );
}
