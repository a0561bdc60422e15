//! Traces and metrics through a real sidecar pair: spans arrive at real
//! OTLP receivers (gRPC and HTTP/protobuf), `/metrics` is read with a real
//! Prometheus text parser.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use support::backend::Backend;
use support::client::{self, read};
use support::otlp::{ReceivedSpan, Receiver, KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_UNSET};
use support::{id, wait_until, Mesh};

const POLICY: &str = r#"package usher.authz

default allow := false

allow if not startswith(input.attributes.request.http.path, "/forbidden")
"#;

fn otlp(receiver_endpoint: &str, protocol: &str) -> String {
    format!(
        "telemetry:\n  otlp: {{ endpoint: \"{receiver_endpoint}\", protocol: {protocol}, batch_delay: 20ms, timeout: 1s }}\n"
    )
}

/// a = "orders", b = "payments" with a policy; both export to `endpoint`.
async fn traced_mesh(app: std::net::SocketAddr, endpoint: &str, protocol: &str) -> Mesh {
    let a_extra = format!("service: orders\n{}", otlp(endpoint, protocol));
    let b_extra = format!(
        "service: payments\n{}policy:\n  files: [authz.rego]\n",
        otlp(endpoint, protocol)
    );
    Mesh::start_full(app, &[("authz.rego", POLICY)], &a_extra, &b_extra).await
}

async fn send(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (http::StatusCode, String) {
    let mut sender = client::h1::<http_body_util::Empty<bytes::Bytes>>(addr).await;
    let mut req = http::Request::get(path).header("host", "b");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    read(resp).await
}

/// Splits `00-trace-span-flags`.
fn traceparent(v: &str) -> (String, String, String) {
    let parts: Vec<&str> = v.split('-').collect();
    assert_eq!(parts.len(), 4, "{v}");
    (parts[1].into(), parts[2].into(), parts[3].into())
}

fn by_kind(spans: &[ReceivedSpan], kind: i32) -> ReceivedSpan {
    let found: Vec<_> = spans.iter().filter(|s| s.kind == kind).collect();
    assert_eq!(found.len(), 1, "one span of kind {kind}: {spans:#?}");
    found[0].clone()
}

#[tokio::test]
async fn one_trace_across_both_hops_over_otlp_grpc() {
    let app = Backend::start().await;
    let rx = Receiver::grpc().await;
    let mesh = traced_mesh(app.addr, &rx.endpoint(), "grpc").await;

    // 200, no trace context from the app: usher starts the trace.
    let (status, body) = send(
        mesh.a.addrs.outbound,
        "/headers?x=1",
        &[("user-agent", "orders-app/1.0")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let (trace, app_parent, flags) = traceparent(&seen["traceparent"]);
    assert_eq!(flags, "01");
    let spans = rx.wait_for_trace(&trace, 2).await;
    let client = by_kind(&spans, KIND_CLIENT);
    let server = by_kind(&spans, KIND_SERVER);

    assert_eq!(client.parent_span_id, "", "usher started the trace");
    assert_eq!(
        server.parent_span_id, client.span_id,
        "CLIENT is the parent of SERVER"
    );
    assert_eq!(
        app_parent, server.span_id,
        "the app's spans nest under SERVER"
    );

    assert_eq!(client.service, "orders");
    assert_eq!(server.service, "payments");
    assert_eq!(client.resource["usher.spiffe_id"], id("a").as_str());
    assert_eq!(server.resource["usher.spiffe_id"], id("b").as_str());
    for s in [&client, &server] {
        assert_eq!(s.name, "GET");
        assert_eq!(s.attr("http.request.method"), Some("GET"));
        assert_eq!(s.attr("url.path"), Some("/headers"));
        assert_eq!(s.attr("url.scheme"), Some("https"));
        assert_eq!(s.attr("http.response.status_code"), Some("200"));
        assert_eq!(s.attr("server.address"), Some("b"));
        assert_eq!(s.attr("user_agent.original"), Some("orders-app/1.0"));
        assert_eq!(s.attr("network.peer.address"), Some("127.0.0.1"));
        assert_eq!(s.attr("error.type"), None);
        assert_eq!(s.status_code, STATUS_UNSET);
    }
    assert_eq!(client.attr("usher.direction"), Some("outbound"));
    assert_eq!(server.attr("usher.direction"), Some("inbound"));
    assert_eq!(client.attr("usher.peer.spiffe_id"), Some(id("b").as_str()));
    assert_eq!(server.attr("usher.peer.spiffe_id"), Some(id("a").as_str()));
    assert_eq!(server.attr("usher.policy.decision"), Some("allow"));
    assert_eq!(client.attr("usher.policy.decision"), None, "no policy at a");

    // 403 by b's policy, inside a trace the app started: it is continued.
    let app_trace = "0af7651916cd43dd8448eb211c80319c";
    let app_span = "b7ad6b7169203331";
    let (status, _) = send(
        mesh.a.addrs.outbound,
        "/forbidden/thing",
        &[("traceparent", &format!("00-{app_trace}-{app_span}-01"))],
    )
    .await;
    assert_eq!(status, 403);
    let spans = rx.wait_for_trace(app_trace, 2).await;
    let client = by_kind(&spans, KIND_CLIENT);
    let server = by_kind(&spans, KIND_SERVER);
    assert_eq!(
        client.parent_span_id, app_span,
        "the app's span is the parent"
    );
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(server.attr("http.response.status_code"), Some("403"));
    assert_eq!(server.attr("usher.policy.decision"), Some("deny"));
    assert_eq!(
        server.status_code, STATUS_UNSET,
        "a 4xx is not a server error"
    );
    assert_eq!(client.attr("http.response.status_code"), Some("403"));
    assert_eq!(client.status_code, STATUS_ERROR, "a 4xx is a client error");
    assert_eq!(client.attr("error.type"), Some("403"));

    drop(mesh);
}

#[tokio::test]
async fn a_503_is_an_error_on_both_sides() {
    let rx = Receiver::grpc().await;
    let dead_app = Backend::dead_addr().await;
    let mesh = traced_mesh(dead_app, &rx.endpoint(), "grpc").await;
    let trace = "11111111111111111111111111111111";
    let (status, _) = send(
        mesh.a.addrs.outbound,
        "/anything",
        &[("traceparent", &format!("00-{trace}-2222222222222222-01"))],
    )
    .await;
    assert_eq!(status, 503);
    let spans = rx.wait_for_trace(trace, 2).await;
    let server = by_kind(&spans, KIND_SERVER);
    let client = by_kind(&spans, KIND_CLIENT);
    assert_eq!(server.status_code, STATUS_ERROR);
    assert_eq!(server.attr("error.type"), Some("app_unavailable"));
    assert_eq!(server.attr("http.response.status_code"), Some("503"));
    assert_eq!(client.status_code, STATUS_ERROR);
    assert_eq!(client.attr("error.type"), Some("503"));

    // A transport failure on the client side: the peer is gone.
    let trace = "33333333333333333333333333333333";
    let b_inbound = mesh.b.addrs.inbound;
    mesh.b.shutdown(Duration::from_secs(1)).await;
    let _ = b_inbound;
    let (status, _) = send(
        mesh.a.addrs.outbound,
        "/anything",
        &[("traceparent", &format!("00-{trace}-2222222222222222-01"))],
    )
    .await;
    assert_eq!(status, 503);
    let spans = rx.wait_for_trace(trace, 1).await;
    let client = by_kind(&spans, KIND_CLIENT);
    assert_eq!(client.status_code, STATUS_ERROR);
    assert_eq!(client.attr("error.type"), Some("peer_unavailable"));
}

#[tokio::test]
async fn b3_single_and_multi_contexts_are_continued() {
    let app = Backend::start().await;
    let rx = Receiver::grpc().await;
    let mesh = traced_mesh(app.addr, &rx.endpoint(), "grpc").await;

    let trace = "463ac35c9f6413ad48485a3953bb6124";
    let (status, body) = send(
        mesh.a.addrs.outbound,
        "/headers",
        &[("b3", &format!("{trace}-a2fb4a1d1a96d312-1"))],
    )
    .await;
    assert_eq!(status, 200);
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let spans = rx.wait_for_trace(trace, 2).await;
    let client = by_kind(&spans, KIND_CLIENT);
    let server = by_kind(&spans, KIND_SERVER);
    assert_eq!(client.parent_span_id, "a2fb4a1d1a96d312");
    assert_eq!(server.parent_span_id, client.span_id);
    // The app gets both forms, pointing at the SERVER span.
    assert_eq!(seen["b3"], format!("{trace}-{}-1", server.span_id));
    assert_eq!(
        seen["traceparent"],
        format!("00-{trace}-{}-01", server.span_id)
    );

    let trace = "80f198ee56343ba864fe8b2a57d3eff7";
    let (status, body) = send(
        mesh.a.addrs.outbound,
        "/headers",
        &[
            ("x-b3-traceid", trace),
            ("x-b3-spanid", "e457b5a2e4d86bd1"),
            ("x-b3-sampled", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200);
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let spans = rx.wait_for_trace(trace, 2).await;
    let client = by_kind(&spans, KIND_CLIENT);
    let server = by_kind(&spans, KIND_SERVER);
    assert_eq!(client.parent_span_id, "e457b5a2e4d86bd1");
    assert_eq!(seen["x-b3-traceid"], trace);
    assert_eq!(seen["x-b3-spanid"], server.span_id);
}

#[tokio::test]
async fn one_trace_across_both_hops_over_otlp_http() {
    let app = Backend::start().await;
    let rx = Receiver::http().await;
    let mesh = traced_mesh(app.addr, &rx.endpoint(), "http").await;
    let (status, body) = send(mesh.a.addrs.outbound, "/headers", &[]).await;
    assert_eq!(status, 200);
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let (trace, app_parent, _) = traceparent(&seen["traceparent"]);
    let spans = rx.wait_for_trace(&trace, 2).await;
    let client = by_kind(&spans, KIND_CLIENT);
    let server = by_kind(&spans, KIND_SERVER);
    assert_eq!(server.parent_span_id, client.span_id);
    assert_eq!(app_parent, server.span_id);
    assert_eq!(client.service, "orders");
    assert_eq!(server.attr("http.response.status_code"), Some("200"));
}

#[tokio::test]
async fn sampling_follows_the_ratio_and_the_parent() {
    let app = Backend::start().await;
    let rx = Receiver::grpc().await;
    let a_extra = format!(
        "service: orders\n{}  sampling: 0.0\n",
        otlp(&rx.endpoint(), "grpc")
    );
    let b_extra = format!("service: payments\n{}", otlp(&rx.endpoint(), "grpc"));
    let mesh = Mesh::start_full(app.addr, &[], &a_extra, &b_extra).await;

    // A new trace at ratio 0: not recorded anywhere, but the context still
    // flows (flags 00), so b follows a's decision.
    let (status, body) = send(mesh.a.addrs.outbound, "/headers", &[]).await;
    assert_eq!(status, 200);
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let (unsampled, _, flags) = traceparent(&seen["traceparent"]);
    assert_eq!(flags, "00");

    // A sampled parent from the app is followed despite the ratio.
    let trace = "44444444444444444444444444444444";
    let (status, _) = send(
        mesh.a.addrs.outbound,
        "/headers",
        &[("traceparent", &format!("00-{trace}-5555555555555555-01"))],
    )
    .await;
    assert_eq!(status, 200);
    rx.wait_for_trace(trace, 2).await;
    assert!(
        rx.spans().iter().all(|s| s.trace_id != unsampled),
        "the unsampled trace was exported"
    );
}

/// `name{labels} value` lines of one sidecar's `/metrics`, parsed with
/// the prometheus-parse crate.
async fn scrape(admin: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let (status, body) = client::get1(admin, "admin", "/metrics").await;
    assert_eq!(status, 200);
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

fn value(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    let matching: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
        .collect();
    matching.iter().sum()
}

#[tokio::test]
async fn metrics_count_what_was_sent() {
    let app = Backend::start().await;
    let mesh = Mesh::start_with(
        app.addr,
        &[("authz.rego", POLICY)],
        "policy:\n  files: [authz.rego]\n",
    )
    .await;
    for _ in 0..5 {
        assert_eq!(send(mesh.a.addrs.outbound, "/headers", &[]).await.0, 200);
    }
    for _ in 0..2 {
        assert_eq!(send(mesh.a.addrs.outbound, "/forbidden", &[]).await.0, 403);
    }
    let mut unrouted =
        client::h1::<http_body_util::Empty<bytes::Bytes>>(mesh.a.addrs.outbound).await;
    let resp = unrouted
        .send_request(
            http::Request::get("/x")
                .header("host", "nowhere")
                .body(http_body_util::Empty::new())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(read(resp).await.0, 404);
    // A caller without a client certificate.
    let bundle = mesh.pki.dir.path().join("b-certs/bundle.pem");
    let bare = client::tls_client(&bundle, None, id("b"), b"http/1.1");
    let refused = client::tls_get(mesh.b.addrs.inbound, bare, "/").await;
    assert!(refused.is_err(), "no client cert must be refused");

    let b_id = id("b");
    let a_id = id("a");
    // Durations are recorded when the body ends, just after the client
    // has read it: wait for the last one rather than race it.
    let a_ok = wait_until(Duration::from_secs(5), || async {
        let s = scrape(mesh.a.addrs.admin).await;
        value(
            &s,
            "usher_request_duration_seconds_count",
            &[("direction", "outbound")],
        ) == 8.0
    })
    .await;
    assert!(a_ok, "a counted 8 outbound request durations");
    let a = scrape(mesh.a.addrs.admin).await;
    let out = |code: &str, peer: &str| {
        value(
            &a,
            "usher_requests_total",
            &[("direction", "outbound"), ("code", code), ("peer", peer)],
        )
    };
    assert_eq!(out("200", b_id.as_str()), 5.0);
    assert_eq!(out("403", b_id.as_str()), 2.0);
    assert_eq!(out("404", "unknown"), 1.0);
    assert_eq!(
        value(
            &a,
            "usher_request_duration_seconds_count",
            &[("direction", "outbound"), ("class", "2xx")]
        ),
        5.0
    );
    assert_eq!(
        value(&a, "usher_connections_total", &[("direction", "outbound")]),
        8.0
    );

    let ok = wait_until(Duration::from_secs(5), || async {
        let s = scrape(mesh.b.addrs.admin).await;
        value(
            &s,
            "usher_request_duration_seconds_count",
            &[("direction", "inbound")],
        ) == 7.0
            && value(&s, "usher_tls_handshake_failures_total", &[]) == 1.0
    })
    .await;
    assert!(ok, "b counted 7 inbound request durations");
    let b = scrape(mesh.b.addrs.admin).await;
    let inb = |code: &str| {
        value(
            &b,
            "usher_requests_total",
            &[
                ("direction", "inbound"),
                ("code", code),
                ("peer", a_id.as_str()),
            ],
        )
    };
    assert_eq!(inb("200"), 5.0);
    assert_eq!(inb("403"), 2.0);
    assert_eq!(
        value(
            &b,
            "usher_policy_decisions_total",
            &[("decision", "allow"), ("mode", "enforce")]
        ),
        5.0
    );
    assert_eq!(
        value(
            &b,
            "usher_policy_decisions_total",
            &[("decision", "deny"), ("mode", "enforce")]
        ),
        2.0
    );
    assert_eq!(
        value(
            &b,
            "usher_tls_handshake_failures_total",
            &[("direction", "inbound"), ("reason", "no_client_cert")]
        ),
        1.0
    );
    assert!(value(&b, "usher_open_connections", &[("direction", "inbound")]) >= 1.0);
    let expiry = value(&b, "usher_identity_cert_expiry_timestamp_seconds", &[]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        expiry > now + 23.0 * 3600.0 && expiry < now + 25.0 * 3600.0,
        "{expiry}"
    );
    assert_eq!(
        value(
            &b,
            "usher_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
    assert_eq!(value(&b, "usher_trace_spans_dropped_total", &[]), 0.0);
}

#[tokio::test]
async fn inbound_peer_labels_are_capped() {
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[], "telemetry:\n  max_peer_labels: 1\n").await;
    let c = mesh.client("c").await;
    assert_eq!(send(mesh.a.addrs.outbound, "/headers", &[]).await.0, 200);
    assert_eq!(send(c.addrs.outbound, "/headers", &[]).await.0, 200);
    let ok = wait_until(Duration::from_secs(5), || async {
        let s = scrape(mesh.b.addrs.admin).await;
        value(&s, "usher_requests_total", &[("direction", "inbound")]) == 2.0
    })
    .await;
    assert!(ok);
    let b = scrape(mesh.b.addrs.admin).await;
    let peers: Vec<String> = b
        .samples
        .iter()
        .filter(|s| s.metric == "usher_requests_total")
        .filter_map(|s| s.labels.get("peer").map(str::to_owned))
        .collect();
    assert_eq!(peers.len(), 2, "{peers:?}");
    assert!(peers.contains(&"other".to_string()), "{peers:?}");
}

#[tokio::test]
async fn a_dead_collector_never_fails_requests_and_drops_are_counted() {
    let app = Backend::start().await;
    let dead = Backend::dead_addr().await;
    let endpoint = format!("http://{dead}");
    let mesh = traced_mesh(app.addr, &endpoint, "grpc").await;
    for _ in 0..20 {
        assert_eq!(send(mesh.a.addrs.outbound, "/headers", &[]).await.0, 200);
    }
    let dropped = wait_until(Duration::from_secs(20), || async {
        let s = scrape(mesh.a.addrs.admin).await;
        value(
            &s,
            "usher_trace_spans_dropped_total",
            &[("reason", "export_failed")],
        ) >= 1.0
    })
    .await;
    assert!(dropped, "failed exports are counted as dropped spans");
    // Still serving.
    assert_eq!(send(mesh.a.addrs.outbound, "/headers", &[]).await.0, 200);
}

#[tokio::test]
async fn a_hung_collector_never_holds_requests_and_the_queue_drops() {
    let app = Backend::start().await;
    let hung = Receiver::hanging().await;
    let extra = format!(
        "service: orders\ntelemetry:\n  otlp: {{ endpoint: \"{}\", protocol: http, batch_delay: 10ms, batch_size: 2, queue_size: 4, timeout: 5s }}\n",
        hung.endpoint()
    );
    let mesh = Mesh::start_full(app.addr, &[], &extra, "").await;
    // Guard against a hang, not a latency assertion: 60 requests with the
    // exporter stuck must all be answered.
    let all = tokio::time::timeout(Duration::from_secs(30), async {
        for _ in 0..60 {
            assert_eq!(send(mesh.a.addrs.outbound, "/headers", &[]).await.0, 200);
        }
    })
    .await;
    assert!(all.is_ok(), "requests were held up by a hung collector");
    let s = scrape(mesh.a.addrs.admin).await;
    assert!(
        value(
            &s,
            "usher_trace_spans_dropped_total",
            &[("reason", "queue_full")]
        ) >= 1.0,
        "a full queue drops and counts"
    );
}
