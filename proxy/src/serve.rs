//! Accepting connections and serving HTTP on them, with graceful drain.
//!
//! Every connection task is tracked; on shutdown the listeners stop
//! accepting, each connection is asked to finish (HTTP/1 closes after the
//! in-flight response, HTTP/2 sends GOAWAY), and the sidecar waits for the
//! tracker to empty, up to the drain timeout.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite};

use tokio::io::ReadBuf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod service;
mod splice;
pub(crate) use service::StackService;
use service::WithTunnelSlot;
pub(crate) use splice::splice;

/// Stop signal and the set of live connection tasks, shared by listeners.
#[derive(Clone, Default)]
pub(crate) struct Lifecycle {
    pub(crate) shutdown: CancellationToken,
    pub(crate) tasks: TaskTracker,
}

/// Limits every listener applies to what a client can make usher hold.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ServerLimits {
    /// Request head size: hyper answers 431 beyond it (HTTP/1), the
    /// HTTP/2 header list is capped at it.
    pub(crate) max_header_bytes: usize,
    /// From "ready for a request head" to a complete head: a slowloris
    /// client is disconnected after it. On an idle keep-alive connection
    /// this closes the connection too.
    pub(crate) header_read_timeout: Duration,
    pub(crate) http2_max_concurrent_streams: u32,
}

/// Streams a client may reset before the server has accepted them (the
/// HTTP/2 "rapid reset" flood, CVE-2023-44487): over it, GOAWAY.
const MAX_PENDING_RESETS: usize = 20;
/// Streams usher may reset because of the client's errors: over it, GOAWAY.
const MAX_ERROR_RESETS: usize = 256;

/// HTTP/2 flow-control windows (receive side), for servers and for the
/// clients that carry a multiplexed hop: 512 KiB per stream (a loopback or
/// same-zone round trip's worth at 10 Gbit/s), 8 MiB per connection.
pub(crate) const H2_STREAM_WINDOW: u32 = 512 * 1024;
pub(crate) const H2_CONNECTION_WINDOW: u32 = 8 * 1024 * 1024;

/// The HTTP server settings used on every listener.
pub(crate) fn http_builder(limits: ServerLimits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(limits.max_header_bytes.max(8192));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .max_concurrent_streams(limits.http2_max_concurrent_streams)
        // One stream may hold a sixteenth of the connection's window: the
        // streams of a caller sidecar's multiplexed hop carry many callers,
        // and a few uploads the app stops reading must not stall the rest.
        .initial_stream_window_size(H2_STREAM_WINDOW)
        .initial_connection_window_size(H2_CONNECTION_WINDOW)
        .max_pending_accept_reset_streams(MAX_PENDING_RESETS)
        .max_local_error_reset_streams(MAX_ERROR_RESETS)
        // Detects dead peers on long-lived HTTP/2 connections.
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

/// Accepts until shutdown, handing each connection to `handle` in a
/// tracked task. Accept errors (e.g. out of file descriptors) are logged
/// and retried after a short pause instead of ending the listener.
pub(crate) async fn accept_loop<H, F>(
    listener: TcpListener,
    name: &'static str,
    life: Lifecycle,
    limit: ConnectionLimit,
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
                    // Over the limit the connection is closed at once: the
                    // ones being served are not slowed down for it.
                    let Some(permit) = limit.try_acquire() else {
                        limit.refused(name, remote);
                        drop(stream);
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let conn = handle(stream, remote);
                    life.tasks.spawn(async move {
                        conn.await;
                        drop(permit);
                    });
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

/// Closes a connection whose client keeps cancelling requests it has
/// started (HTTP/2 "rapid reset", CVE-2023-44487, or its HTTP/1 cousin):
/// hyper accepts streams as fast as they come, so the flood shows up here
/// as requests dropped before their response. Over the budget within a
/// window, the connection is asked to finish (GOAWAY).
#[derive(Debug)]
pub(crate) struct ResetGuard {
    cancelled: std::sync::atomic::AtomicU32,
    window_start: AtomicU64,
    close: CancellationToken,
}

/// Cancelled requests allowed per connection per window.
const RESET_BUDGET: u32 = 200;
const RESET_WINDOW_SECS: u64 = 10;

impl ResetGuard {
    pub(crate) fn new(close: CancellationToken) -> ResetGuard {
        ResetGuard {
            cancelled: std::sync::atomic::AtomicU32::new(0),
            window_start: AtomicU64::new(0),
            close,
        }
    }

    /// A request on this connection was dropped before its response.
    pub(crate) fn cancelled(&self) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let start = self.window_start.load(Ordering::Relaxed);
        if now.saturating_sub(start) >= RESET_WINDOW_SECS {
            self.window_start.store(now, Ordering::Relaxed);
            self.cancelled.store(0, Ordering::Relaxed);
        }
        let n = self.cancelled.fetch_add(1, Ordering::Relaxed) + 1;
        if n == RESET_BUDGET + 1 {
            tracing::warn!(
                cancelled = n,
                window_s = RESET_WINDOW_SECS,
                "closing a connection whose client cancels requests in a flood"
            );
            self.close.cancel();
        }
    }
}

/// At most `max` connections per listener (a semaphore: one atomic per
/// accept, no lock).
#[derive(Clone)]
pub(crate) struct ConnectionLimit {
    slots: Arc<Semaphore>,
    on_refused: Arc<dyn Fn() + Send + Sync>,
    logged: Arc<std::sync::atomic::AtomicU64>,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize, on_refused: Arc<dyn Fn() + Send + Sync>) -> ConnectionLimit {
        ConnectionLimit {
            slots: Arc::new(Semaphore::new(max.min(Semaphore::MAX_PERMITS))),
            on_refused,
            logged: Arc::default(),
        }
    }

    fn try_acquire(&self) -> Option<OwnedSemaphorePermit> {
        self.slots.clone().try_acquire_owned().ok()
    }

    fn refused(&self, name: &'static str, remote: SocketAddr) {
        (self.on_refused)();
        // One warn line per second at most.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if self.logged.swap(now, std::sync::atomic::Ordering::Relaxed) != now {
            tracing::warn!(listener = name, %remote, "connection refused: the listener is at max_connections");
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 (detected) on `io` until the peer closes or
/// shutdown asks the connection to finish.
pub(crate) async fn serve_http<I, S, B>(
    builder: &auto::Builder<TokioExecutor>,
    io: I,
    service: S,
    shutdown: &CancellationToken,
    idle_timeout: Option<Duration>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let activity = Arc::new(AtomicU64::new(0));
    let io = Activity {
        io,
        ops: activity.clone(),
    };
    // An upgrade request carries the connection's tunnel slot, so that a
    // spliced tunnel is still this connection: it keeps its place under
    // max_connections and in the open-connections gauge, and the idle
    // timeout and shutdown apply to it.
    let slot = TunnelSlot::default();
    let service = WithTunnelSlot {
        slot: slot.clone(),
        inner: service,
    };
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    // Idle: no byte read or written for a whole period (checked by
    // comparing a counter, so the I/O path pays one relaxed add).
    let period = idle_timeout.unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    let mut seen = 0;
    let mut closing = false;
    let result = loop {
        tokio::select! {
            r = conn.as_mut() => break r,
            _ = shutdown.cancelled(), if !closing => {
                closing = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticker.tick(), if idle_timeout.is_some() && !closing => {
                let now = activity.load(Ordering::Relaxed);
                if now == seen {
                    tracing::debug!("closing an idle connection");
                    closing = true;
                    conn.as_mut().graceful_shutdown();
                }
                seen = now;
            }
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, "connection ended with an error");
    }
    if !slot.started.load(Ordering::Acquire) {
        return;
    }
    // The connection became a tunnel: wait for it, cutting it when idle or
    // at shutdown.
    loop {
        tokio::select! {
            _ = slot.done.cancelled() => break,
            _ = shutdown.cancelled() => {
                slot.stop.cancel();
                slot.done.cancelled().await;
                break;
            }
            _ = ticker.tick(), if idle_timeout.is_some() => {
                let now = activity.load(Ordering::Relaxed);
                if now == seen {
                    tracing::debug!("closing an idle tunnel");
                    slot.stop.cancel();
                    slot.done.cancelled().await;
                    break;
                }
                seen = now;
            }
        }
    }
}

/// A connection's tunnel, once an upgrade is spliced: `started` when the
/// 101 is on its way, `stop` to cut it, `done` when it has ended.
#[derive(Clone, Default)]
pub(crate) struct TunnelSlot {
    pub(crate) started: Arc<std::sync::atomic::AtomicBool>,
    pub(crate) stop: CancellationToken,
    pub(crate) done: CancellationToken,
}

/// Counts I/O operations that moved bytes, for the idle timeout.
pub(crate) struct Activity<I> {
    pub(crate) io: I,
    pub(crate) ops: Arc<AtomicU64>,
}

impl<I: AsyncRead + Unpin> AsyncRead for Activity<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.io).poll_read(cx, buf);
        if buf.filled().len() > before {
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Activity<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.ops.fetch_add(1, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_cancelled_requests_closes_the_connection() {
        let close = CancellationToken::new();
        let guard = ResetGuard::new(close.clone());
        for _ in 0..RESET_BUDGET {
            guard.cancelled();
        }
        assert!(!close.is_cancelled(), "within the budget");
        guard.cancelled();
        assert!(close.is_cancelled(), "one over the budget");
    }
}
