//! The `usher` binary as operators run it: separate processes, signals,
//! memory measured from /proc.

use crate::support;

use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::{get1, h1};
use crate::support::process::UsherProcess;
use crate::support::{assert_status, id, write_config, Pki, RouteSpec};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;

/// b in front of `app`, a routing host "b" to b; both real processes.
fn start_pair(pki: &Pki, app: std::net::SocketAddr, extra: &str) -> (UsherProcess, UsherProcess) {
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = UsherProcess::start(&write_config(
        &pki.dir.path().join("b"),
        &b_certs,
        app,
        &[],
        extra,
    ));
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.inbound,
        identity: id("b"),
    }];
    let a = UsherProcess::start(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app,
        &routes,
        extra,
    ));
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_request_then_exits_zero() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let (a, mut b) = start_pair(&pki, app.addr, "shutdown:\n  drain_timeout: 20s\n");

    let outbound = a.outbound;
    let in_flight = tokio::spawn(async move { get1(outbound, "b", "/hold").await });
    // Wait until the request has reached the app, then ask b to stop.
    let arrived = tokio::time::timeout(Duration::from_secs(10), app.held.acquire()).await;
    arrived.expect("request reached the app").unwrap().forget();
    b.signal("TERM");

    // While draining, b turns not-ready and stops accepting new connections.
    let admin = b.admin;
    let not_ready = support::wait_until(Duration::from_secs(10), || async move {
        get1(admin, "admin", "/ready").await.0 == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    assert!(not_ready, "/ready turns false during the drain");
    let inbound = b.inbound;
    let refused = support::wait_until(Duration::from_secs(10), || async move {
        tokio::net::TcpStream::connect(inbound).await.is_err()
    })
    .await;
    assert!(refused, "b stops accepting new connections while draining");
    assert!(
        b.child.try_wait().unwrap().is_none(),
        "b waits for the in-flight request"
    );

    app.release.notify_waiters();
    let (status, body) = in_flight.await.unwrap();
    assert_eq!(
        status,
        StatusCode::OK,
        "the in-flight request completes: {body}"
    );
    assert_eq!(body, "released");

    let exit =
        tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(10)).map(|s| s.code()))
            .await
            .unwrap();
    assert_eq!(exit, Some(Some(0)), "usher exits 0 after draining");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabyte_bodies_stream_with_bounded_memory() {
    const SIZE: u64 = 50 * 1024 * 1024;
    let app = Backend::start().await;
    let pki = Pki::new();
    let (a, b) = start_pair(&pki, app.addr, "");

    // Upload: 50 MB generated chunk by chunk, counted by the app.
    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let n = SIZE as usize / chunk.len();
    let stream = futures_util::stream::iter(
        (0..n).map(move |_| Ok::<_, std::io::Error>(Frame::data(chunk.clone()))),
    );
    let mut send = h1::<StreamBody<_>>(a.outbound).await;
    let req = Request::post("/count")
        .header("host", "b")
        .body(StreamBody::new(stream))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let counted = resp.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(String::from_utf8_lossy(&counted), SIZE.to_string());

    // Download: 50 MB from the app, counted here frame by frame.
    let mut send = h1::<http_body_util::Empty<Bytes>>(a.outbound).await;
    let req = Request::get("/download")
        .header("host", "b")
        .body(Default::default())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let mut body = resp.into_body();
    let mut got = 0u64;
    while let Some(frame) = body.frame().await {
        got += frame
            .unwrap()
            .data_ref()
            .map(|d| d.len() as u64)
            .unwrap_or(0);
    }
    assert_eq!(got, SIZE);

    for (name, p) in [("a", &a), ("b", &b)] {
        let peak_mib = p.peak_rss_kib() / 1024;
        eprintln!("peak RSS of sidecar {name}: {peak_mib} MiB");
        assert!(
            peak_mib < 40,
            "sidecar {name} peaked at {peak_mib} MiB for a 50 MiB body: it buffered"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_with_nothing_in_flight_exits_zero_at_once() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let certs = pki.issue("b-certs", &id("b"));
    let mut b = UsherProcess::start(&write_config(
        &pki.dir.path().join("b"),
        &certs,
        app.addr,
        &[],
        "shutdown:\n  drain_timeout: 60s\n",
    ));
    b.signal("INT");
    // Well inside the 60 s drain timeout: an idle sidecar does not wait for it.
    let exit =
        tokio::task::spawn_blocking(move || b.wait_exit(Duration::from_secs(20)).map(|s| s.code()))
            .await
            .unwrap();
    assert_eq!(exit, Some(Some(0)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_the_policy_and_decisions_are_logged_as_json() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let b_dir = pki.dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    let deny_all = "package usher.authz\n\ndefault allow := false\n";
    let allow_all = "package usher.authz\n\nallow := true\n";
    std::fs::write(b_dir.join("authz.rego"), deny_all).unwrap();
    // File watching off: only SIGHUP can bring the new policy in.
    let policy = "policy:\n  files: [authz.rego]\n  watch: false\n";
    let b_certs = pki.issue("b-certs", &id("b"));
    let mut b = UsherProcess::start(&write_config(&b_dir, &b_certs, app.addr, &[], policy));
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.inbound,
        identity: id("b"),
    }];
    let a = UsherProcess::start(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app.addr,
        &routes,
        "",
    ));

    assert_eq!(
        get1(a.outbound, "b", "/headers?q=1").await.0,
        StatusCode::FORBIDDEN
    );
    // The denial is logged as one JSON line with who, what and why.
    let line = loop {
        let line = b
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("a decision log line");
        let v: serde_json::Value = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(_) => continue,
        };
        if v["message"] == "decision" {
            break v;
        }
    };
    assert_eq!(line["target"], "usher::audit");
    assert_eq!(line["decision"], "deny");
    assert_eq!(line["principal"], id("a").as_str());
    assert_eq!(line["method"], "GET");
    assert_eq!(line["path"], "/headers?q=1");
    assert_eq!(line["mode"], "enforce");
    assert!(line["reason"].is_string(), "{line}");
    assert!(line["revision"].is_string(), "{line}");
    assert!(line["eval_us"].is_u64(), "{line}");

    support::replace_file(&b_dir.join("authz.rego"), allow_all);
    b.signal("HUP");
    let out = a.outbound;
    let allowed = support::wait_until(Duration::from_secs(10), || async move {
        get1(out, "b", "/headers").await.0 == StatusCode::OK
    })
    .await;
    assert!(
        allowed,
        "SIGHUP brought the new policy in without a restart"
    );
    assert!(
        b.child.try_wait().unwrap().is_none(),
        "the same process, still running"
    );
}

/// Sends `method path` with `body` to the admin listener.
async fn admin_call(
    admin: std::net::SocketAddr,
    method: &str,
    path: &str,
    body: &str,
) -> (StatusCode, String) {
    let mut send = h1::<http_body_util::Full<Bytes>>(admin).await;
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "admin")
        .body(http_body_util::Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    support::client::read(send.send_request(req).await.unwrap()).await
}

/// The next stdout JSON line of `p` that `pick` accepts, skipping others.
fn next_line(
    p: &UsherProcess,
    mut pick: impl FnMut(&serde_json::Value) -> bool,
) -> serde_json::Value {
    loop {
        let line = p
            .lines
            .recv_timeout(Duration::from_secs(10))
            .expect("an expected log line within 10 s");
        if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
            if pick(&v) {
                return v;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_and_the_log_filter_changed_at_run_time() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = UsherProcess::start(&write_config(
        &pki.dir.path().join("b"),
        &b_certs,
        app.addr,
        &[],
        "telemetry:\n  access_log: false\n",
    ));
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.inbound,
        identity: id("b"),
    }];
    let a = UsherProcess::start(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app.addr,
        &routes,
        "",
    ));

    let (status, body) = get1(a.outbound, "b", "/headers?z=1").await;
    assert_eq!(status, StatusCode::OK);
    let line = next_line(&a, |v| v["target"] == "usher::access");
    assert_eq!(line["level"], "INFO");
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(line["direction"], "outbound");
    assert_eq!(line["method"], "GET");
    assert_eq!(line["authority"], "b");
    assert_eq!(line["path"], "/headers?z=1");
    assert_eq!(line["status"], 200);
    assert!(line["duration_ms"].as_f64().unwrap() > 0.0, "{line}");
    assert_eq!(line["bytes"], body.len() as u64);
    assert_eq!(line["peer"], id("b").as_str());
    assert_eq!(line["trace_id"], "", "no tracing configured");
    assert_eq!(line["span_id"], "");

    // The log filter, read and changed through the admin listener (audit
    // records are always kept: the filter says so).
    assert_eq!(
        admin_call(b.admin, "GET", "/logging", "").await,
        (StatusCode::OK, "usher::audit=info,info\n".into())
    );
    assert_eq!(
        admin_call(b.admin, "PUT", "/logging", "debug").await.0,
        StatusCode::OK
    );
    // b has the access log off: nothing from it before the change is logged.
    let changed = next_line(&b, |v| {
        assert_ne!(v["target"], "usher::access", "access_log: false, yet {v}");
        v["message"] == "log filter changed"
    });
    assert_eq!(changed["filter"], "usher::audit=info,debug");
    assert_eq!(
        admin_call(b.admin, "GET", "/logging", "").await,
        (StatusCode::OK, "usher::audit=info,debug\n".into())
    );
    // Debug lines now appear (a new peer connection is logged at debug).
    assert_status(
        get1(a.outbound, "b", "/headers").await,
        StatusCode::OK,
        "GET /headers (Host: b)",
    );
    let debug = next_line(&b, |v| v["level"] == "DEBUG");
    assert!(debug["message"].is_string());

    let (status, msg) = admin_call(b.admin, "PUT", "/logging", "info,[").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{msg}");
    assert!(msg.contains("invalid log filter"), "{msg}");
    assert_eq!(
        admin_call(b.admin, "POST", "/logging?level=warn", "").await,
        (StatusCode::OK, "usher::audit=info,warn\n".into())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_records_are_logged_even_with_the_log_level_off() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let b_dir = pki.dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::write(
        b_dir.join("authz.rego"),
        "package usher.authz\n\ndefault allow := false\n",
    )
    .unwrap();
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = UsherProcess::start(&write_config(
        &b_dir,
        &b_certs,
        app.addr,
        &[],
        "policy:\n  files: [authz.rego]\ntelemetry:\n  access_log: false\n",
    ));
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.inbound,
        identity: id("b"),
    }];
    let a = UsherProcess::start(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app.addr,
        &routes,
        "",
    ));

    // Anything on the local host may turn the logs off...
    assert_eq!(
        admin_call(b.admin, "POST", "/logging?level=off", "").await,
        (StatusCode::OK, "usher::audit=info,off\n".into())
    );
    assert_eq!(
        admin_call(b.admin, "GET", "/logging", "").await,
        (StatusCode::OK, "usher::audit=info,off\n".into())
    );
    // The change itself is an audit record; after it, b writes nothing else.
    let changed = next_line(&b, |v| v["message"] == "log filter changed");
    assert_eq!(changed["target"], "usher::audit");
    let only_audit = |v: &serde_json::Value| {
        assert_eq!(v["target"], "usher::audit", "with the level off: {v}");
    };
    assert_eq!(changed["filter"], "usher::audit=info,off");

    // ...but not the policy's denials...
    assert_eq!(
        get1(a.outbound, "b", "/secret").await.0,
        StatusCode::FORBIDDEN
    );
    let denial = next_line(&b, |v| {
        only_audit(v);
        v["message"] == "decision"
    });
    assert_eq!(denial["level"], "WARN");
    assert_eq!(denial["decision"], "deny");
    assert_eq!(denial["principal"], id("a").as_str());
    assert_eq!(denial["path"], "/secret");

    // ...nor refused TLS handshakes (a client without a certificate).
    let no_cert =
        support::client::tls_client(&b_certs.join("bundle.pem"), None, id("b"), b"http/1.1");
    assert!(support::client::tls_get(b.inbound, no_cert, "/")
        .await
        .is_err());
    let refused = next_line(&b, |v| {
        only_audit(v);
        v["message"] == "TLS handshake refused"
    });
    assert_eq!(refused["level"], "WARN");
    assert_eq!(refused["reason"], "no_client_cert");

    // Nor can directives aimed at the audit target itself hide them.
    assert_eq!(
        admin_call(b.admin, "PUT", "/logging", "off,usher::audit=off").await,
        (StatusCode::OK, "usher::audit=info,off\n".into())
    );
    assert_eq!(
        get1(a.outbound, "b", "/again").await.0,
        StatusCode::FORBIDDEN
    );
    let denial = next_line(&b, |v| {
        only_audit(v);
        v["message"] == "decision"
    });
    assert_eq!(denial["path"], "/again");
}

/// `GET /identity`: the serial of the certificate in use.
async fn serial_in_use(admin: std::net::SocketAddr) -> String {
    let body = assert_status(
        get1(admin, "admin", "/identity").await,
        StatusCode::OK,
        "GET /identity (Host: admin)",
    );
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    v["certificate"]["serial"].as_str().unwrap().to_owned()
}

fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_mode_keeps_its_identity_when_the_new_key_file_is_not_protected() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = UsherProcess::start(&write_config(
        &pki.dir.path().join("b"),
        &b_certs,
        app.addr,
        &[],
        "telemetry:\n  access_log: false\n",
    ));
    let before = serial_in_use(b.admin).await;

    // A renewed set whose key file anyone may read, put in place by
    // renames as cert-manager or SPIRE would.
    let staged = pki.issue("staged", &id("b"));
    chmod(&staged.join("key.pem"), 0o644);
    for f in ["key.pem", "cert.pem", "bundle.pem"] {
        std::fs::rename(staged.join(f), b_certs.join(f)).unwrap();
    }
    let key = b_certs.join("key.pem");
    let refused = next_line(&b, |v| {
        v["level"] == "ERROR" && v["error"].as_str().is_some_and(|e| e.contains("chmod 600"))
    });
    let error = refused["error"].as_str().unwrap();
    assert!(
        error.contains(key.to_str().unwrap()),
        "names the file: {error}"
    );
    assert!(error.contains("mode 0644"), "says the mode: {error}");
    assert_eq!(
        serial_in_use(b.admin).await,
        before,
        "the current certificate stays in force"
    );

    // Fixed: the next change installs the new set.
    chmod(&key, 0o600);
    let renewed = next_line(&b, |v| v["message"] == "certificate renewed");
    let after = serial_in_use(b.admin).await;
    assert_ne!(after, before);
    assert_eq!(renewed["serial"], after.as_str());
}

/// A key in its old spelling is logged once, as a warning, at start.
#[test]
fn a_moved_config_key_is_logged_once_at_start() {
    let pki = Pki::new();
    let certs = pki.issue("certs", &id("b"));
    let config = support::write_config_with(
        &pki.dir.path().join("b"),
        &certs,
        "127.0.0.1:9".parse().unwrap(),
        &[],
        "  idle_timeout: 30s\n",
        "",
    );
    let usher = UsherProcess::start(&config);
    let warnings: Vec<serde_json::Value> = usher
        .startup
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["key"] == "inbound.idle_timeout")
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", usher.startup);
    assert_eq!(warnings[0]["level"], "WARN");
    let message = warnings[0]["message"].as_str().unwrap();
    assert!(message.contains("server.idle_timeout"), "{message}");
}

/// `usher inject` hands the app's probes to usher in USHER_APP_PROBES; the
/// admin listener makes them on loopback: the app's status for a recorded
/// probe, 404 for anything else, and a start refused when the variable is
/// not what inject writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_apps_probes_are_made_through_the_admin_listener() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let certs = pki.issue("b-certs", &id("b"));
    let config = write_config(&pki.dir.path().join("b"), &certs, app.addr, &[], "");
    let probes = format!(
        r#"{{"app/readinessProbe": {{"port": {p}, "path": "/headers"}}, "app/startupProbe": {{"port": {p}, "path": "/missing"}}}}"#,
        p = app.addr.port()
    );
    let b = UsherProcess::start_with_env(&config, &[("USHER_APP_PROBES", &probes)]);
    let body = assert_status(
        get1(b.admin, "admin", "/app-probe/app/readinessProbe").await,
        StatusCode::OK,
        "GET /app-probe/app/readinessProbe (Host: admin)",
    );
    assert_eq!(body, "app probe: 200\n");
    // The app's own answer comes back, whatever it is.
    let (status, body) = get1(b.admin, "admin", "/app-probe/app/startupProbe").await;
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::NOT_FOUND, "app probe: 404\n")
    );
    for unknown in [
        "/app-probe/app/livenessProbe",
        "/app-probe/../admin",
        "/app-probe/",
    ] {
        assert_eq!(
            get1(b.admin, "admin", unknown).await.0,
            StatusCode::NOT_FOUND,
            "{unknown}"
        );
    }
    drop(b);

    let out = support::process::usher()
        .args(["run", "--config"])
        .arg(&config)
        .env(
            "USHER_APP_PROBES",
            r#"{"app/x": {"port": 8080, "path": "http://elsewhere/"}}"#,
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("USHER_APP_PROBES") && stderr.contains("absolute path"),
        "{stderr}"
    );
}
