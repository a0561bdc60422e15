//! A real HTTP backend (HTTP/1.1 and h2c) standing in for the local app.
//!
//! - `/headers`: JSON object of the request headers it received, plus
//!   `:version` and `:path`.
//! - `/grpc`: echoes the body, ends with trailers `grpc-status: 0` and
//!   `grpc-message: ok` (the shape of a unary gRPC response).
//! - `/count`: reads the whole body, answers with the number of bytes.
//! - `/hold`: answers only after the test releases it.
//! - `/upgrade`: accepts `Upgrade: echo`, then echoes raw bytes.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub(crate) struct Backend {
    pub addr: SocketAddr,
    /// `/hold` requests that have arrived.
    pub held: Arc<Semaphore>,
    /// Lets every waiting `/hold` request answer.
    pub release: Arc<Notify>,
    /// TCP connections accepted so far.
    pub accepted: Arc<std::sync::atomic::AtomicUsize>,
}

fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|e| match e {}).boxed()
}

async fn handle(
    req: Request<Incoming>,
    held: Arc<Semaphore>,
    release: Arc<Notify>,
) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    Ok(match path.as_str() {
        p if p.starts_with("/headers") => {
            let mut map = serde_json::Map::new();
            for (k, v) in req.headers() {
                map.insert(k.to_string(), String::from_utf8_lossy(v.as_bytes()).into());
            }
            map.insert(":version".into(), format!("{:?}", req.version()).into());
            map.insert(
                ":path".into(),
                req.uri()
                    .path_and_query()
                    .map(|p| p.to_string())
                    .unwrap_or_default()
                    .into(),
            );
            Response::new(full(serde_json::Value::Object(map).to_string()))
        }
        "/grpc" => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let mut trailers = HeaderMap::new();
            trailers.insert("grpc-status", HeaderValue::from_static("0"));
            trailers.insert("grpc-message", HeaderValue::from_static("ok"));
            let frames = vec![
                Ok::<_, Infallible>(Frame::data(body)),
                Ok(Frame::trailers(trailers)),
            ];
            let mut resp =
                Response::new(StreamBody::new(futures_util::stream::iter(frames)).boxed());
            resp.headers_mut()
                .insert("content-type", HeaderValue::from_static("application/grpc"));
            resp
        }
        "/count" => {
            let mut body = req.into_body();
            let mut n: u64 = 0;
            while let Some(frame) = body.frame().await {
                match frame {
                    Ok(f) => n += f.data_ref().map(|d| d.len() as u64).unwrap_or(0),
                    Err(_) => break,
                }
            }
            Response::new(full(n.to_string()))
        }
        "/download" => {
            // 50 MB in 64 KiB chunks, generated as it is sent.
            let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
            let n = 50 * 1024 * 1024 / chunk.len();
            let stream = futures_util::stream::iter(
                (0..n).map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone()))),
            );
            Response::new(StreamBody::new(stream).boxed())
        }
        "/hold" => {
            let notified = release.notified();
            held.add_permits(1);
            notified.await;
            Response::new(full("released"))
        }
        "/upgrade" => {
            let mut req = req;
            let on = hyper::upgrade::on(&mut req);
            tokio::spawn(async move {
                if let Ok(up) = on.await {
                    let mut io = TokioIo::new(up);
                    let mut buf = [0u8; 1024];
                    while let Ok(n) = io.read(&mut buf).await {
                        if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                }
            });
            let mut resp = Response::new(full(""));
            *resp.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
            resp.headers_mut()
                .insert("connection", HeaderValue::from_static("upgrade"));
            resp.headers_mut()
                .insert("upgrade", HeaderValue::from_static("echo"));
            resp
        }
        _ => {
            let mut resp = Response::new(full("not found"));
            *resp.status_mut() = StatusCode::NOT_FOUND;
            resp
        }
    })
}

impl Backend {
    pub(crate) async fn start() -> Backend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Semaphore::new(0));
        let release = Arc::new(Notify::new());
        let (h, r) = (held.clone(), release.clone());
        let accepted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (h, r) = (h.clone(), r.clone());
                tokio::spawn(async move {
                    let svc =
                        hyper::service::service_fn(move |req| handle(req, h.clone(), r.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Backend {
            addr,
            held,
            release,
            accepted,
        }
    }

    /// An address where nothing listens (bound, then closed).
    pub(crate) async fn dead_addr() -> SocketAddr {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap()
    }
}
