//! Bounds on what a caller can make usher do, through real sidecars:
//! rate limits, header and body sizes, slow and idle clients, a slow app,
//! connection and HTTP/2 stream limits, request smuggling.

use crate::support;

use std::net::SocketAddr;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::{get1, h1, read, tls_client};
use crate::support::{assert_status, id, wait_until, Mesh};
use bytes::Bytes;
use http_body_util::{Full, StreamBody};
use hyper::body::Frame;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;

/// A TLS connection to b's inbound listener as caller "probe" (a valid
/// mesh certificate), speaking `alpn`.
async fn tls_to_b(mesh: &Mesh, alpn: &[u8]) -> TlsStream<TcpStream> {
    let probe = mesh.pki.issue("probe-certs", &id("probe"));
    let config = tls_client(&probe.join("bundle.pem"), Some(&probe), id("b"), alpn);
    let tcp = TcpStream::connect(mesh.b.addrs.inbound).await.unwrap();
    tokio_rustls::TlsConnector::from(config)
        .connect(rustls::pki_types::ServerName::try_from("b").unwrap(), tcp)
        .await
        .unwrap()
}

/// Reads until EOF or error; true if the peer closed within `deadline`.
async fn closed_within(stream: &mut (impl AsyncReadExt + Unpin), deadline: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let closed = tokio::time::timeout(deadline, async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    closed.is_ok()
}

/// Sends a raw HTTP/1.1 request and returns everything read until the
/// server closes (or 5 s).
async fn raw(stream: &mut (impl AsyncReadExt + AsyncWriteExt + Unpin), request: &[u8]) -> String {
    stream.write_all(request).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

fn header<'a>(resp: &'a http::Response<hyper::body::Incoming>, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .map_or("", |v| v.to_str().unwrap_or(""))
}

#[tokio::test]
async fn a_caller_over_its_rate_limit_gets_429_with_the_limit_and_reset() {
    let app = Backend::start().await;
    let mesh = Mesh::start_with(
        app.addr,
        &[],
        "rate_limit:\n  per_caller: {requests_per_second: 2, burst: 3}\n",
    )
    .await;
    let other = mesh.client("c").await;
    let mut sender = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let get = || {
        http::Request::get("/headers")
            .header("host", "b")
            .body(Full::default())
            .unwrap()
    };
    for _ in 0..3 {
        let resp = sender.send_request(get()).await.unwrap();
        assert_eq!(resp.status(), 200);
        read(resp).await;
    }
    let resp = sender.send_request(get()).await.unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(header(&resp, "ratelimit-limit"), "3");
    assert_eq!(header(&resp, "ratelimit-remaining"), "0");
    let retry: u64 = header(&resp, "retry-after").parse().unwrap();
    assert!((1..=1).contains(&retry), "one token per 0.5 s: {retry}");
    assert_eq!(header(&resp, "ratelimit-reset"), retry.to_string());
    let (_, body) = read(resp).await;
    assert!(body.contains("rate limit"), "{body}");

    // Another caller has its own bucket.
    assert_status(
        get1(other.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );
    // The bucket refills: the first caller is served again.
    let refilled = wait_until(Duration::from_secs(5), || async {
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0 == 200
    })
    .await;
    assert!(refilled, "the bucket did not refill");
    let (_, metrics) = get1(mesh.b.addrs.admin, "admin", "/metrics").await;
    assert!(
        metrics.lines().any(
            |l| l.starts_with("usher_rate_limited_total{scope=\"caller\"}") && !l.ends_with(" 0")
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_request_head_over_the_limit_gets_431() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let big = "x".repeat(20 * 1024);
    // Through a (its own listener refuses it) ...
    let mut sender = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let resp = sender
        .send_request(
            http::Request::get("/headers")
                .header("host", "b")
                .header("x-big", big.as_str())
                .body(Full::default())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 431);
    // ... and straight at b's inbound listener.
    let mut tls = tls_to_b(&mesh, b"http/1.1").await;
    let req = format!("GET /headers HTTP/1.1\r\nhost: b\r\nx-big: {big}\r\n\r\n");
    let answer = raw(&mut tls, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413_declared_or_streamed() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  max_request_body: 1024\n").await;
    let mut sender = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let resp = sender
        .send_request(
            http::Request::post("/count")
                .header("host", "b")
                .body(Full::new(Bytes::from(vec![b'x'; 2048])))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    let (_, body) = read(resp).await;
    assert!(body.contains("larger than 1024 bytes"), "{body}");

    // Streamed (chunked, no Content-Length): cut off past the limit.
    let chunks: Vec<Result<Frame<Bytes>, std::convert::Infallible>> = (0..8)
        .map(|_| Ok(Frame::data(Bytes::from(vec![b'y'; 512]))))
        .collect();
    let mut sender = h1::<StreamBody<_>>(mesh.a.addrs.outbound).await;
    let resp = sender
        .send_request(
            http::Request::post("/count")
                .header("host", "b")
                .body(StreamBody::new(futures_util::stream::iter(chunks)))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    // Under the limit is fine.
    let mut sender = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let resp = sender
        .send_request(
            http::Request::post("/count")
                .header("host", "b")
                .body(Full::new(Bytes::from(vec![b'z'; 1000])))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(read(resp).await, (http::StatusCode::OK, "1000".into()));
}

/// A mesh whose b has `inbound_extra` lines appended to its `inbound:` map.
async fn limited_mesh(app: SocketAddr, inbound_extra: &str) -> Mesh {
    // write_config puts `app_connect_timeout` last in `inbound:`; extra
    // inbound keys go right after it.
    let pki_mesh = Mesh::start_full(app, &[], "", "").await;
    let b_dir = pki_mesh.b_dir();
    let path = b_dir.join("usher.yaml");
    let yaml = std::fs::read_to_string(&path).unwrap().replace(
        "  app_connect_timeout: 10s\n",
        &format!("  app_connect_timeout: 10s\n{inbound_extra}"),
    );
    std::fs::write(&path, yaml).unwrap();
    let b = support::start_sidecar(&path).await;
    let routes = [support::RouteSpec {
        host: "b".into(),
        address: b.addrs.inbound,
        identity: id("b"),
    }];
    let a_certs = pki_mesh.pki.dir.path().join("a-certs");
    let a = support::start_sidecar(&support::write_config(
        &pki_mesh.pki.dir.path().join("a2"),
        &a_certs,
        app,
        &routes,
        "",
    ))
    .await;
    Mesh {
        pki: pki_mesh.pki,
        a,
        b,
    }
}

#[tokio::test]
async fn a_slowloris_client_is_cut_off_while_others_are_served() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  header_read_timeout: 1s\n").await;
    let mut slow = tls_to_b(&mesh, b"http/1.1").await;
    let head = b"GET /headers HTTP/1.1\r\nhost: b\r\nx-slow: ";
    // One header byte a second (the attack's pace, not synchronisation).
    let started = tokio::time::Instant::now();
    let mut cut = false;
    let mut served = 0;
    for byte in head.iter().chain(b"aaaaaaaaaaaaaaaaaaaa".iter()) {
        if slow.write_all(&[*byte]).await.is_err() || slow.flush().await.is_err() {
            cut = true;
            break;
        }
        // Meanwhile a normal client is served.
        if get1(mesh.a.addrs.outbound, "b", "/headers").await.0 == 200 {
            served += 1;
        }
        if started.elapsed() > Duration::from_secs(15) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    if !cut {
        cut = closed_within(&mut slow, Duration::from_secs(5)).await;
    }
    assert!(cut, "the slow client was never disconnected");
    assert!(served >= 1, "other clients were not served meanwhile");
}

#[tokio::test]
async fn an_idle_connection_is_closed() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  idle_timeout: 1s\n  header_read_timeout: 30s\n").await;
    let mut tls = tls_to_b(&mesh, b"http/1.1").await;
    tls.write_all(b"GET /headers HTTP/1.1\r\nhost: b\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = tls.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        closed_within(&mut tls, Duration::from_secs(10)).await,
        "an idle keep-alive connection was kept open"
    );
}

#[tokio::test]
async fn an_app_that_does_not_answer_in_time_gives_504() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  request_timeout: 500ms\n").await;
    let body = assert_status(
        get1(mesh.a.addrs.outbound, "b", "/hold").await,
        504,
        "GET /hold (Host: b)",
    );
    assert_eq!(body, "usher: the local service did not answer in time\n");
    app.release.notify_waiters();
}

#[tokio::test]
async fn connections_over_the_listener_limit_are_closed_at_once() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  max_connections: 2\n").await;
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut tls = tls_to_b(&mesh, b"http/1.1").await;
        tls.write_all(b"GET /headers HTTP/1.1\r\nhost: b\r\n\r\n")
            .await
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = tls.read(&mut buf).await.unwrap();
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        held.push(tls);
    }
    // The third is closed before (or right after) the handshake.
    let probe = mesh.pki.dir.path().join("probe-certs");
    let config = tls_client(
        &probe.join("bundle.pem"),
        Some(&probe),
        id("b"),
        b"http/1.1",
    );
    let tcp = TcpStream::connect(mesh.b.addrs.inbound).await.unwrap();
    let third = tokio_rustls::TlsConnector::from(config)
        .connect(rustls::pki_types::ServerName::try_from("b").unwrap(), tcp)
        .await;
    if let Ok(mut tls) = third {
        let answer = raw(&mut tls, b"GET /headers HTTP/1.1\r\nhost: b\r\n\r\n").await;
        assert!(answer.is_empty(), "served over the limit: {answer:.60}");
    }
    let (_, metrics) = get1(mesh.b.addrs.admin, "admin", "/metrics").await;
    assert!(
        metrics.contains("usher_connections_refused_total{direction=\"inbound\"} 1"),
        "{metrics}"
    );
    // A slot frees up when a connection ends.
    drop(held.pop());
    let freed = wait_until(Duration::from_secs(5), || async {
        let mut tls = tls_to_b(&mesh, b"http/1.1").await;
        raw(
            &mut tls,
            b"GET /headers HTTP/1.1\r\nhost: b\r\nconnection: close\r\n\r\n",
        )
        .await
        .starts_with("HTTP/1.1 200")
    })
    .await;
    assert!(freed);
}

#[tokio::test]
async fn http2_streams_are_capped_and_a_reset_flood_is_stopped() {
    let app = Backend::start().await;
    let mesh = limited_mesh(app.addr, "  http2_max_concurrent_streams: 2\n").await;
    let tls = tls_to_b(&mesh, b"h2").await;
    let (client, conn) = h2::client::handshake(tls).await.unwrap();
    let conn = tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    // One exchange, so the server's SETTINGS have been read.
    let req = http::Request::get("https://b/headers").body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    assert_eq!(resp.await.unwrap().status(), 200);
    let mut client = client.ready().await.unwrap();
    assert_eq!(
        client.current_max_send_streams(),
        2,
        "the server's SETTINGS"
    );

    // Rapid reset: open streams and cancel them at once, many times.
    let mut refused = false;
    for _ in 0..2000 {
        let ready = match tokio::time::timeout(Duration::from_secs(5), client.ready()).await {
            Ok(Ok(c)) => c,
            _ => {
                refused = true;
                break;
            }
        };
        client = ready;
        // A slow path, so that the resets land before the answers.
        let req = http::Request::get("https://b/hold").body(()).unwrap();
        match client.send_request(req, true) {
            Ok((_, mut stream)) => stream.send_reset(h2::Reason::CANCEL),
            Err(_) => {
                refused = true;
                break;
            }
        }
    }
    let ended = tokio::time::timeout(Duration::from_secs(10), conn).await;
    assert!(refused || ended.is_ok(), "the reset flood was not stopped");
    app.release.notify_waiters();
    // Others are still served.
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers (Host: b)",
    );
}

#[tokio::test]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut tls = tls_to_b(&mesh, b"http/1.1").await;
    // A front end that trusted Content-Length would see one request; one
    // that trusted Transfer-Encoding would see a second, smuggled one.
    let attack = b"POST /count HTTP/1.1\r\nhost: b\r\ncontent-length: 44\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /headers/smuggled HTTP/1.1\r\nhost: b\r\n\r\n";
    let answer = raw(&mut tls, attack).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        answer.matches("HTTP/1.1 ").count(),
        1,
        "one request in, one answer out, connection closed: {answer}"
    );
    assert!(!answer.contains("smuggled"), "{answer}");

    // Two different Content-Length values: refused.
    let mut tls = tls_to_b(&mesh, b"http/1.1").await;
    let answer = raw(
        &mut tls,
        b"POST /count HTTP/1.1\r\nhost: b\r\ncontent-length: 4\r\ncontent-length: 5\r\n\r\nabcde",
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
}
