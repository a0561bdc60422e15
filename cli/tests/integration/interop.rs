//! usher between the HTTP versions real clients and apps speak: an h2
//! caller or an h2c app in front of an HTTP/1.1-only app, an HTTP/1.1
//! caller in front of an h2c-only app, gRPC end to end, and a malformed
//! request body blamed on the caller.

use crate::support;

use std::convert::Infallible;
use std::net::SocketAddr;

use crate::support::backend::Backend;
use crate::support::client::{h1, h2, read};
use crate::support::raw::{header_value, read_response, EchoApp, MeshPeer};
use crate::support::{assert_status, id, start_sidecar, write_config_with, Mesh, Pki};
use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};

/// An app that speaks only HTTP/2 with prior knowledge (as many gRPC
/// servers do): answers with the version and the host it saw.
async fn h2c_only_app() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc =
                    hyper::service::service_fn(|req: Request<hyper::body::Incoming>| async move {
                        // The caller's host comes in x-forwarded-host; the
                        // :authority is the app's own address.
                        let host = req
                            .headers()
                            .get("x-forwarded-host")
                            .and_then(|h| h.to_str().ok())
                            .unwrap_or_default()
                            .to_string();
                        let text = format!("{:?} {host} {}", req.version(), req.uri().path());
                        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
                    });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn an_h2_mesh_caller_reaches_an_http1_app() {
    let app = EchoApp::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "curl", mesh.b.addrs.inbound);
    let req = Request::get("https://orders.shop/x?y=1").body(()).unwrap();
    let body = assert_status(
        peer.h2(req).await.unwrap(),
        StatusCode::OK,
        "GET /x?y=1 over HTTP/2",
    );
    assert!(body.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{body}");
    assert_eq!(header_value(&body, "host"), Some("orders.shop"), "{body}");
}

#[tokio::test]
async fn an_h2c_app_reaches_an_http1_app_through_the_mesh() {
    let app = EchoApp::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut send = h2::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let req = Request::post("http://b/orders")
        .body(Full::new(Bytes::from_static(b"{\"n\":1}")))
        .unwrap();
    let body = assert_status(
        read(send.send_request(req).await.unwrap()).await,
        StatusCode::OK,
        "POST /orders over h2c",
    );
    assert!(body.starts_with("POST /orders HTTP/1.1\r\n"), "{body}");
    assert_eq!(header_value(&body, "host"), Some("b"), "{body}");
}

#[tokio::test]
async fn an_http1_caller_reaches_an_h2c_only_app_when_configured() {
    let app = h2c_only_app().await;
    let pki = Pki::new();
    let certs = pki.issue("b-certs", &id("b"));
    let dir = pki.dir.path().join("b");
    let b = start_sidecar(&write_config_with(
        &dir,
        &certs,
        app,
        &[],
        "  app_protocol: http2\n",
        "",
    ))
    .await;
    let peer = MeshPeer::new(&pki, "a", b.addrs.inbound);
    let body = assert_status(
        peer.h1("GET /hello HTTP/1.1\r\nHost: orders.shop\r\nConnection: close\r\n\r\n")
            .await,
        200,
        "GET /hello",
    );
    assert_eq!(body, "HTTP/2.0 orders.shop /hello");

    // By default (auto) a plain request goes as HTTP/1.1, which this app
    // cannot read: that is what `app_protocol: http2` is for.
    let dir = pki.dir.path().join("b-auto");
    let b = start_sidecar(&write_config_with(&dir, &certs, app, &[], "", "")).await;
    let peer = MeshPeer::new(&pki, "a2", b.addrs.inbound);
    assert_status(
        peer.h1("GET /hello HTTP/1.1\r\nHost: orders.shop\r\nConnection: close\r\n\r\n")
            .await,
        502,
        "GET /hello",
    );
}

#[tokio::test]
async fn grpc_works_end_to_end_with_trailers() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut send = h2::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let req = Request::post("http://b/grpc")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(Full::new(Bytes::from_static(b"\0\0\0\0\x02hi")))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let collected = resp.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("gRPC trailers arrive");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(&collected.to_bytes()[..], b"\0\0\0\0\x02hi");
}

/// `Transfer-Encoding: chunked` with a chunk size that is not hex.
const BAD_CHUNK: &[u8] =
    b"POST /count HTTP/1.1\r\nHost: b\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz\r\n";

#[tokio::test]
async fn a_malformed_body_from_the_app_is_a_400_not_a_502() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut tcp = TcpStream::connect(mesh.a.addrs.outbound).await.unwrap();
    tcp.write_all(BAD_CHUNK).await.unwrap();
    let body = assert_status(
        read_response(&mut tcp).await,
        400,
        "a malformed chunked body from the app",
    );
    assert_eq!(body, "usher: the request body could not be read\n");
    // The sidecar pair goes on serving.
    let mut send = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let req = Request::get("/headers")
        .header("host", "b")
        .body(Full::default())
        .unwrap();
    assert_eq!(
        read(send.send_request(req).await.unwrap()).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_malformed_body_from_a_peer_is_a_400_not_a_502() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "frontend", mesh.b.addrs.inbound);
    assert_status(
        peer.h1(std::str::from_utf8(BAD_CHUNK).unwrap()).await,
        400,
        "a malformed chunked body from a peer",
    );
    let metrics = support::client::get1(mesh.b.addrs.admin, "admin", "/metrics")
        .await
        .1;
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("usher_requests_total") && l.contains("code=\"400\"")),
        "{metrics}"
    );
}
