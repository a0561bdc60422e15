//! The multiplexed hop between sidecars: the caller's app speaks HTTP/1.1,
//! the two sidecars share HTTP/2 connections (ALPN `usher-mux/h1`), and the
//! callee's app gets back the HTTP/1.1 request that was sent. Checked with
//! the connections each side accepts, an older peer that does not offer the
//! hop, a peer connection cut with streams in flight, and a mesh peer that
//! speaks the hop by hand to get around the callee's checks.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::support::backend::Backend;
use crate::support::client::{get1, h1, read};
use crate::support::raw::MeshPeer;
use crate::support::{assert_status, id, start_sidecar, write_config, Mesh, Pki, RouteSpec};

/// `usher_connections_total{direction}` of one sidecar.
async fn connections(admin: SocketAddr, direction: &str) -> f64 {
    let metrics = get1(admin, "admin", "/metrics").await.1;
    let prefix = format!("usher_connections_total{{direction=\"{direction}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {prefix} in {metrics}"))
}

/// Client sidecar "a", routing host `b` to `peer` (which must present b's
/// identity); its own app is `app` (never called).
async fn caller(pki: &Pki, peer: SocketAddr, app: SocketAddr) -> usher_proxy::Sidecar {
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: peer,
        identity: id("b"),
    }];
    start_sidecar(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app,
        &routes,
        "",
    ))
    .await
}

/// Waits until `n` more requests have reached the app's `/hold`.
async fn arrived_at_hold(app: &Backend, n: u32, what: &str) {
    tokio::time::timeout(Duration::from_secs(10), app.held.acquire_many(n))
        .await
        .unwrap_or_else(|_| panic!("{what}"))
        .unwrap()
        .forget();
}

/// `n` requests to `/hold`, each on its own HTTP/1.1 connection to the
/// caller's outbound listener, all held by the app until it is released.
async fn hold_many(
    app: &Backend,
    outbound: SocketAddr,
    n: u32,
) -> Vec<tokio::task::JoinHandle<(StatusCode, String)>> {
    let calls: Vec<_> = (0..n)
        .map(|_| tokio::spawn(get1(outbound, "b", "/hold")))
        .collect();
    arrived_at_hold(app, n, "every request reaches the app at once").await;
    calls
}

#[tokio::test]
async fn concurrent_http1_requests_share_one_connection_and_reach_the_app_as_http1() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    // The first request opens the peer connection.
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers",
    );

    let calls = hold_many(&app, mesh.a.addrs.outbound, 24).await;
    app.release.notify_waiters();
    for call in calls {
        assert_status(call.await.unwrap(), 200, "a held request");
    }
    assert_eq!(
        connections(mesh.b.addrs.admin, "inbound").await,
        1.0,
        "24 concurrent requests from 24 app connections share one peer connection"
    );

    // What the callee's app gets: HTTP/1.1, the Host the caller's app
    // sent (port included), an origin-form target, usher's identity header.
    let body = assert_status(
        get1(mesh.a.addrs.outbound, "B:8080", "/headers?x=1").await,
        200,
        "GET /headers",
    );
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen[":version"], "HTTP/1.1", "{seen}");
    assert_eq!(seen["host"], "B:8080", "{seen}");
    assert_eq!(seen[":path"], "/headers?x=1", "{seen}");
    assert!(
        seen["x-forwarded-client-cert"]
            .as_str()
            .is_some_and(|x| x.contains(id("a").as_str())),
        "{seen}"
    );
}

#[tokio::test]
async fn with_multiplex_off_each_concurrent_request_has_its_own_connection() {
    let app = Backend::start().await;
    // Appended to a's `outbound:` section, after its routes.
    let mesh = Mesh::start_full(app.addr, &[], "  multiplex: false\n", "").await;
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers",
    );
    let calls = hold_many(&app, mesh.a.addrs.outbound, 8).await;
    app.release.notify_waiters();
    for call in calls {
        assert_status(call.await.unwrap(), 200, "a held request");
    }
    let opened = connections(mesh.b.addrs.admin, "inbound").await;
    assert!(opened >= 8.0, "HTTP/1.1 to the peer: {opened} connections");
}

#[tokio::test]
async fn bodies_and_large_responses_cross_the_multiplexed_hop() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut send = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    // 3 MiB up: more than one HTTP/2 flow-control window.
    let body = Bytes::from(vec![b'x'; 3 * 1024 * 1024]);
    let req = Request::post("/count")
        .header("host", "b")
        .body(Full::new(body))
        .unwrap();
    let answer = read(send.send_request(req).await.unwrap()).await;
    assert_eq!(assert_status(answer, 200, "POST /count"), "3145728");
}

/// A peer that knows only `h2` and `http/1.1`, as an older usher or
/// another mTLS server: the caller falls back to HTTP/1.1.
#[tokio::test]
async fn a_peer_without_the_hop_is_spoken_to_in_http1() {
    let pki = Pki::new();
    let b_certs = pki.issue("b-certs", &id("b"));
    let chain: Vec<_> = CertificateDer::pem_file_iter(b_certs.join("cert.pem"))
        .unwrap()
        .map(|c| c.unwrap())
        .collect();
    let key = PrivateKeyDer::from_pem_file(b_certs.join("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
    server.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let old_peer = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let alpn = String::from_utf8_lossy(tls.get_ref().1.alpn_protocol().unwrap_or(b""))
                    .into_owned();
                let service = hyper::service::service_fn(move |req: Request<_>| {
                    let said = format!("{alpn} {:?}", req.version());
                    async move {
                        Ok::<_, std::convert::Infallible>(http::Response::new(Full::new(
                            Bytes::from(said),
                        )))
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    let a = caller(&pki, old_peer, old_peer).await;
    for _ in 0..3 {
        let body = assert_status(
            get1(a.addrs.outbound, "b", "/headers").await,
            200,
            "GET /headers",
        );
        assert_eq!(body, "http/1.1 HTTP/1.1");
    }
}

/// Forwards TCP to `to`; `cut` closes every connection at once, as a peer
/// that dies does (new connections are still forwarded).
struct Relay {
    addr: SocketAddr,
    conns: Arc<std::sync::Mutex<JoinSet<()>>>,
}

impl Relay {
    async fn start(to: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns = Arc::new(std::sync::Mutex::new(JoinSet::new()));
        let set = conns.clone();
        tokio::spawn(async move {
            loop {
                let (mut down, _) = listener.accept().await.unwrap();
                set.lock().unwrap().spawn(async move {
                    let mut up = TcpStream::connect(to).await.unwrap();
                    let _ = tokio::io::copy_bidirectional(&mut down, &mut up).await;
                });
            }
        });
        Relay { addr, conns }
    }

    fn cut(&self) {
        self.conns.lock().unwrap().abort_all();
    }
}

#[tokio::test]
async fn streams_in_flight_fail_fast_when_the_peer_connection_dies_and_none_is_sent_twice() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = start_sidecar(&write_config(
        &pki.dir.path().join("b"),
        &b_certs,
        app.addr,
        &[],
        "",
    ))
    .await;
    let relay = Relay::start(b.addrs.inbound).await;
    let a = caller(&pki, relay.addr, app.addr).await;
    assert_status(
        get1(a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers",
    );

    let calls = hold_many(&app, a.addrs.outbound, 5).await;
    relay.cut();
    for call in calls {
        let answer = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("a request in flight on a dead connection fails at once")
            .unwrap();
        assert_status(answer, 502, "a held request whose peer connection died");
    }
    // The next request connects anew.
    assert_status(
        get1(a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers after",
    );
    // None of the five was sent again: no sixth /hold reached the app.
    assert_eq!(app.held.available_permits(), 0);
    app.release.notify_waiters();
}

/// A mesh peer that negotiates the hop by hand gets no more than over
/// HTTP/1.1: identity headers are usher's, two hosts and CONNECT are
/// refused, the method and path are checked as for any request.
#[tokio::test]
async fn a_peer_speaking_the_hop_by_hand_meets_the_same_checks() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let peer = MeshPeer::new(&mesh.pki, "mallory", mesh.b.addrs.inbound);

    let forged = Request::get("https://b/headers")
        .header("host", "b")
        .header("x-forwarded-client-cert", format!("URI={}", id("admin")))
        .body(())
        .unwrap();
    let (status, body) = peer.mux(forged).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen[":version"], "HTTP/1.1", "{seen}");
    let xfcc = seen["x-forwarded-client-cert"].as_str().unwrap_or_default();
    assert!(xfcc.contains(id("mallory").as_str()), "{xfcc}");
    assert!(!xfcc.contains(id("admin").as_str()), "forged: {xfcc}");

    let two_hosts = Request::get("https://b/headers")
        .header("host", "b")
        .header("host", "admin")
        .body(())
        .unwrap();
    let (status, _) = peer.mux(two_hosts).await.unwrap();
    assert_eq!(status, StatusCode::BAD_REQUEST, "two Host headers");

    let traversal = Request::get("https://b/a/%2e%2e/%2e%2e/headers")
        .header("host", "b")
        .body(())
        .unwrap();
    let (status, body) = peer.mux(traversal).await.unwrap();
    if status == StatusCode::OK {
        let seen: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(seen[":path"], "/headers", "normalised: {seen}");
    } else {
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    let connect = Request::connect("b:443").body(()).unwrap();
    let refused = peer.mux(connect).await;
    assert!(
        !matches!(refused, Ok((StatusCode::OK, _))),
        "CONNECT: {refused:?}"
    );
}

/// Trailers never meet the sanitizer: a mesh peer that declares
/// `Trailer: x-forwarded-client-cert` and sends that field as an HTTP/2
/// trailer must not get it to the app (hyper writes declared trailer
/// fields into the HTTP/1.1 chunked body; Apache and others merge request
/// trailers into headers, CVE-2013-5704).
#[tokio::test]
async fn identity_headers_cannot_be_forged_in_trailers() {
    use crate::support::client::tls_client;
    use crate::support::raw::{EchoApp, MUX_ALPN};

    let app = EchoApp::start().await;
    let mesh = Mesh::start(app.addr).await;
    let certs = mesh.pki.issue("mallory-trailers", &id("mallory"));
    let config = tls_client(&certs.join("bundle.pem"), Some(&certs), id("b"), MUX_ALPN);
    let tcp = TcpStream::connect(mesh.b.addrs.inbound).await.unwrap();
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(
            rustls::pki_types::ServerName::try_from("usher").unwrap(),
            tcp,
        )
        .await
        .unwrap();
    let (mut client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(conn);
    let req = Request::post("https://b/upload")
        .header("host", "b")
        .header(
            "trailer",
            "x-forwarded-client-cert, x-forwarded-user, x-admin",
        )
        .body(())
        .unwrap();
    let (resp, mut stream) = client.send_request(req, false).unwrap();
    stream.send_data(Bytes::from_static(b"hi"), false).unwrap();
    let mut trailers = http::HeaderMap::new();
    let forged = format!("By={};URI={}", id("b"), id("admin"));
    trailers.insert("x-forwarded-client-cert", forged.parse().unwrap());
    trailers.insert("x-forwarded-user", "admin".parse().unwrap());
    trailers.insert("x-admin", "yes".parse().unwrap());
    stream.send_trailers(trailers).unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), resp)
        .await
        .expect("an answer")
        .unwrap();
    // Whatever the answer, the app saw no forged field anywhere.
    let _ = resp.status();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let seen = app.heads().join("\n---\n");
    assert!(!seen.contains(id("admin").as_str()), "forged XFCC: {seen}");
    assert!(!seen.contains("x-forwarded-user"), "forged header: {seen}");
}

/// Starts an upload to `/hold` (whose app never reads the body) and feeds
/// it a chunk at a time until the sidecars stop taking chunks for 500 ms:
/// back-pressure has reached the client, the stream's windows are full.
/// Returns the feeder, to be dropped at the end.
async fn stall_an_upload(app: &Backend, outbound: SocketAddr) -> tokio::sync::mpsc::Sender<Bytes> {
    let (feed, chunks) = tokio::sync::mpsc::channel::<Bytes>(1);
    let body = http_body_util::StreamBody::new(futures_util::stream::unfold(
        chunks,
        |mut chunks| async move {
            let chunk = chunks.recv().await?;
            Some((
                Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(chunk)),
                chunks,
            ))
        },
    ));
    let mut send = h1(outbound).await;
    let req = Request::post("/hold")
        .header("host", "b")
        .body(body)
        .unwrap();
    tokio::spawn(async move { send.send_request(req).await.map(|r| r.status()) });
    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
    let mut fed = 0usize;
    loop {
        match tokio::time::timeout(Duration::from_millis(500), feed.send(chunk.clone())).await {
            Ok(Ok(())) => fed += 1,
            Ok(Err(_)) => panic!("the upload's body was dropped"),
            Err(_) => break,
        }
        assert!(fed < 2048, "128 MiB went in and the upload never stalled");
    }
    arrived_at_hold(app, 1, "the stalled upload reaches the app").await;
    feed
}

/// Uploads that the callee's app stops reading must not stall the other
/// requests sharing the hop: a stream holds only part of the connection's
/// flow-control window (with hyper's defaults, a connection window no larger
/// than a stream's, the fourth upload here stalled).
#[tokio::test]
async fn stalled_uploads_do_not_stall_the_others_on_the_hop() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        200,
        "GET /headers",
    );
    let mut feeders = Vec::new();
    for _ in 0..6 {
        feeders.push(stall_an_upload(&app, mesh.a.addrs.outbound).await);
    }
    let mut send = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    for size in [1024 * 1024, 3 * 1024 * 1024] {
        let req = Request::post("/count")
            .header("host", "b")
            .body(Full::new(Bytes::from(vec![b'y'; size])))
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            read(send.send_request(req).await.unwrap()).await
        })
        .await
        .expect("an upload beside stalled ones completes");
        assert_eq!(assert_status(answer, 200, "POST /count"), size.to_string());
    }
    assert_eq!(
        connections(mesh.b.addrs.admin, "inbound").await,
        1.0,
        "all of it on the one multiplexed connection"
    );
    drop(feeders);
    app.release.notify_waiters();
}

/// The other direction: responses that the caller's app stops reading (50
/// MB downloads left unread) must not stall the other responses on the hop.
#[tokio::test]
async fn unread_downloads_do_not_stall_the_others_on_the_hop() {
    let app = Backend::start().await;
    let mesh = Mesh::start(app.addr).await;
    let mut unread = Vec::new();
    for _ in 0..6 {
        let mut send = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
        let req = Request::get("/download")
            .header("host", "b")
            .body(Full::default())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), send.send_request(req))
            .await
            .expect("a download's head")
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        // Kept, never read: its bytes back up to the hop.
        unread.push((send, resp));
    }
    for _ in 0..3 {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            get1(mesh.a.addrs.outbound, "b", "/headers"),
        )
        .await
        .expect("a response beside unread ones arrives");
        assert_status(answer, 200, "GET /headers");
    }
    let mut send = h1::<Full<Bytes>>(mesh.a.addrs.outbound).await;
    let req = Request::get("/download")
        .header("host", "b")
        .body(Full::default())
        .unwrap();
    let whole = tokio::time::timeout(Duration::from_secs(20), async {
        let resp = send.send_request(req).await.unwrap();
        http_body_util::BodyExt::collect(resp.into_body())
            .await
            .unwrap()
            .to_bytes()
            .len()
    })
    .await
    .expect("a download beside unread ones completes");
    assert_eq!(whole, 50 * 1024 * 1024 / (64 * 1024) * 64 * 1024);
    assert_eq!(connections(mesh.b.addrs.admin, "inbound").await, 1.0);
    drop(unread);
}
