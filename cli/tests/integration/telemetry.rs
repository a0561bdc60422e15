//! Traces and metrics through a real sidecar pair: spans arrive at real
//! OTLP receivers (gRPC and HTTP/protobuf), `/metrics` is read with a real
//! Prometheus text parser.

use crate::support;

use std::collections::HashMap;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::{self, read};
use crate::support::otlp::{
    ReceivedSpan, Receiver, KIND_CLIENT, KIND_SERVER, STATUS_ERROR, STATUS_UNSET,
};
use crate::support::{assert_status, id, wait_until, Mesh};

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
    let body = assert_status(
        send(
            mesh.a.addrs.outbound,
            "/headers?x=1",
            &[("user-agent", "orders-app/1.0")],
        )
        .await,
        200,
        "GET /headers?x=1",
    );
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
    assert_status(
        send(
            mesh.a.addrs.outbound,
            "/forbidden/thing",
            &[("traceparent", &format!("00-{app_trace}-{app_span}-01"))],
        )
        .await,
        403,
        "GET /forbidden/thing",
    );
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
    assert_status(
        send(
            mesh.a.addrs.outbound,
            "/anything",
            &[("traceparent", &format!("00-{trace}-2222222222222222-01"))],
        )
        .await,
        503,
        "GET /anything",
    );
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
    assert_status(
        send(
            mesh.a.addrs.outbound,
            "/anything",
            &[("traceparent", &format!("00-{trace}-2222222222222222-01"))],
        )
        .await,
        503,
        "GET /anything",
    );
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
    let body = assert_status(
        send(
            mesh.a.addrs.outbound,
            "/headers",
            &[("b3", &format!("{trace}-a2fb4a1d1a96d312-1"))],
        )
        .await,
        200,
        "GET /headers",
    );
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
    let body = assert_status(
        send(
            mesh.a.addrs.outbound,
            "/headers",
            &[
                ("x-b3-traceid", trace),
                ("x-b3-spanid", "e457b5a2e4d86bd1"),
                ("x-b3-sampled", "1"),
            ],
        )
        .await,
        200,
        "GET /headers",
    );
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
    let body = assert_status(
        send(mesh.a.addrs.outbound, "/headers", &[]).await,
        200,
        "GET /headers",
    );
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
    let body = assert_status(
        send(mesh.a.addrs.outbound, "/headers", &[]).await,
        200,
        "GET /headers",
    );
    let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
    let (unsampled, _, flags) = traceparent(&seen["traceparent"]);
    assert_eq!(flags, "00");

    // A sampled parent from the app is followed despite the ratio.
    let trace = "44444444444444444444444444444444";
    assert_status(
        send(
            mesh.a.addrs.outbound,
            "/headers",
            &[("traceparent", &format!("00-{trace}-5555555555555555-01"))],
        )
        .await,
        200,
        "GET /headers",
    );
    rx.wait_for_trace(trace, 2).await;
    assert!(
        rx.spans().iter().all(|s| s.trace_id != unsampled),
        "the unsampled trace was exported"
    );
}

/// `name{labels} value` lines of one sidecar's `/metrics`, parsed with
/// the prometheus-parse crate.
async fn scrape(admin: std::net::SocketAddr) -> prometheus_parse::Scrape {
    let body = assert_status(
        client::get1(admin, "admin", "/metrics").await,
        200,
        "GET /metrics (Host: admin)",
    );
    parse_text(&body)
}

fn parse_text(body: &str) -> prometheus_parse::Scrape {
    let lines = body.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines).expect("valid Prometheus text")
}

/// `GET /metrics` with an optional `Accept`: (content type, body).
async fn get_metrics(admin: std::net::SocketAddr, accept: Option<&str>) -> (String, String) {
    let mut sender = client::h1::<http_body_util::Empty<bytes::Bytes>>(admin).await;
    let mut req = http::Request::get("/metrics").header("host", "admin");
    if let Some(accept) = accept {
        req = req.header("accept", accept);
    }
    let resp = sender
        .send_request(req.body(http_body_util::Empty::new()).unwrap())
        .await
        .unwrap();
    let content_type = resp.headers()[http::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    let body = assert_status(read(resp).await, 200, "GET /metrics");
    (content_type, body)
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
        assert_status(
            send(mesh.a.addrs.outbound, "/headers", &[]).await,
            200,
            "GET /headers",
        );
    }
    for _ in 0..2 {
        assert_status(
            send(mesh.a.addrs.outbound, "/forbidden", &[]).await,
            403,
            "GET /forbidden",
        );
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
    assert_status(read(resp).await, 404, "a request without a route");
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
    assert_status(
        send(mesh.a.addrs.outbound, "/headers", &[]).await,
        200,
        "GET /headers",
    );
    assert_status(
        send(c.addrs.outbound, "/headers", &[]).await,
        200,
        "GET /headers",
    );
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
        assert_status(
            send(mesh.a.addrs.outbound, "/headers", &[]).await,
            200,
            "GET /headers",
        );
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
    assert_status(
        send(mesh.a.addrs.outbound, "/headers", &[]).await,
        200,
        "GET /headers",
    );
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
            assert_status(
                send(mesh.a.addrs.outbound, "/headers", &[]).await,
                200,
                "GET /headers",
            );
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

/// The `Accept` header Prometheus 2.x scrapes with.
const PROMETHEUS_ACCEPT: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

/// The type prometheus-parse gave each sample named `name`.
fn kinds(scrape: &prometheus_parse::Scrape, name: &str) -> Vec<&'static str> {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(_) => "counter",
            prometheus_parse::Value::Gauge(_) => "gauge",
            prometheus_parse::Value::Histogram(_) => "histogram",
            prometheus_parse::Value::Summary(_) => "summary",
            prometheus_parse::Value::Untyped(_) => "untyped",
        })
        .collect()
}

#[tokio::test]
async fn metrics_are_prometheus_text_or_openmetrics_by_accept() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    for _ in 0..3 {
        assert_status(
            send(mesh.a.addrs.outbound, "/headers", &[]).await,
            200,
            "GET /headers",
        );
    }
    let ok = wait_until(Duration::from_secs(5), || async {
        let s = scrape(mesh.b.addrs.admin).await;
        value(
            &s,
            "usher_request_duration_seconds_count",
            &[("direction", "inbound")],
        ) == 3.0
    })
    .await;
    assert!(ok, "b counted 3 inbound requests");
    let a_id = id("a");
    let inbound_ok = [
        ("direction", "inbound"),
        ("code", "200"),
        ("peer", a_id.as_str()),
        ("classification", "success"),
    ];

    // No Accept (curl, older scrapers), or one asking for it: Prometheus
    // text format 0.0.4, which a 0.0.4 parser reads with every type.
    for accept in [None, Some("text/plain;version=0.0.4")] {
        let (content_type, text) = get_metrics(mesh.b.addrs.admin, accept).await;
        assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
        assert!(
            !text.contains("# UNIT") && !text.contains("# EOF"),
            "{text}"
        );
        assert!(
            !text
                .lines()
                .any(|l| l.starts_with("# TYPE ") && l.ends_with(" info")),
            "{text}"
        );
        assert!(text.contains("\n# TYPE usher_requests_total counter\n"));
        let s = parse_text(&text);
        for (name, kind) in [
            ("usher_requests_total", "counter"),
            ("usher_connections_total", "counter"),
            ("usher_policy_decisions_total", "counter"),
            ("usher_open_connections", "gauge"),
            ("usher_identity_cert_expiry_timestamp_seconds", "gauge"),
            ("usher_build_info", "gauge"),
            ("usher_request_duration_seconds", "histogram"),
            ("process_cpu_seconds_total", "counter"),
            ("process_resident_memory_bytes", "gauge"),
            ("process_virtual_memory_bytes", "gauge"),
            ("process_open_fds", "gauge"),
            ("process_max_fds", "gauge"),
            ("process_start_time_seconds", "gauge"),
        ] {
            let got = kinds(&s, name);
            assert!(
                !got.is_empty() && got.iter().all(|k| *k == kind),
                "{name}: {got:?}, expected {kind}\n{text}"
            );
        }
        assert_eq!(value(&s, "usher_requests_total", &inbound_ok), 3.0);
        assert_eq!(
            value(
                &s,
                "usher_build_info",
                &[("version", env!("CARGO_PKG_VERSION"))]
            ),
            1.0
        );
        assert!(value(&s, "process_resident_memory_bytes", &[]) > 1e6);
    }

    // Prometheus asks for OpenMetrics first and gets it.
    let (content_type, om) = get_metrics(mesh.b.addrs.admin, Some(PROMETHEUS_ACCEPT)).await;
    assert_eq!(
        content_type,
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert!(om.ends_with("\n# EOF\n"), "{om}");
    for line in [
        "# TYPE usher_requests counter",
        "# TYPE usher_build info",
        "# UNIT usher_request_duration_seconds seconds",
        "# TYPE process_cpu_seconds counter",
    ] {
        assert!(om.lines().any(|l| l == line), "no {line:?} in\n{om}");
    }
    let o = parse_text(&om);
    assert_eq!(value(&o, "usher_requests_total", &inbound_ok), 3.0);
    assert_eq!(
        value(
            &o,
            "usher_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );
}

type GrpcBody = http_body_util::combinators::BoxBody<bytes::Bytes, std::convert::Infallible>;

/// A gRPC-style app (h2c). `/test.Echo/<Method>` answers 200,
/// `content-type: application/grpc`, one message, then the trailer
/// `grpc-status` the method names (Ok 0, NotFound 5, Internal 13);
/// `/test.Echo/Unavailable` is a trailers-only response (grpc-status 14
/// in the headers, no body); `/test.Echo/NoStatus` ends without any
/// grpc-status (a broken server). Any other path is a plain-text 200.
async fn grpc_app() -> std::net::SocketAddr {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = |req: http::Request<hyper::body::Incoming>| async move {
        let path = req.uri().path().to_owned();
        let _ = req.into_body().collect().await;
        let text = |s: &'static str| http::HeaderValue::from_static(s);
        let Some(method) = path.strip_prefix("/test.Echo/") else {
            let body = http_body_util::Full::new(bytes::Bytes::from_static(b"plain"));
            return Ok::<_, std::convert::Infallible>(http::Response::new(
                body.map_err(|e| match e {}).boxed(),
            ));
        };
        let status = match method {
            "Ok" => Some("0"),
            "NotFound" => Some("5"),
            "Internal" => Some("13"),
            "Unavailable" => Some("14"),
            "NoStatus" => None,
            _ => Some("12"),
        };
        let mut resp = if method == "Unavailable" {
            let mut resp = http::Response::new(GrpcBody::default());
            resp.headers_mut()
                .insert("grpc-status", text(status.unwrap()));
            resp.headers_mut()
                .insert("grpc-message", text("try again later"));
            resp
        } else {
            let mut frames = vec![Ok(hyper::body::Frame::data(bytes::Bytes::from_static(
                b"\0\0\0\0\x02ok",
            )))];
            if let Some(status) = status {
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", text(status));
                frames.push(Ok(hyper::body::Frame::trailers(trailers)));
            }
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(frames));
            http::Response::new(body.boxed())
        };
        resp.headers_mut()
            .insert("content-type", text("application/grpc"));
        Ok(resp)
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper_util::server::conn::auto::Builder::new(
                    hyper_util::rt::TokioExecutor::new(),
                )
                .serve_connection(
                    hyper_util::rt::TokioIo::new(tcp),
                    hyper::service::service_fn(handle),
                )
                .await;
            });
        }
    });
    addr
}

/// A unary gRPC call over h2c to `outbound` (host b), in trace `trace`:
/// the HTTP status and the grpc-status the client saw.
async fn grpc_call(
    outbound: std::net::SocketAddr,
    method: &str,
    trace: &str,
) -> (http::StatusCode, Option<String>) {
    use http_body_util::BodyExt as _;
    let mut sender = client::h2::<http_body_util::Full<bytes::Bytes>>(outbound).await;
    let req = http::Request::post(format!("http://b/test.Echo/{method}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("traceparent", format!("00-{trace}-2222222222222222-01"))
        .body(http_body_util::Full::new(bytes::Bytes::from_static(
            b"\0\0\0\0\x02hi",
        )))
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    let status = resp.status();
    let in_headers = resp.headers().get("grpc-status").cloned();
    let collected = resp.into_body().collect().await.unwrap();
    let in_trailers = collected
        .trailers()
        .and_then(|t| t.get("grpc-status"))
        .cloned();
    let grpc = in_trailers
        .or(in_headers)
        .map(|v| v.to_str().unwrap().to_owned());
    (status, grpc)
}

#[tokio::test]
async fn grpc_status_is_recorded_in_metrics_and_spans() {
    let app = grpc_app().await;
    let rx = Receiver::grpc().await;
    let mesh = traced_mesh(app, &rx.endpoint(), "grpc").await;

    // (method, grpc-status, trace id, CLIENT error, SERVER error)
    let calls = [
        (
            "Ok",
            Some("0"),
            "a0000000000000000000000000000000",
            None,
            None,
        ),
        (
            "NotFound",
            Some("5"),
            "a5000000000000000000000000000000",
            Some("NOT_FOUND"),
            None,
        ),
        (
            "Internal",
            Some("13"),
            "a1300000000000000000000000000000",
            Some("INTERNAL"),
            Some("INTERNAL"),
        ),
        (
            "Unavailable",
            Some("14"),
            "a1400000000000000000000000000000",
            Some("UNAVAILABLE"),
            Some("UNAVAILABLE"),
        ),
        // No grpc-status at all: a failure on both sides.
        (
            "NoStatus",
            None,
            "ab000000000000000000000000000000",
            Some("grpc_status_missing"),
            Some("grpc_status_missing"),
        ),
    ];
    for (method, code, trace, _, _) in calls {
        let (status, grpc) = grpc_call(mesh.a.addrs.outbound, method, trace).await;
        assert_eq!(status, 200, "{method}");
        assert_eq!(grpc.as_deref(), code, "{method}: the caller's status");
    }
    // A plain HTTP request: no grpc_status label.
    assert_status(
        send(mesh.a.addrs.outbound, "/plain", &[]).await,
        200,
        "GET /plain",
    );

    for (method, code, trace, client_error, server_error) in calls {
        let spans = rx.wait_for_trace(trace, 2).await;
        let client = by_kind(&spans, KIND_CLIENT);
        let server = by_kind(&spans, KIND_SERVER);
        for (span, error) in [(&client, client_error), (&server, server_error)] {
            let side = span.attr("usher.direction").unwrap_or("?");
            assert_eq!(span.attr("http.response.status_code"), Some("200"));
            assert_eq!(span.attr("rpc.grpc.status_code"), code, "{method} {side}");
            assert_eq!(span.attr("rpc.system"), Some("grpc"));
            assert_eq!(span.attr("rpc.service"), Some("test.Echo"));
            assert_eq!(span.attr("rpc.method"), Some(method));
            assert_eq!(span.attr("error.type"), error, "{method} {side}");
            let want = if error.is_some() {
                STATUS_ERROR
            } else {
                STATUS_UNSET
            };
            assert_eq!(span.status_code, want, "{method} {side}: span status");
        }
    }

    // Metrics: recorded when each response body ends.
    let ok = wait_until(Duration::from_secs(5), || async {
        let a = scrape(mesh.a.addrs.admin).await;
        let b = scrape(mesh.b.addrs.admin).await;
        value(&a, "usher_requests_total", &[("direction", "outbound")]) == 6.0
            && value(&b, "usher_requests_total", &[("direction", "inbound")]) == 6.0
    })
    .await;
    assert!(ok, "6 requests counted on each side");
    let a = scrape(mesh.a.addrs.admin).await;
    let b = scrape(mesh.b.addrs.admin).await;
    let (a_id, b_id) = (id("a"), id("b"));
    for (s, direction, peer) in [
        (&a, "outbound", b_id.as_str()),
        (&b, "inbound", a_id.as_str()),
    ] {
        for (_, code, _, _, _) in calls {
            let Some(code) = code else { continue };
            let class = if code == "0" { "success" } else { "failure" };
            assert_eq!(
                value(
                    s,
                    "usher_requests_total",
                    &[
                        ("direction", direction),
                        ("code", "200"),
                        ("peer", peer),
                        ("classification", class),
                        ("grpc_status", code),
                    ],
                ),
                1.0,
                "{direction} grpc_status {code} {class}"
            );
        }
        // Without a grpc-status: the plain request (a success) and the
        // gRPC response that had none (a failure).
        let mut plain: Vec<(String, String)> = s
            .samples
            .iter()
            .filter(|x| x.metric == "usher_requests_total")
            .filter(|x| x.labels.get("grpc_status").is_none())
            .map(|x| {
                let label = |k| x.labels.get(k).unwrap_or("").to_owned();
                (label("code"), label("classification"))
            })
            .collect();
        plain.sort();
        assert_eq!(
            plain,
            [
                ("200".to_owned(), "failure".to_owned()),
                ("200".to_owned(), "success".to_owned())
            ]
        );
        assert_eq!(kinds(s, "usher_requests_total")[0], "counter");
    }
}

/// The opentelemetry_sdk version in the workspace's lock file: what
/// `telemetry.sdk.version` must say.
fn locked_sdk_version() -> String {
    let lock = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock"))
        .expect("Cargo.lock");
    let (_, rest) = lock
        .split_once("name = \"opentelemetry_sdk\"\nversion = \"")
        .expect("opentelemetry_sdk in Cargo.lock");
    rest.split('"').next().unwrap().to_owned()
}

#[tokio::test]
async fn spans_carry_the_attributes_the_http_and_resource_conventions_require() {
    let app = Backend::start().await;
    let rx = Receiver::grpc().await;
    let mesh = traced_mesh(app.addr, &rx.endpoint(), "grpc").await;

    // (Host, target, trace): the default port, then an explicit one; a
    // signed-URL credential in the query.
    let requests = [
        (
            "b",
            "/headers?x=1&sig=s3cr3t",
            "c0000000000000000000000000000001",
        ),
        ("b:8080", "/headers/a", "c0000000000000000000000000000002"),
    ];
    let mut spans = Vec::new();
    for (host, target, trace) in requests {
        let mut sender =
            client::h1::<http_body_util::Empty<bytes::Bytes>>(mesh.a.addrs.outbound).await;
        let req = http::Request::get(target)
            .header("host", host)
            .header("traceparent", format!("00-{trace}-2222222222222222-01"))
            .body(http_body_util::Empty::new())
            .unwrap();
        let body = assert_status(
            read(sender.send_request(req).await.unwrap()).await,
            200,
            format_args!("GET {target} (Host: {host})"),
        );
        let seen: HashMap<String, String> = serde_json::from_str(&body).unwrap();
        assert_eq!(seen[":path"], target, "the app gets the query unredacted");
        let got = rx.wait_for_trace(trace, 2).await;
        spans.push((by_kind(&got, KIND_CLIENT), by_kind(&got, KIND_SERVER)));
    }

    // CLIENT: url.full (absolute, https, query redacted) and server.port
    // always; no server-side attributes.
    let (client, server) = &spans[0];
    assert_eq!(
        client.attr("url.full"),
        Some("https://b/headers?x=1&sig=REDACTED")
    );
    assert_eq!(client.attr("server.address"), Some("b"));
    assert_eq!(client.attr("server.port"), Some("443"), "https default");
    assert_eq!(client.attr("url.query"), None);
    assert_eq!(client.attr("client.address"), None);
    // SERVER: client.address (the caller's IP), url.query; client.port is
    // opt-in in the conventions, so not set.
    assert_eq!(server.attr("client.address"), Some("127.0.0.1"));
    assert_eq!(server.attr("url.query"), Some("x=1&sig=REDACTED"));
    assert_eq!(server.attr("url.path"), Some("/headers"));
    assert_eq!(server.attr("server.address"), Some("b"));
    assert_eq!(server.attr("server.port"), Some("443"));
    assert_eq!(server.attr("url.full"), None);
    assert_eq!(server.attr("client.port"), None);

    let (client, server) = &spans[1];
    assert_eq!(client.attr("url.full"), Some("https://b:8080/headers/a"));
    assert_eq!(client.attr("server.port"), Some("8080"));
    assert_eq!(server.attr("server.port"), Some("8080"));
    assert_eq!(server.attr("url.query"), None, "no query, no url.query");
    assert_eq!(server.attr("client.address"), Some("127.0.0.1"));

    // Resource attributes, on every span of both sidecars.
    let sdk_version = locked_sdk_version();
    let mut instance_ids = HashMap::new();
    for span in spans.iter().flat_map(|(c, s)| [c, s]) {
        let r = &span.resource;
        assert_eq!(r["telemetry.sdk.name"], "opentelemetry");
        assert_eq!(r["telemetry.sdk.language"], "rust");
        assert_eq!(r["telemetry.sdk.version"], sdk_version);
        assert_eq!(r["service.version"], env!("CARGO_PKG_VERSION"));
        let instance = &r["service.instance.id"];
        let groups: Vec<usize> = instance.split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12], "a UUID: {instance}");
        assert_eq!(
            instance_ids
                .entry(span.service.clone())
                .or_insert_with(|| instance.clone()),
            instance,
            "one instance id per sidecar"
        );
    }
    assert_eq!(instance_ids.len(), 2);
    assert_ne!(
        instance_ids["orders"], instance_ids["payments"],
        "each sidecar is its own instance"
    );
}

/// An app that accepts any upgrade and echoes raw bytes after the 101. The
/// 101 names the protocol the request offered, as a server must, except
/// on `/rogue`, where it names one nobody offered. A request without
/// `Upgrade` gets a plain 200.
async fn upgrade_app() -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let handle = |mut req: http::Request<hyper::body::Incoming>| async move {
        let Some(offered) = req.headers().get(http::header::UPGRADE).cloned() else {
            return Ok(http::Response::new(http_body_util::Empty::new()));
        };
        let protocol = if req.uri().path() == "/rogue" {
            http::HeaderValue::from_static("x-rogue-7f3a")
        } else {
            offered
        };
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = hyper_util::rt::TokioIo::new(up);
                let mut buf = [0u8; 256];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut resp = http::Response::new(http_body_util::Empty::<bytes::Bytes>::new());
        *resp.status_mut() = http::StatusCode::SWITCHING_PROTOCOLS;
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("upgrade"),
        );
        resp.headers_mut().insert(http::header::UPGRADE, protocol);
        Ok::<_, std::convert::Infallible>(resp)
    };
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(
                        hyper_util::rt::TokioIo::new(tcp),
                        hyper::service::service_fn(handle),
                    )
                    .with_upgrades()
                    .await;
            });
        }
    });
    addr
}

/// An upgrade through a's outbound listener: the protocol the 101 named,
/// after checking that the tunnel carries bytes both ways.
async fn upgrade(outbound: std::net::SocketAddr, path: &str, offer: &str) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut sender = client::h1::<http_body_util::Empty<bytes::Bytes>>(outbound).await;
    let req = http::Request::get(path)
        .header("host", "b")
        .header("connection", "upgrade")
        .header("upgrade", offer)
        .body(http_body_util::Empty::new())
        .unwrap();
    let resp = sender.send_request(req).await.unwrap();
    assert_eq!(resp.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    let switched = resp.headers()[http::header::UPGRADE]
        .to_str()
        .unwrap()
        .to_owned();
    let mut io = hyper_util::rt::TokioIo::new(hyper::upgrade::on(resp).await.unwrap());
    io.write_all(b"through the tunnel").await.unwrap();
    let mut buf = [0u8; 18];
    io.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"through the tunnel");
    switched
}

#[tokio::test]
async fn upgrades_are_counted_on_both_sidecars() {
    let app = upgrade_app().await;
    let mesh = Mesh::start(app).await;
    // Not an upgrade: not counted.
    assert_status(
        send(mesh.a.addrs.outbound, "/plain", &[]).await,
        200,
        "GET /plain",
    );

    assert_eq!(
        upgrade(mesh.a.addrs.outbound, "/ws", "websocket").await,
        "websocket"
    );
    // Names are case-insensitive: one series.
    assert_eq!(
        upgrade(mesh.a.addrs.outbound, "/ws", "WebSocket").await,
        "WebSocket"
    );
    // An app that switches to a protocol nobody offered cannot make a
    // label of its own.
    assert_eq!(
        upgrade(mesh.a.addrs.outbound, "/rogue", "websocket").await,
        "x-rogue-7f3a"
    );

    let a = scrape(mesh.a.addrs.admin).await;
    let b = scrape(mesh.b.addrs.admin).await;
    for (s, direction) in [(&a, "outbound"), (&b, "inbound")] {
        let count = |protocol| {
            value(
                s,
                "usher_upgrades_total",
                &[("direction", direction), ("protocol", protocol)],
            )
        };
        assert_eq!(count("websocket"), 2.0, "{direction}");
        assert_eq!(count("other"), 1.0, "{direction}");
        let mut protocols: Vec<&str> = s
            .samples
            .iter()
            .filter(|x| x.metric == "usher_upgrades_total")
            .map(|x| x.labels.get("protocol").unwrap())
            .collect();
        protocols.sort();
        assert_eq!(protocols, ["other", "websocket"], "{direction}");
        assert!(kinds(s, "usher_upgrades_total")
            .iter()
            .all(|k| *k == "counter"));
    }
    // Each sidecar counts only its own side.
    assert_eq!(
        value(&a, "usher_upgrades_total", &[("direction", "inbound")]),
        0.0
    );
    assert_eq!(
        value(&b, "usher_upgrades_total", &[("direction", "outbound")]),
        0.0
    );
}

/// A request body that breaks off (a chunk size that is not hex) is the
/// caller's fault: 400, and like every error usher answers, its kind is the
/// span's `error.type` on both sides.
#[tokio::test]
async fn an_unreadable_body_has_an_error_type_on_both_sides() {
    let app = Backend::start().await;
    let rx = Receiver::grpc().await;
    let mesh = traced_mesh(app.addr, &rx.endpoint(), "grpc").await;
    let bad_chunk = |trace: &str| {
        format!(
            "POST /count HTTP/1.1\r\nHost: b\r\ntraceparent: 00-{trace}-2222222222222222-01\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n"
        )
    };

    // From a peer, straight to b's inbound listener.
    let trace = "44444444444444444444444444444444";
    let peer = support::raw::MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    assert_status(
        peer.h1(&bad_chunk(trace)).await,
        400,
        "a malformed chunked body from a peer",
    );
    let spans = rx.wait_for_trace(trace, 1).await;
    let server = by_kind(&spans, KIND_SERVER);
    assert_eq!(server.attr("http.response.status_code"), Some("400"));
    assert_eq!(server.attr("error.type"), Some("body_unreadable"));
    assert_eq!(server.status_code, STATUS_UNSET, "the caller's fault");

    // From the app, to a's outbound listener.
    let trace = "55555555555555555555555555555555";
    let mut tcp = tokio::net::TcpStream::connect(mesh.a.addrs.outbound)
        .await
        .unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut tcp, bad_chunk(trace).as_bytes())
        .await
        .unwrap();
    assert_status(
        support::raw::read_response(&mut tcp).await,
        400,
        "a malformed chunked body from the app",
    );
    // b may have seen (and spanned) the start of the request too.
    let client_span = || {
        rx.spans()
            .into_iter()
            .find(|s| s.trace_id == trace && s.kind == KIND_CLIENT)
    };
    let arrived = wait_until(Duration::from_secs(15), || async {
        client_span().is_some()
    })
    .await;
    assert!(arrived, "the CLIENT span arrives");
    let client = client_span().unwrap();
    assert_eq!(client.attr("error.type"), Some("body_unreadable"));
    assert_eq!(client.status_code, STATUS_ERROR);
}
