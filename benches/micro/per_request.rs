//! Micro-benchmarks of the pieces every request or connection pays for.
//! Run: `cargo bench -p usher-benches` (results in target/criterion).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use http::header::{HeaderMap, HeaderValue};
use http::Request;
use usher_ca::{init_ca, spiffe_id_from_cert_der, IssueRequest, SpiffeId};
use usher_proxy::config::{RouteConfig, TlsConfig};
use usher_proxy::headers::{authority, host_of, strip_hop_by_hop, strip_spoofable, XFCC};
use usher_proxy::identity::{crypto_provider, CertStore};
use usher_proxy::inbound::InboundConn;
use usher_proxy::outbound::RouteTable;

fn leaf_der() -> (Vec<u8>, SpiffeId) {
    let dir = tempfile::tempdir().unwrap();
    let ca = init_ca(dir.path(), "mesh.bench", false).unwrap();
    let id = SpiffeId::parse("spiffe://mesh.bench/ns/shop/sa/orders").unwrap();
    let issued = ca.issue(&IssueRequest::new(id.clone())).unwrap();
    let der =
        rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap();
    (der.to_vec(), id)
}

use rustls::pki_types::pem::PemObject;

fn typical_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "payments:8080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("content-length", "42"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("authorization", "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln"),
        ("connection", "keep-alive"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://evil;URI=spiffe://evil/admin",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

fn spiffe(c: &mut Criterion) {
    let (der, id) = leaf_der();
    c.bench_function("spiffe_id_from_cert_der (per connection)", |b| {
        b.iter(|| {
            let got = spiffe_id_from_cert_der(black_box(&der)).unwrap();
            debug_assert_eq!(got, id);
            got
        })
    });
    let own = SpiffeId::parse("spiffe://mesh.bench/ns/shop/sa/payments").unwrap();
    let telemetry = usher_proxy::telemetry::Telemetry::start(
        &usher_proxy::config::TelemetryConfig::default(),
        "bench",
        own.as_str(),
    )
    .unwrap();
    c.bench_function("InboundConn::new: xfcc value (per connection)", |b| {
        b.iter(|| {
            InboundConn::new(
                black_box(&own),
                Some(id.clone()),
                "127.0.0.1:5000".parse().unwrap(),
                &telemetry,
                tokio_util::sync::CancellationToken::new(),
            )
        })
    });
}

fn headers(c: &mut Criterion) {
    let template = typical_headers();
    let xfcc = HeaderValue::from_static(
        "By=spiffe://mesh.bench/ns/shop/sa/payments;URI=spiffe://mesh.bench/ns/shop/sa/orders",
    );
    c.bench_function(
        "header rewrite: hop-by-hop + spoofable + xfcc (per request)",
        |b| {
            b.iter_batched_ref(
                || template.clone(),
                |h| {
                    strip_hop_by_hop(h, false);
                    strip_spoofable(h);
                    h.insert(XFCC.clone(), xfcc.clone());
                },
                criterion::BatchSize::SmallInput,
            )
        },
    );
    // The inbound request rules that replace the rewrite above (and more):
    // hop-by-hop, upgrade, one host, protected headers in every spelling,
    // path normalisation.
    let sanitizer = usher_proxy::sanitize::Sanitizer::default();
    for (name, path) in [
        (
            "sanitize: typical request, path already normal (per request)",
            "/orders/42?expand=items",
        ),
        (
            "sanitize: path to normalise (%2e%2e, //, %41) (per request)",
            "/orders/%2e%2e//admin/%41/x?q=1",
        ),
    ] {
        let mut template = Request::get(path).body(()).unwrap();
        *template.headers_mut() = typical_headers();
        c.bench_function(name, |b| {
            b.iter_batched_ref(
                || {
                    let mut r = Request::get(template.uri().clone()).body(()).unwrap();
                    *r.headers_mut() = template.headers().clone();
                    r
                },
                |r| {
                    sanitizer.apply(r).unwrap();
                    r.headers_mut().insert(XFCC.clone(), xfcc.clone());
                },
                criterion::BatchSize::SmallInput,
            )
        });
    }
    let req = Request::get("/orders/42")
        .header("host", "payments:8080")
        .body(())
        .unwrap();
    c.bench_function("authority + host_of (per request)", |b| {
        b.iter(|| host_of(authority(black_box(&req)).unwrap()).len())
    });
}

fn routes(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let ca = init_ca(dir.path(), "mesh.bench", false).unwrap();
    let id = SpiffeId::parse("spiffe://mesh.bench/ns/shop/sa/orders").unwrap();
    let issued = ca.issue(&IssueRequest::new(id)).unwrap();
    let chain = vec![
        rustls::pki_types::CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap(),
    ];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
    let tls = TlsConfig::default();
    let provider = crypto_provider(&tls);
    let certified = rustls::sign::CertifiedKey::from_der(chain, key, &provider).unwrap();
    let certs = CertStore::new(Arc::new(certified));
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(ca.cert_pem().as_bytes()).unwrap())
        .unwrap();
    let roots = usher_proxy::identity::TrustStore::new(Arc::new(roots), provider.clone()).unwrap();
    let configs: Vec<RouteConfig> = (0..100)
        .map(|i| RouteConfig {
            host: format!("svc-{i}.shop.svc"),
            address: format!("127.0.0.1:{}", 20000 + i),
            identity: SpiffeId::parse(&format!("spiffe://mesh.bench/ns/shop/sa/svc-{i}")).unwrap(),
        })
        .collect();
    let table = RouteTable::build(&configs, &certs, &roots, &tls, &provider).unwrap();
    c.bench_function("route lookup among 100 routes (per request)", |b| {
        b.iter(|| table.get(black_box("svc-57.shop.svc")).is_some())
    });
    c.bench_function("route lookup, mixed-case host (per request)", |b| {
        b.iter(|| table.get(black_box("Svc-57.Shop.svc")).is_some())
    });
}

/// Trace context on the request path (tracing on): read the caller's
/// `traceparent`, write ours; and counting a finished request in the
/// connection's metric handles (always on).
fn telemetry(c: &mut Criterion) {
    use usher_proxy::telemetry::propagation::{extract, inject};
    use usher_proxy::telemetry::{ConnMetrics, Direction, Metrics};
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "traceparent",
        http::HeaderValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    );
    c.bench_function(
        "trace context: extract + inject traceparent (per request)",
        |b| {
            b.iter(|| {
                let mut h = headers.clone();
                let incoming = extract(black_box(&h));
                let parent = incoming.parent.clone().unwrap();
                inject(&mut h, &parent, &incoming);
                h
            })
        },
    );
    let metrics = Metrics::new(1000);
    let conn = ConnMetrics::new(metrics.clone(), Direction::Inbound);
    let peer = metrics.peer_label("spiffe://mesh.bench/ns/shop/sa/orders");
    c.bench_function("request metrics: count + histogram (per request)", |b| {
        b.iter(|| conn.record(black_box(&peer), 200, std::time::Duration::from_micros(450)))
    });
}

criterion_group!(benches, spiffe, headers, routes, telemetry);
criterion_main!(benches);
