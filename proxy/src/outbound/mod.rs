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
use crate::respond::{ProxyBody, ProxyError};

/// Everything the outbound side shares between connections.
pub struct Outbound {
    routes: Arc<RouteTable>,
    upstream: Upstream<PeerConnector>,
}

impl Outbound {
    pub fn new(routes: Arc<RouteTable>, upstream: Upstream<PeerConnector>) -> Arc<Self> {
        Arc::new(Outbound { routes, upstream })
    }

    /// Handles one request from the local app.
    pub async fn handle(
        self: Arc<Self>,
        req: Request<Incoming>,
        client: SocketAddr,
    ) -> Result<Response<ProxyBody>, Infallible> {
        Ok(match self.proxy(req).await {
            Ok(resp) => resp.map(ProxyBody::Left),
            Err(err) => {
                tracing::warn!(direction = "outbound", %client, error = %err, "request refused");
                err.into_response()
            }
        })
    }

    async fn proxy(&self, mut req: Request<Incoming>) -> Result<Response<Incoming>, ProxyError> {
        let authority = headers::authority(&req).ok_or(ProxyError::MissingHost)?;
        let host = headers::host_of(authority);
        let Some(route) = self.routes.get(host) else {
            let mut host: String = host.chars().take(253).collect();
            host.make_ascii_lowercase();
            return Err(ProxyError::NoRoute { host });
        };
        // The URI's authority (HTTP/2, absolute-form) is kept; an HTTP/1
        // request's Host goes on as is, and the route's pre-parsed authority
        // keys the connection pool (no per-request parsing).
        let authority: Authority = match req.uri().authority() {
            Some(a) => a.clone(),
            None => route.authority.clone(),
        };
        // The app is inside the trust boundary, but identity headers are
        // only ever set by the receiving sidecar.
        headers::strip_spoofable(req.headers_mut());
        self.upstream
            .forward(req.map(RequestBody::new), Scheme::HTTPS, authority)
            .await
            .map_err(|e| classify(&e, Hop::Peer))
    }
}
