//! Outbound: the local app sends plain HTTP (HTTP/1.1, or h2c with prior
//! knowledge) to 127.0.0.1; usher picks the route by Host/:authority and
//! carries the request to the peer over mutual TLS.
//!
//! A request whose host has no route is answered here, naming the host;
//! nothing is ever sent on in plain text. The request path is [`stack`]:
//! route, observe (the CLIENT span, the same step as inbound's SERVER
//! span), to the peer. Retries, timeouts or balancing would be layers
//! between observe and [`ToPeer`].

mod connect;
mod route;
mod routes;
mod to_peer;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tower::ServiceBuilder;

pub(crate) use connect::PeerConnector;
pub(crate) use route::RouteLayer;
pub use routes::{Route, RouteTable};
pub(crate) use to_peer::ToPeer;

use crate::body::RequestBody;
use crate::config::{UnknownAction, UnknownDestinations};
use crate::observe::{ObserveLayer, ObserveTarget};
use crate::respond::ProxyBody;
use crate::serve::{serve_http, splice, ResetGuard, StackService};
use crate::target::{CancelGuard, TelemetryPeer};
use crate::telemetry::metrics::UNKNOWN_PEER;
use crate::telemetry::{Direction, ObservedBody, Peer, Telemetry};
use crate::transparent::detect::{detect, Protocol};
use crate::transparent::orig_dst::original_dst;
use crate::transparent::prefixed::PrefixedIo;

/// Everything the outbound side shares between connections.
pub(crate) struct Outbound {
    pub(crate) route: RouteLayer,
    pub(crate) to_peer: ToPeer,
    pub(crate) telemetry: Arc<Telemetry>,
    /// The peer of a request no route was found for.
    pub(crate) unknown: Peer,
}

impl Outbound {
    pub(crate) fn new(route: RouteLayer, to_peer: ToPeer, telemetry: Arc<Telemetry>) -> Outbound {
        let unknown: Arc<str> = Arc::from(UNKNOWN_PEER);
        Outbound {
            route,
            to_peer,
            telemetry,
            unknown: Peer {
                id: unknown.clone(),
                label: unknown,
                addr: None,
            },
        }
    }
}

/// One connection from the local app: the target of its stack.
pub(crate) struct OutboundConn {
    /// The app's address, for the log.
    client: SocketAddr,
    /// Until a route names the peer: `unknown`.
    unknown: Peer,
    /// Where the app sent it, when `usher init-net` redirected it.
    orig: Option<SocketAddr>,
}

impl OutboundConn {
    /// `unknown`: the shared [`Outbound::unknown`] (two `Arc` clones).
    pub(crate) fn new(client: SocketAddr, unknown: Peer, orig: Option<SocketAddr>) -> OutboundConn {
        OutboundConn {
            client,
            unknown,
            orig,
        }
    }
}

impl TelemetryPeer for OutboundConn {
    fn telemetry_peer(&self) -> &Peer {
        &self.unknown
    }
}

impl CancelGuard for OutboundConn {
    fn reset_guard(&self) -> Option<&Arc<ResetGuard>> {
        None
    }
}

impl ObserveTarget for OutboundConn {
    fn direction(&self) -> Direction {
        Direction::Outbound
    }

    fn app_client(&self) -> Option<SocketAddr> {
        Some(self.client)
    }
}

/// The outbound request path for one connection from the app, outermost
/// step first.
pub(crate) fn stack(
    conn: Arc<OutboundConn>,
    outbound: &Outbound,
) -> impl tower::Service<
    Request<RequestBody>,
    Response = Response<ObservedBody<ProxyBody>>,
    Error = Infallible,
    Future: Send,
> + Send
       + 'static {
    let route = outbound.route.for_connection(conn.orig);
    ServiceBuilder::new()
        // Sanitised, then routed by its one host (or refused: the error
        // travels down with the request and comes back up as its answer;
        // on a redirected connection, `outbound.unknown` may send it on to
        // where the app sent it instead).
        .layer(route)
        // The CLIENT span (continuing the app's context, written into the
        // request for the peer), metrics, the access log line; errors
        // become responses here.
        .layer(ObserveLayer::new(conn, outbound.telemetry.clone(), false))
        .service(outbound.to_peer.clone())
}

/// What every connection accepted on the outbound listener shares.
pub(crate) struct OutboundListener {
    pub(crate) outbound: Outbound,
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) idle_timeout: Duration,
    /// `outbound.unknown`: redirected connections no route covers.
    pub(crate) unknown: UnknownDestinations,
    /// How long a redirected connection's first bytes may take.
    pub(crate) detect_timeout: Duration,
    /// Passthrough: how long connecting to the original destination may take.
    pub(crate) connect_timeout: Duration,
}

/// Serves one connection from the app until it ends. A connection
/// `usher init-net` redirected may speak anything: its first bytes decide
/// between HTTP (routed as always) and an opaque stream (TLS from the app,
/// a database protocol), which `outbound.unknown` passes through to the
/// original destination or refuses.
pub(crate) async fn serve_outbound(
    mut tcp: TcpStream,
    remote: SocketAddr,
    listener: Arc<OutboundListener>,
) {
    let metrics = &listener.outbound.telemetry.metrics;
    let _open = metrics.connection_opened(Direction::Outbound);
    let orig = original_dst(&tcp);
    let prefix = match orig {
        // Sent to the listener itself: HTTP, as the app was told.
        None => Bytes::new(),
        Some(orig) => match detect(&mut tcp, listener.detect_timeout).await {
            Ok((Protocol::Http1 | Protocol::H2c, prefix)) => prefix,
            Ok((_, prefix)) => return opaque(tcp, prefix, remote, orig, &listener).await,
            Err(_) => return,
        },
    };
    let conn = OutboundConn::new(remote, listener.outbound.unknown.clone(), orig);
    let stack = stack(Arc::new(conn), &listener.outbound);
    serve_http(
        &listener.builder,
        PrefixedIo::new(prefix, tcp),
        StackService::new(stack),
        &listener.shutdown,
        Some(listener.idle_timeout),
    )
    .await;
}

/// A redirected connection that is not HTTP: no route can name its
/// destination, so `outbound.unknown` decides.
async fn opaque(
    tcp: TcpStream,
    prefix: Bytes,
    remote: SocketAddr,
    orig: SocketAddr,
    listener: &OutboundListener,
) {
    let metrics = &listener.outbound.telemetry.metrics;
    if listener.unknown.action(orig) != UnknownAction::Passthrough {
        metrics.unknown_destination("tcp", false);
        tracing::warn!(target: "usher::audit", direction = "outbound", client = %remote, destination = %orig, reason = "no_route", "connection refused: not HTTP, and outbound.unknown refuses its destination");
        return;
    }
    metrics.unknown_destination("tcp", true);
    let start = std::time::Instant::now();
    let upstream = match tokio::time::timeout(listener.connect_timeout, TcpStream::connect(orig))
        .await
    {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(direction = "outbound", client = %remote, destination = %orig, error = %e, "passthrough: cannot connect");
            return;
        }
        Err(_) => {
            tracing::warn!(direction = "outbound", client = %remote, destination = %orig, "passthrough: connect timed out");
            return;
        }
    };
    let _ = upstream.set_nodelay(true);
    let app = PrefixedIo::new(prefix, tcp);
    let (sent, received) = splice(app, upstream, &listener.shutdown, listener.idle_timeout).await;
    tracing::info!(target: "usher::access", direction = "outbound", protocol = "tcp", client = %remote, destination = %orig, bytes_sent = sent, bytes_received = received, duration_ms = start.elapsed().as_millis() as u64, "passthrough");
}
