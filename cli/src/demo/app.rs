//! The demo's sample service: "orders", a plain-HTTP app that knows
//! nothing about TLS. It tells the caller which identity usher verified.

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

async fn orders(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let caller = req
        .headers()
        .get("x-forwarded-client-cert")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').find_map(|kv| kv.strip_prefix("URI=")))
        .unwrap_or("nobody (no x-forwarded-client-cert)")
        .to_string();
    let body = format!(
        "orders: {} {} over {:?}, caller verified by usher as {caller}",
        req.method(),
        req.uri().path(),
        req.version()
    );
    Ok(Response::new(Full::new(Bytes::from(body))))
}

/// Starts the orders service on an ephemeral loopback port.
pub(super) async fn start_orders() -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(orders);
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(tcp), svc)
                    .await;
            });
        }
    });
    Ok(addr)
}
