//! Sending a request on to the next hop over a pooled client, in the
//! protocol it arrived in, and splicing upgraded (WebSocket) connections.

use http::uri::{Authority, PathAndQuery, Scheme, Uri};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::Connect;
use hyper_util::client::legacy::{Client, ResponseFuture};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio_util::task::TaskTracker;

use crate::body::{BodyFailure, FailureSlot, RequestBody};
use crate::headers;
use crate::telemetry::{Direction, Metrics};

/// Keep-alive connections idle longer than this are closed: below the
/// servers' default header read timeout (30 s), so a pooled connection is
/// not reused just as the other side closes it.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(25);

/// Pooled clients over the same connector: HTTP/1.1 and HTTP/2, and
/// between sidecars the multiplexed hop. A request goes out in the version
/// it came in, so that h2 features (trailers, multiplexing, gRPC) and h1
/// features (Upgrade) survive; with a multiplexed hop, HTTP/1 requests
/// (upgrades aside) share its HTTP/2 connections and the callee restores
/// them to HTTP/1.1.
#[derive(Clone)]
pub(crate) struct Upstream<C> {
    h1: Client<C, RequestBody>,
    h2: Client<C, RequestBody>,
    /// HTTP/1 requests other than upgrades, when set: a client whose
    /// connector offers the multiplexed hop and falls back to HTTP/1.1.
    mux: Option<Client<C, RequestBody>>,
    tunnels: TaskTracker,
    /// Upgrades are counted in `usher_upgrades_total{direction}`.
    metrics: Arc<Metrics>,
    direction: Direction,
}

impl<C> Upstream<C>
where
    C: Connect + Clone + Send + Sync + 'static,
{
    /// `h1_connector` and `h2_connector` may differ (e.g. in the ALPN they
    /// offer); each client pools its own connections. `direction` is the
    /// side of the sidecar this upstream serves (inbound: to the app).
    pub(crate) fn new(
        h1_connector: C,
        h2_connector: C,
        tunnels: TaskTracker,
        metrics: Arc<Metrics>,
        direction: Direction,
    ) -> Self {
        let mut b1 = Client::builder(TokioExecutor::new());
        b1.pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let mut b2 = h2_settings();
        b2.http2_only(true);
        Upstream {
            h1: b1.build(h1_connector),
            h2: b2.build(h2_connector),
            mux: None,
            tunnels,
            metrics,
            direction,
        }
    }

    /// Sends HTTP/1 requests (upgrades aside) through `connector`, which
    /// negotiates the multiplexed hop or HTTP/1.1 per connection (ALPN):
    /// hyper's pool then holds one shared HTTP/2 connection per peer, or
    /// HTTP/1.1 connections as before.
    pub(crate) fn with_mux(mut self, connector: C) -> Self {
        self.mux = Some(h2_settings().build(connector));
        self
    }

    /// Forwards `req` to `scheme://authority` + its path. Hop-by-hop headers
    /// are removed here; everything else about the request is the caller's.
    pub(crate) fn forward(
        &self,
        mut req: Request<RequestBody>,
        scheme: Scheme,
        authority: Authority,
    ) -> ForwardFuture {
        let upgrade = headers::is_upgrade(&req);
        headers::strip_hop_by_hop(req.headers_mut(), upgrade);
        let path = req
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(scheme);
        parts.authority = Some(authority);
        parts.path_and_query = Some(path);
        // Parts with scheme, authority and path always form a valid URI.
        if let Ok(uri) = Uri::from_parts(parts) {
            *req.uri_mut() = uri;
        }

        // A body that can still fail: its failure is kept for the answer
        // (an HTTP/2 client reports only the stream reset).
        let body_failure =
            (!http_body::Body::is_end_stream(req.body())).then(|| req.body_mut().watch_failure());
        if req.version() == Version::HTTP_2 {
            return ForwardFuture {
                response: self.h2.request(req),
                body_failure,
                upgrade: None,
            };
        }
        *req.version_mut() = Version::HTTP_11;
        if !upgrade {
            let client = self.mux.as_ref().unwrap_or(&self.h1);
            return ForwardFuture {
                response: client.request(req),
                body_failure,
                upgrade: None,
            };
        }
        let downstream = hyper::upgrade::on(&mut req);
        let slot = req.extensions_mut().remove::<crate::serve::TunnelSlot>();
        // What was offered (only configured protocols pass the sanitizer)
        // bounds the metric's protocol label.
        let offered = req.headers().get(http::header::UPGRADE).cloned();
        ForwardFuture {
            response: self.h1.request(req),
            body_failure,
            upgrade: Some(Box::new(Upgrade {
                downstream,
                slot,
                offered,
                tunnels: self.tunnels.clone(),
                metrics: self.metrics.clone(),
                direction: self.direction,
            })),
        }
    }
}

/// A client's error for a forwarded request, with the failure of the
/// request's own body when that is what ended it.
#[derive(Debug)]
pub(crate) struct ForwardError {
    pub(crate) error: hyper_util::client::legacy::Error,
    pub(crate) body: Option<BodyFailure>,
}

/// A client builder with usher's HTTP/2 settings: pooled connections idle
/// out before the peer's header read timeout, and a ping detects a dead
/// peer on a long-lived connection (its streams then fail at once and the
/// next request connects anew).
fn h2_settings() -> hyper_util::client::legacy::Builder {
    let mut b = Client::builder(TokioExecutor::new());
    b.pool_idle_timeout(POOL_IDLE_TIMEOUT)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(Duration::from_secs(30))
        .http2_keep_alive_timeout(Duration::from_secs(10))
        // As the servers': responses a caller stops reading must not stall
        // the others on the connection.
        .http2_initial_stream_window_size(crate::serve::H2_STREAM_WINDOW)
        .http2_initial_connection_window_size(crate::serve::H2_CONNECTION_WINDOW);
    b
}

pin_project_lite::pin_project! {
    /// A forwarded request's response. Not boxed; an upgrade request
    /// (rare) carries what it needs to splice the tunnel in a box.
    pub(crate) struct ForwardFuture {
        #[pin]
        response: ResponseFuture,
        body_failure: Option<FailureSlot>,
        upgrade: Option<Box<Upgrade>>,
    }
}

/// The caller's side of an upgrade, waiting for the upstream's 101.
struct Upgrade {
    downstream: hyper::upgrade::OnUpgrade,
    slot: Option<crate::serve::TunnelSlot>,
    offered: Option<http::HeaderValue>,
    tunnels: TaskTracker,
    metrics: Arc<Metrics>,
    direction: Direction,
}

impl Future for ForwardFuture {
    type Output = Result<Response<Incoming>, ForwardError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut resp = match std::task::ready!(this.response.poll(cx)) {
            Ok(resp) => resp,
            Err(error) => {
                let body = this
                    .body_failure
                    .as_ref()
                    .and_then(|slot| slot.get().cloned());
                return Poll::Ready(Err(ForwardError { error, body }));
            }
        };
        if let Some(upgrade) = this.upgrade.take() {
            if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
                upgrade.splice(&mut resp);
            }
        }
        Poll::Ready(Ok(resp))
    }
}

impl Upgrade {
    /// The upstream switched protocols: from here on the connection is a
    /// tunnel; no policy, rate limit or authentication sees what crosses it.
    fn splice(self, resp: &mut Response<Incoming>) {
        let Upgrade {
            downstream,
            slot,
            offered,
            tunnels,
            metrics,
            direction,
        } = self;
        let switched = resp
            .headers()
            .get(http::header::UPGRADE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let offered = offered.as_ref().and_then(|v| v.to_str().ok());
        metrics.upgraded(direction, offered.unwrap_or(""), switched);
        let protocol = switched.chars().take(64).collect::<String>();
        tracing::info!(target: "usher::audit", direction = direction.as_str(), %protocol, "connection upgraded: spliced as an opaque tunnel");
        let upstream = hyper::upgrade::on(resp);
        // Marked before the 101 goes back, so that the connection's
        // task waits for the tunnel rather than ending with the upgrade.
        let slot = slot.unwrap_or_default();
        slot.started
            .store(true, std::sync::atomic::Ordering::Release);
        tunnels.spawn(async move {
            let _done = slot.done.clone().drop_guard();
            let (Ok(down), Ok(up)) = (downstream.await, upstream.await) else {
                tracing::debug!("upgrade abandoned by one side");
                return;
            };
            let mut down = TokioIo::new(down);
            let mut up = TokioIo::new(up);
            tokio::select! {
                r = tokio::io::copy_bidirectional(&mut down, &mut up) => {
                    if let Err(e) = r {
                        tracing::debug!(error = %e, "upgraded connection ended with an error");
                    }
                }
                _ = slot.stop.cancelled() => {
                    tracing::debug!("tunnel closed (idle or shutting down)");
                }
            }
        });
    }
}

/// Finds an error of type `E` anywhere in `err`'s source chain.
pub(crate) fn find_cause<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        cur = e.source();
    }
    None
}
