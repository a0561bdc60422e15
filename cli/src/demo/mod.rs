//! `usher demo`: a whole mesh on this machine, explained.
//!
//! It makes a throw-away CA, issues two workload certificates, starts the
//! sample "orders" service, writes a real `usher.yaml` for each of two
//! sidecars and starts them through [`Sidecar::start`] (exactly what
//! `usher run` does), then plays the "frontend" app: plain HTTP to its
//! sidecar on 127.0.0.1. Every step says what happened and why.

mod app;
mod collector;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode, Version};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use usher_ca::{init_ca, write_issued, IssueRequest, SpiffeId};

use crate::{runtime, CliError};
use usher_proxy::config::Config;
use usher_proxy::connect::error_chain;
use usher_proxy::identity::SpiffeServerVerifier;
use usher_proxy::sidecar::Sidecar;

const TD: &str = "demo.mesh";

/// orders' authorization policy (Rego v1, evaluated in-process).
const ORDERS_POLICY: &str = r#"package usher.authz

default allow := false

# Only the frontend may call orders, and only under /orders/.
allow if {
    input.attributes.source.principal == "spiffe://demo.mesh/ns/shop/sa/frontend"
    startswith(input.attributes.request.http.path, "/orders/")
}
"#;

fn demo_err(what: &str) -> impl Fn(String) -> CliError + '_ {
    move |e| CliError::Runtime(format!("demo: {what}: {e}"))
}

pub(crate) fn run() -> Result<(), CliError> {
    let dir = tempfile::Builder::new()
        .prefix("usher-demo-")
        .tempdir()
        .map_err(|e| demo_err("cannot make a temporary folder")(e.to_string()))?;
    let rt = runtime(2)?;
    let result = rt.block_on(play(dir.path()));
    // `dir` is removed here, whatever happened.
    drop(dir);
    result
}

fn id(sa: &str) -> Result<SpiffeId, CliError> {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/shop/sa/{sa}"))
        .map_err(|e| demo_err("SPIFFE ID")(e.to_string()))
}

fn step(n: u32, title: &str) {
    println!("\n{n}. {title}");
}

fn say(line: impl AsRef<str>) {
    println!("   {}", line.as_ref());
}

async fn play(dir: &Path) -> Result<(), CliError> {
    // The demo checks what it shows: a step that does not behave as
    // described makes `usher demo` exit non-zero.
    let mut surprises: Vec<String> = Vec::new();
    let mut expect = |ok: bool, what: &str| {
        if !ok {
            say(format!("UNEXPECTED: {what}"));
            surprises.push(what.to_string());
        }
    };
    println!("usher demo: two services, two sidecars, one throw-away CA, all on 127.0.0.1.");
    println!("Working in {} (removed at the end).", dir.display());

    step(1, "A certificate authority for the trust domain demo.mesh");
    let ca = init_ca(&dir.join("ca"), TD, false)?;
    let (frontend, orders) = (id("frontend")?, id("orders")?);
    for (name, who) in [("frontend", &frontend), ("orders", &orders)] {
        let issued = ca.issue(&IssueRequest::new(who.clone()))?;
        write_issued(&dir.join(name).join("certs"), &issued)?;
        say(format!(
            "issued {who}  (24 h certificate, key made locally, 0600)"
        ));
    }

    step(
        2,
        "The orders service and its sidecar; the frontend's sidecar",
    );
    let app = app::start_orders()
        .await
        .map_err(|e| demo_err("starting the orders service")(e.to_string()))?;
    let collector = collector::Collector::start()
        .await
        .map_err(|e| demo_err("starting the trace collector")(e.to_string()))?;
    // Both sidecars send spans over OTLP/HTTP to the demo's collector.
    let telemetry = format!(
        "telemetry:\n  otlp: {{ endpoint: \"http://{}\", protocol: http, batch_delay: 20ms }}\n  access_log: false\n",
        collector.addr
    );
    say("orders listens on 127.0.0.1 in plain HTTP; it has no TLS code at all.");
    std::fs::write(dir.join("orders").join("authz.rego"), ORDERS_POLICY)
        .map_err(|e| demo_err("writing the policy")(e.to_string()))?;
    let orders_sidecar = start(
        dir,
        "orders",
        app,
        "routes: []",
        &format!("policy:\n  files: [authz.rego]\n{telemetry}"),
    )
    .await?;
    say("orders' sidecar enforces this Rego policy on every request:");
    for line in ORDERS_POLICY.lines().filter(|l| !l.is_empty()) {
        say(format!("    {line}"));
    }
    say(format!(
        "usher(orders): mTLS in on {}, forwards to the orders app",
        orders_sidecar.addrs.inbound
    ));
    let routes = format!(
        "routes:\n    - host: orders\n      address: {b}\n      identity: {orders}\n    \
         - host: payments\n      address: {b}\n      identity: {payments}",
        b = orders_sidecar.addrs.inbound,
        payments = id("payments")?,
    );
    let frontend_sidecar = start(dir, "frontend", app, &routes, &telemetry).await?;
    let out = frontend_sidecar.addrs.outbound;
    say(format!(
        "usher(frontend): plain HTTP in on {out}; route orders -> {orders}"
    ));
    say("                 (and a deliberately wrong route: payments -> the same address, expecting payments' identity)");

    step(3, "frontend calls orders: GET http://orders/orders/42");
    let (status, body) = http1(out, "orders", "/orders/42", None).await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        status == StatusCode::OK && body.ends_with(frontend.as_str()),
        "step 3: 200 naming the frontend",
    );
    say("frontend sent plain HTTP to 127.0.0.1; its sidecar opened mutual TLS to orders' sidecar,");
    say("checked that the peer certificate says spiffe://demo.mesh/ns/shop/sa/orders, and orders'");
    say("sidecar checked frontend's certificate and told the app who called (x-forwarded-client-cert).");

    step(
        4,
        "frontend pretends to be admin with a forged x-forwarded-client-cert header",
    );
    let forged = "URI=spiffe://demo.mesh/ns/shop/sa/admin";
    let (status, body) = http1(out, "orders", "/orders/42", Some(forged)).await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        body.ends_with(frontend.as_str()),
        "step 4: the forged identity is ignored",
    );
    say("The forged header was removed; the identity comes only from the verified certificate.");

    step(
        5,
        "The same call over HTTP/2 as a gRPC client makes it (h2c, content-type application/grpc)",
    );
    let (status, body) = http2(out, "orders", "/orders/42").await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        status == StatusCode::OK && body.contains("HTTP/2.0"),
        "step 5: HTTP/2 end to end",
    );
    say(
        "gRPC stays HTTP/2 on every leg. Other HTTP/2 calls reach the app as HTTP/1.1, which every",
    );
    say("app speaks (inbound.app_protocol: auto; http2 for apps that speak only h2c).");

    step(
        6,
        "frontend calls payments, but the address answers with orders' certificate",
    );
    let (status, body) = http1(out, "payments", "/charge", None).await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        status == StatusCode::BAD_GATEWAY,
        "step 6: 502 for the wrong peer identity",
    );
    say("The TLS handshake was refused because the peer's SPIFFE ID was not the route's identity;");
    say("the request itself was never sent to the wrong service.");

    step(
        7,
        "frontend calls a host with no route: GET http://inventory/",
    );
    let (status, body) = http1(out, "inventory", "/", None).await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        status == StatusCode::NOT_FOUND,
        "step 7: 404 for a host with no route",
    );
    say("usher never sends anything on in plain text; an unknown host is refused by name.");

    step(
        8,
        "frontend calls GET http://orders/admin/stats, which orders' policy does not allow",
    );
    let (status, body) = http1(out, "orders", "/admin/stats", None).await?;
    say(format!("frontend got {status}: {body}"));
    expect(
        status == StatusCode::FORBIDDEN,
        "step 8: 403 from the orders policy",
    );
    say(
        "orders' sidecar evaluated its Rego policy (authz.rego, shown in step 2) with the caller's",
    );
    say("verified SPIFFE ID: frontend may only reach /orders/. Denied, logged, never reached the app.");

    step(
        9,
        "Someone connects to orders' sidecar directly, without a client certificate",
    );
    let bundle = dir.join("orders/certs/bundle.pem");
    let refusal = direct_tls(orders_sidecar.addrs.inbound, &bundle, None, &orders).await;
    say(format!("refused: {refusal}"));
    expect(
        refusal.contains("CertificateRequired"),
        "step 9: refused without a certificate",
    );

    step(
        10,
        "Someone connects with a certificate from another CA (same trust domain name)",
    );
    let rogue_ca = init_ca(&dir.join("rogue-ca"), TD, false)?;
    let rogue = rogue_ca.issue(&IssueRequest::new(frontend.clone()))?;
    write_issued(&dir.join("rogue"), &rogue)?;
    let refusal = direct_tls(
        orders_sidecar.addrs.inbound,
        &bundle,
        Some(&dir.join("rogue")),
        &orders,
    )
    .await;
    say(format!("refused: {refusal}"));
    expect(
        refusal.starts_with("the certificate is not signed"),
        "step 10: refused a foreign CA",
    );
    say(
        "Only certificates that chain to the mesh's own CA are accepted, whatever name they claim.",
    );

    step(
        11,
        "What an observability backend sees: the trace of step 3, and metrics",
    );
    say(format!(
        "Both sidecars export spans over OTLP/HTTP to a collector on {} (the demo's own, in-process).",
        collector.addr
    ));
    let trace = wait_for_trace(&collector, "/orders/42").await;
    expect(trace.len() == 2, "step 11: a trace of two spans for step 3");
    if let Some(first) = trace.first() {
        say(format!("trace {}:", first.trace_id));
    }
    for line in collector::waterfall(&trace) {
        say(format!("  {line}"));
    }
    say("frontend's sidecar made the CLIENT span and passed its id on in `traceparent`; orders'");
    say("sidecar continued the same trace with a SERVER span, and handed the app a `traceparent`");
    say("whose parent is that span, so the app's own spans would nest under it. The CLIENT span");
    say("is longer: it includes opening the mutual TLS connection (the first call of the demo).");
    let metrics = orders_sidecar.telemetry.metrics.encode();
    say("orders' sidecar, GET /metrics on its admin listener (Prometheus), an excerpt:");
    for line in metrics
        .lines()
        .filter(|l| {
            l.starts_with("usher_requests_total{") || l.starts_with("usher_policy_decisions_total{")
        })
        .filter(|l| !l.ends_with(" 0"))
    {
        say(format!("  {line}"));
    }
    expect(
        metrics.contains("usher_policy_decisions_total{decision=\"deny\",mode=\"enforce\"} 1"),
        "step 11: the denial of step 8 is counted",
    );

    step(12, "Shutting down");
    frontend_sidecar.shutdown(Duration::from_secs(5)).await;
    orders_sidecar.shutdown(Duration::from_secs(5)).await;
    say("both sidecars drained in-flight requests and stopped; the CA and keys are being deleted.");
    if !surprises.is_empty() {
        return Err(CliError::Runtime(format!(
            "demo: {} step(s) did not behave as described: {}",
            surprises.len(),
            surprises.join("; ")
        )));
    }
    println!("\nNext: README.md shows how to run usher beside your own service (`usher run --config usher.yaml`).");
    Ok(())
}

/// Waits (5 s at most) for the collector to hold both spans of the trace
/// whose SERVER span served `path`, and returns them.
async fn wait_for_trace(collector: &collector::Collector, path: &str) -> Vec<collector::DemoSpan> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let spans = collector.spans();
        let server = spans
            .iter()
            .find(|s| s.kind == "SERVER" && s.path == path && s.status == "200");
        if let Some(server) = server {
            let trace: Vec<_> = spans
                .iter()
                .filter(|s| s.trace_id == server.trace_id)
                .cloned()
                .collect();
            if trace.len() >= 2 || tokio::time::Instant::now() >= deadline {
                return trace;
            }
        } else if tokio::time::Instant::now() >= deadline {
            return Vec::new();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Writes a real `usher.yaml` and starts a sidecar from it, as `usher run` would.
async fn start(
    dir: &Path,
    name: &str,
    app: SocketAddr,
    routes: &str,
    extra: &str,
) -> Result<Sidecar, CliError> {
    let yaml = format!(
        "service: {name}\nidentity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n\
         inbound:\n  listen: 127.0.0.1:0\n  app: {app}\noutbound:\n  listen: 127.0.0.1:0\n  {routes}\n\
         admin:\n  listen: 127.0.0.1:0\n{extra}"
    );
    let path = dir.join(name).join("usher.yaml");
    std::fs::write(&path, yaml).map_err(|e| demo_err("writing usher.yaml")(e.to_string()))?;
    let config = Config::load(&path)?;
    Ok(Sidecar::start(&config).await?)
}

async fn http1(
    addr: SocketAddr,
    host: &str,
    path: &str,
    xfcc: Option<&str>,
) -> Result<(StatusCode, String), CliError> {
    let err = demo_err("HTTP/1.1 call");
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| err(e.to_string()))?;
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", host);
    if let Some(v) = xfcc {
        req = req.header("x-forwarded-client-cert", v);
    }
    let req = req
        .body(Full::<Bytes>::default())
        .map_err(|e| err(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| err(e.to_string()))?;
    read(resp).await
}

async fn http2(addr: SocketAddr, host: &str, path: &str) -> Result<(StatusCode, String), CliError> {
    let err = demo_err("HTTP/2 call");
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|e| err(e.to_string()))?;
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .map_err(|e| err(e.to_string()))?;
    tokio::spawn(conn);
    let req = Request::get(format!("http://{host}{path}"))
        .version(Version::HTTP_2)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .body(Full::<Bytes>::default())
        .map_err(|e| err(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| err(e.to_string()))?;
    read(resp).await
}

async fn read(
    resp: http::Response<hyper::body::Incoming>,
) -> Result<(StatusCode, String), CliError> {
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| demo_err("reading a response")(e.to_string()))?
        .to_bytes();
    Ok((
        status,
        String::from_utf8_lossy(&body).trim_end().to_string(),
    ))
}

/// A TLS client that talks to a sidecar's inbound listener directly, with or
/// without a client certificate; returns why it was refused.
async fn direct_tls(
    addr: SocketAddr,
    bundle: &Path,
    client: Option<&Path>,
    server: &SpiffeId,
) -> String {
    match try_direct_tls(addr, bundle, client, server).await {
        Ok(answer) => format!("NOT refused: got {answer:?} (this would be a bug)"),
        Err(why) => why,
    }
}

async fn try_direct_tls(
    addr: SocketAddr,
    bundle: &Path,
    client: Option<&Path>,
    server: &SpiffeId,
) -> Result<String, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(bundle).map_err(|e| e.to_string())? {
        roots
            .add(cert.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let verifier = SpiffeServerVerifier::new(Arc::new(roots), server.clone(), provider.clone());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let config = match client {
        Some(dir) => {
            let chain = CertificateDer::pem_file_iter(dir.join("cert.pem"))
                .and_then(|i| i.collect::<Result<Vec<_>, _>>())
                .map_err(|e| e.to_string())?;
            let key =
                PrivateKeyDer::from_pem_file(dir.join("key.pem")).map_err(|e| e.to_string())?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| e.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let name = ServerName::try_from("orders").map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| explain(&e))?;
    // In TLS 1.3 the server judges the client certificate after the client
    // has finished its side, so the refusal arrives with the first read.
    let mut tls = tls;
    tls.write_all(b"GET / HTTP/1.1\r\nhost: orders\r\n\r\n")
        .await
        .map_err(|e| explain(&e))?;
    let mut buf = [0u8; 256];
    match tls.read(&mut buf).await {
        Ok(0) => Err("the sidecar closed the connection".into()),
        Ok(_) => Ok(String::from_utf8_lossy(&buf)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()),
        Err(e) => Err(explain(&e)),
    }
}

/// Puts the TLS alert a sidecar sent into words.
fn explain(err: &std::io::Error) -> String {
    let chain = error_chain(err);
    let meaning = if chain.contains("CertificateRequired") {
        "a client certificate is required"
    } else if chain.contains("DecryptError")
        || chain.contains("UnknownCA")
        || chain.contains("BadCertificate")
    {
        "the certificate is not signed by the mesh's CA"
    } else if chain.contains("CertificateExpired") {
        "the certificate has expired"
    } else {
        "the handshake failed"
    };
    format!("{meaning} (TLS alert: {chain})")
}
