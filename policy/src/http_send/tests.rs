//! `http.send` against a local hyper server on an ephemeral port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::json;

use super::*;
use crate::{Limits, Policy, PolicySource, RegoVersion, DEFAULT_QUERY};

/// A local server; `hits` counts the requests it received.
struct Server {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

async fn handle(
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Infallible> {
    let json = |v: Json| {
        http::Response::builder()
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(v.to_string())))
            .unwrap()
    };
    Ok(match req.uri().path() {
        "/allow" => json(json!({"allowed": true})),
        "/deny" => json(json!({"allowed": false})),
        "/max-age" => {
            let mut r = json(json!({"allowed": true}));
            r.headers_mut()
                .insert("cache-control", "max-age=60".parse().unwrap());
            r
        }
        "/no-store" => {
            let mut r = json(json!({"allowed": true}));
            r.headers_mut()
                .insert("cache-control", "no-store".parse().unwrap());
            r
        }
        "/slow" => std::future::pending().await,
        "/big" => http::Response::new(Full::new(Bytes::from(vec![b'a'; 2 * MAX_RESPONSE_BYTES]))),
        "/redirect" => http::Response::builder()
            .status(302)
            .header("location", "/allow")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/loop" => http::Response::builder()
            .status(302)
            .header("location", "/loop")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/echo" => {
            let method = req.method().to_string();
            let header = req
                .headers()
                .get("x-test")
                .map(|v| v.to_str().unwrap().to_string());
            let ctype = req
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap().to_string());
            let body = req.into_body().collect().await.unwrap().to_bytes();
            json(json!({
                "method": method,
                "x_test": header,
                "content_type": ctype,
                "body": String::from_utf8_lossy(&body),
            }))
        }
        _ => http::Response::builder()
            .status(404)
            .body(Full::new(Bytes::from("not here")))
            .unwrap(),
    })
}

fn server() -> Server {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let counter = counter.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        counter.fetch_add(1, Ordering::SeqCst);
                        handle(req)
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
    });
    Server { addr, hits }
}

/// A port nothing listens on.
fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn policy(rego: &str, query: &str) -> Policy {
    let source = PolicySource {
        policies: vec![("authz.rego".into(), rego.into())],
        data: vec![],
    };
    Policy::compile(
        &source,
        query,
        RegoVersion::V1,
        Limits {
            eval_timeout: Duration::from_secs(20),
        },
    )
    .unwrap()
}

/// A policy allowing when `http.send(REQUEST).body.allowed` is true.
fn allow_if(request: &str) -> Policy {
    let rego = r#"package usher.authz

default allow := false

allow if {
    resp := http.send(REQUEST)
    resp.body.allowed == true
}
"#
    .replace("REQUEST", request);
    policy(&rego, DEFAULT_QUERY)
}

/// The value of `http.send(request)`, through a policy.
fn send_value(request: &str) -> Json {
    let rego = "package t\n\nr := http.send(REQUEST)\n".replace("REQUEST", request);
    policy(&rego, "data.t.r")
        .evaluate_json(&json!({}))
        .unwrap_or(Json::Null)
}

#[test]
fn allows_on_the_servers_answer() {
    let s = server();
    let p = allow_if(&format!(
        r#"{{"method": "get", "url": "{}"}}"#,
        s.url("/allow")
    ));
    assert!(p.decide_json(&json!({})).allowed);
    let p = allow_if(&format!(
        r#"{{"method": "GET", "url": "{}"}}"#,
        s.url("/deny")
    ));
    assert!(!p.decide_json(&json!({})).allowed);
}

#[test]
fn the_response_object() {
    let s = server();
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}"}}"#,
        s.url("/allow")
    ));
    assert_eq!(r["status_code"], json!(200));
    assert_eq!(r["status"], json!("200 OK"));
    assert_eq!(r["headers"]["content-type"], json!(["application/json"]));
    assert_eq!(r["raw_body"], json!(r#"{"allowed":true}"#));
    assert_eq!(r["body"], json!({"allowed": true}));

    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}"}}"#,
        s.url("/nope")
    ));
    assert_eq!(r["status_code"], json!(404));
    assert_eq!(r["status"], json!("404 Not Found"));
    assert_eq!(r["raw_body"], json!("not here"));
    assert_eq!(r["body"], Json::Null);
}

#[test]
fn sends_method_headers_and_bodies() {
    let s = server();
    let r = send_value(&format!(
        r#"{{"method": "post", "url": "{}", "headers": {{"X-Test": "yes"}}, "body": {{"a": [1]}}}}"#,
        s.url("/echo")
    ));
    assert_eq!(
        r["body"],
        json!({"method": "POST", "x_test": "yes", "content_type": "application/json", "body": r#"{"a":[1]}"#})
    );
    let r = send_value(&format!(
        r#"{{"method": "PUT", "url": "{}", "raw_body": "a=b", "headers": {{"content-type": "text/plain"}}}}"#,
        s.url("/echo")
    ));
    assert_eq!(
        r["body"],
        json!({"method": "PUT", "x_test": null, "content_type": "text/plain", "body": "a=b"})
    );
}

#[test]
fn connection_refused_denies() {
    let addr = closed_port();
    let p = allow_if(&format!(
        r#"{{"method": "GET", "url": "http://{addr}/allow"}}"#
    ));
    assert!(!p.decide_json(&json!({})).allowed);
}

#[test]
fn raise_error_false_gives_the_error_object() {
    let addr = closed_port();
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "http://{addr}/allow", "raise_error": false}}"#
    ));
    assert_eq!(r["status_code"], json!(0));
    assert_eq!(r["error"]["code"], json!("eval_http_send_network_error"));
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains(&addr.to_string()), "{message}");
}

#[test]
fn slow_server_times_out_and_denies() {
    let s = server();
    let p = allow_if(&format!(
        r#"{{"method": "GET", "url": "{}", "timeout": "200ms"}}"#,
        s.url("/slow")
    ));
    let start = Instant::now();
    assert!(!p.decide_json(&json!({})).allowed);
    let took = start.elapsed();
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(took < Duration::from_millis(1000), "{took:?}");

    let start = Instant::now();
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}", "timeout": 100000000, "raise_error": false}}"#,
        s.url("/slow")
    ));
    assert!(start.elapsed() < Duration::from_millis(500));
    assert_eq!(r["error"]["code"], json!("eval_http_send_network_error"));
    assert!(r["error"]["message"]
        .as_str()
        .unwrap()
        .contains("timed out"));
}

#[test]
fn oversized_response_denies() {
    let s = server();
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}", "raise_error": false}}"#,
        s.url("/big")
    ));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("larger than"),
        "{r}"
    );
    let rego = format!(
        "package usher.authz\n\ndefault allow := false\n\nallow if http.send({{\"method\": \"GET\", \"url\": \"{}\"}}).status_code == 200\n",
        s.url("/big")
    );
    assert!(!policy(&rego, DEFAULT_QUERY).decide_json(&json!({})).allowed);
}

#[test]
fn force_cache_skips_the_server() {
    let s = server();
    let p = allow_if(&format!(
        r#"{{"method": "GET", "url": "{}", "force_cache": true, "force_cache_duration_seconds": 60}}"#,
        s.url("/allow")
    ));
    // Compiling sent nothing.
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
    assert!(p.decide_json(&json!({})).allowed);
    assert!(p.decide_json(&json!({})).allowed);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    // Without caching, every evaluation asks.
    let p = allow_if(&format!(
        r#"{{"method": "GET", "url": "{}"}}"#,
        s.url("/allow")
    ));
    assert!(p.decide_json(&json!({})).allowed);
    assert!(p.decide_json(&json!({})).allowed);
    assert_eq!(s.hits.load(Ordering::SeqCst), 3);
}

#[test]
fn cache_honours_cache_control() {
    let s = server();
    let req = |path: &str| {
        format!(
            r#"{{"method": "GET", "url": "{}", "cache": true}}"#,
            s.url(path)
        )
    };
    let p = allow_if(&req("/max-age"));
    assert!(p.decide_json(&json!({})).allowed);
    assert!(p.decide_json(&json!({})).allowed);
    assert_eq!(s.hits.load(Ordering::SeqCst), 1);
    let p = allow_if(&req("/no-store"));
    assert!(p.decide_json(&json!({})).allowed);
    assert!(p.decide_json(&json!({})).allowed);
    assert_eq!(s.hits.load(Ordering::SeqCst), 3);
    // No max-age: not kept.
    let p = allow_if(&req("/allow"));
    assert!(p.decide_json(&json!({})).allowed);
    assert!(p.decide_json(&json!({})).allowed);
    assert_eq!(s.hits.load(Ordering::SeqCst), 5);
}

#[test]
fn redirects_only_when_enabled() {
    let s = server();
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}"}}"#,
        s.url("/redirect")
    ));
    assert_eq!(r["status_code"], json!(302));
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}", "enable_redirect": true}}"#,
        s.url("/redirect")
    ));
    assert_eq!(r["body"], json!({"allowed": true}));
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "{}", "enable_redirect": true, "raise_error": false}}"#,
        s.url("/loop")
    ));
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("redirects"),
        "{r}"
    );
}

#[test]
fn refused_requests_are_undefined() {
    let s = server();
    for req in [
        r#"{"method": "GET", "url": "file:///etc/passwd", "raise_error": false}"#.to_string(),
        r#"{"method": "GET", "url": "ftp://example.com/", "raise_error": false}"#.to_string(),
        r#"{"url": "http://127.0.0.1/"}"#.to_string(),
        format!(
            r#"{{"method": "GET", "url": "{}", "tls_insecure_skip_verify": true, "raise_error": false}}"#,
            s.url("/allow")
        ),
        format!(
            r#"{{"method": "GET", "url": "{}", "force_cache": true}}"#,
            s.url("/allow")
        ),
        format!(
            r#"{{"method": "GET", "url": "{}", "unix_socket": "/x"}}"#,
            s.url("/allow")
        ),
    ] {
        assert_eq!(send_value(&req), Json::Null, "{req}");
    }
    assert_eq!(s.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn go_durations() {
    assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(go_duration("2s"), Some(Duration::from_secs(2)));
    assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
    assert_eq!(go_duration("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(go_duration("0"), Some(Duration::ZERO));
    assert_eq!(go_duration("5"), None);
    assert_eq!(go_duration("5x"), None);
    assert_eq!(go_duration(""), None);
    // Capped.
    let r = Request::parse(&json!({"method": "GET", "url": "http://a/", "timeout": "1h"}));
    assert_eq!(r.unwrap().timeout, MAX_TIMEOUT);
    let r = Request::parse(&json!({"method": "GET", "url": "http://a/"}));
    assert_eq!(r.unwrap().timeout, DEFAULT_TIMEOUT);
}

#[test]
fn cache_keys_ignore_cache_fields() {
    let a = Request::parse(&json!({"method": "GET", "url": "http://a/", "cache": true})).unwrap();
    let b = Request::parse(
        &json!({"method": "GET", "url": "http://a/", "force_cache": true, "force_cache_duration_seconds": 5}),
    )
    .unwrap();
    assert_eq!(a.key, b.key);
    let c = Request::parse(&json!({"method": "GET", "url": "http://b/", "cache": true})).unwrap();
    assert_ne!(a.key, c.key);
}

#[test]
fn the_cache_is_bounded() {
    // A cache of its own: the process-wide one serves the other tests.
    let mut cache = BTreeMap::new();
    insert(
        &mut cache,
        "expired".into(),
        json!(0),
        Duration::from_nanos(1),
    );
    for i in 0..MAX_CACHE_ENTRIES + 10 {
        insert(
            &mut cache,
            format!("k{i}"),
            json!(i),
            Duration::from_secs(60),
        );
    }
    assert_eq!(cache.len(), MAX_CACHE_ENTRIES);
    // The expired entry went first, then the oldest.
    assert!(!cache.contains_key("expired"));
    assert!(!cache.contains_key("k0"));
    assert!(cache.contains_key(&format!("k{}", MAX_CACHE_ENTRIES + 9)));
}

#[test]
fn https_checks_the_server_certificate() {
    // A TLS server whose self-signed certificate no public root vouches for.
    let key = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()]).unwrap();
    let cert = rustls_pki_types::CertificateDer::from(key.cert.der().to_vec());
    let private =
        rustls_pki_types::PrivateKeyDer::try_from(key.signing_key.serialize_der()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], private)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let counter = handshakes.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                counter.fetch_add(1, Ordering::SeqCst);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(stream).await;
                });
            }
        });
    });
    let r = send_value(&format!(
        r#"{{"method": "GET", "url": "https://{addr}/", "raise_error": false}}"#
    ));
    assert_eq!(
        r["error"]["code"],
        json!("eval_http_send_network_error"),
        "{r}"
    );
    let message = r["error"]["message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert_eq!(handshakes.load(Ordering::SeqCst), 1);
}

/// A call never waits longer than the policy's evaluation budget, whatever
/// timeout the request asks for: a slow server cannot hold the sidecar's
/// threads longer than a decision may take.
#[test]
fn calls_are_capped_by_the_evaluation_timeout() {
    let s = server();
    let rego = format!(
        "package usher.authz\n\ndefault allow := false\n\nallow if http.send({{\"method\": \"GET\", \"url\": \"{}\", \"timeout\": \"20s\"}}).body.allowed\n",
        s.url("/slow")
    );
    let source = PolicySource {
        policies: vec![("authz.rego".into(), rego)],
        data: vec![],
    };
    let p = Policy::compile(
        &source,
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits {
            eval_timeout: Duration::from_millis(300),
        },
    )
    .unwrap();
    let start = Instant::now();
    let d = p.decide_json(&json!({}));
    let took = start.elapsed();
    assert!(!d.allowed);
    assert!(
        took < Duration::from_secs(3),
        "waited {took:?} for a 300 ms budget"
    );
}
