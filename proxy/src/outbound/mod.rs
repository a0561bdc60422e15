//! Outbound: the local app sends plain HTTP (HTTP/1.1, or h2c with prior
//! knowledge) to 127.0.0.1; usher picks the route by Host/:authority and
//! carries the request to the peer over mutual TLS.
//!
//! A request whose host has no route is answered here, naming the host;
//! nothing is ever sent on in plain text.

mod connect;
mod routes;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::{Authority, Scheme};
use http::{Request, Response};
use hyper::body::Incoming;

pub use connect::{PeerConnector, TlsConn};
pub use routes::{Route, RouteTable};

use crate::body::RequestBody;
use crate::connect::{classify, Hop};
use crate::forward::Upstream;
use crate::headers;
use crate::respond::{ProxyBody, ProxyError, Side};
use crate::sanitize::Sanitizer;
use crate::telemetry::metrics::UNKNOWN_PEER;
use crate::telemetry::{ConnMetrics, Observation, ObservedBody, Peer, Telemetry};

/// Everything the outbound side shares between connections.
pub struct Outbound {
    routes: Arc<RouteTable>,
    upstream: Upstream<PeerConnector>,
    telemetry: Arc<Telemetry>,
    unknown: Peer,
    sanitizer: Sanitizer,
}

impl Outbound {
    pub fn new(
        routes: Arc<RouteTable>,
        upstream: Upstream<PeerConnector>,
        telemetry: Arc<Telemetry>,
        sanitizer: Sanitizer,
    ) -> Arc<Self> {
        let unknown: Arc<str> = Arc::from(UNKNOWN_PEER);
        Arc::new(Outbound {
            routes,
            upstream,
            telemetry,
            unknown: Peer {
                id: unknown.clone(),
                label: unknown,
                addr: None,
            },
            sanitizer,
        })
    }

    pub fn telemetry(&self) -> &Arc<Telemetry> {
        &self.telemetry
    }

    /// Handles one request from the local app, observed as a CLIENT span.
    pub async fn handle(
        self: Arc<Self>,
        mut req: Request<Incoming>,
        client: SocketAddr,
        conn: Arc<ConnMetrics>,
    ) -> Result<Response<ObservedBody<ProxyBody>>, Infallible> {
        // Hop-by-hop headers, upgrades and the host are settled first, so
        // the route is chosen by the one host that goes on.
        let route = match self.sanitizer.apply(&mut req) {
            Ok(()) => self.route(&req),
            Err(refusal) => Err(ProxyError::Refused(refusal)),
        };
        let peer = match &route {
            Ok(route) => route.peer.clone(),
            Err(_) => self.unknown.clone(),
        };
        let obs = Observation::start(&self.telemetry, &conn, &mut req, peer, false);
        let result = match route {
            Ok(route) => self.proxy(req, &route).await,
            Err(e) => Err(e),
        };
        let resp = match result {
            Ok(resp) => resp.map(ProxyBody::Left),
            Err(err) => err.rescue(Side::Outbound { client }, Some(&self.telemetry.metrics)),
        };
        Ok(obs.respond(resp))
    }

    fn route(&self, req: &Request<Incoming>) -> Result<Arc<Route>, ProxyError> {
        let authority = headers::authority(req).ok_or(ProxyError::MissingHost)?;
        let host = headers::host_of(authority);
        match self.routes.get(host) {
            Some(route) => Ok(route.clone()),
            None => {
                let mut host: String = host.chars().take(253).collect();
                host.make_ascii_lowercase();
                Err(ProxyError::NoRoute { host })
            }
        }
    }

    async fn proxy(
        &self,
        mut req: Request<Incoming>,
        route: &Route,
    ) -> Result<Response<Incoming>, ProxyError> {
        // The route's pre-parsed authority keys the connection pool, never
        // the request's (`b:1001`, `b:1002`... all take route `b`: one pool,
        // not a connection per spelling). An HTTP/1 request's Host (made
        // the one host by the sanitiser) goes on as is; an HTTP/2 request's
        // `:authority` becomes the route's host.
        let authority: Authority = route.authority.clone();
        // The app is inside the trust boundary, but identity headers are
        // only ever set by the receiving sidecar.
        headers::strip_spoofable(req.headers_mut());
        self.upstream
            .forward(req.map(RequestBody::new), Scheme::HTTPS, authority)
            .await
            .map_err(|e| classify(&e, Hop::Peer))
    }
}
