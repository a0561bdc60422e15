//! Accepting connections and serving HTTP on them, with graceful drain.
//!
//! Every connection task is tracked; on shutdown the listeners stop
//! accepting, each connection is asked to finish (HTTP/1 closes after the
//! in-flight response, HTTP/2 sends GOAWAY), and the sidecar waits for the
//! tracker to empty, up to the drain timeout.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Stop signal and the set of live connection tasks, shared by listeners.
#[derive(Clone, Default)]
pub struct Lifecycle {
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
}

/// The HTTP server settings used on every listener.
pub fn http_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30));
    builder.http2().timer(TokioTimer::new());
    builder
}

/// Accepts until shutdown, handing each connection to `handle` in a
/// tracked task. Accept errors (e.g. out of file descriptors) are logged
/// and retried after a short pause instead of ending the listener.
pub async fn accept_loop<H, F>(
    listener: TcpListener,
    name: &'static str,
    life: Lifecycle,
    handle: H,
) where
    H: Fn(TcpStream, SocketAddr) -> F,
    F: Future<Output = ()> + Send + 'static,
{
    loop {
        tokio::select! {
            _ = life.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    let _ = stream.set_nodelay(true);
                    life.tasks.spawn(handle(stream, remote));
                }
                Err(e) => {
                    tracing::warn!(listener = name, error = %e, "accept failed");
                    // Back off so a persistent error (EMFILE) does not spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }
    tracing::debug!(listener = name, "stopped accepting");
}

/// Serves HTTP/1.1 or HTTP/2 (detected) on `io` until the peer closes or
/// shutdown asks the connection to finish.
pub async fn serve_http<I, S, Fut, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    shutdown: &CancellationToken,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: Fn(Request<Incoming>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<Response<B>, Infallible>> + Send + 'static,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let service = hyper::service::service_fn(service);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}
