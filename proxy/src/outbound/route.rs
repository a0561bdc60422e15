//! The outbound stack's first step: the request from the app is made
//! unambiguous (hop-by-hop headers, upgrades, one host, forged
//! `x-forwarded-client-cert` removed) and routed by that host. The route,
//! or why there is none, travels down with the request: the observe step
//! below labels the request with the route's peer, and a request without a
//! route comes back up as its error, through the one error path.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;

use super::routes::{Route, RouteTable};
use crate::body::RequestBody;
use crate::config::{UnknownAction, UnknownDestinations};
use crate::headers;
use crate::observe::ObservedRequest;
use crate::respond::ProxyError;
use crate::sanitize::Sanitizer;
use crate::telemetry::{Metrics, Peer};

/// A request from the app, with the route it takes (or why none).
pub(crate) struct OutboundRequest {
    pub(crate) route: Result<Arc<Route>, ProxyError>,
    pub(crate) http: Request<RequestBody>,
    /// No route, on a redirected connection whose original destination
    /// `outbound.unknown` passes through: sent there, as it came.
    pub(crate) passthrough: Option<SocketAddr>,
}

impl ObservedRequest for OutboundRequest {
    fn http_mut(&mut self) -> &mut Request<RequestBody> {
        &mut self.http
    }

    fn peer(&self) -> Option<&Peer> {
        self.route.as_ref().ok().map(|r| &r.peer)
    }
}

/// Built once per outbound listener; its services per connection.
#[derive(Clone)]
pub(crate) struct RouteLayer {
    routes: Arc<RouteTable>,
    sanitizer: Arc<Sanitizer>,
    unknown: Arc<UnknownDestinations>,
    metrics: Arc<Metrics>,
    /// The connection's original destination, when it was redirected.
    orig: Option<SocketAddr>,
}

impl RouteLayer {
    pub(crate) fn new(
        routes: Arc<RouteTable>,
        sanitizer: Arc<Sanitizer>,
        unknown: Arc<UnknownDestinations>,
        metrics: Arc<Metrics>,
    ) -> Self {
        RouteLayer {
            routes,
            sanitizer,
            unknown,
            metrics,
            orig: None,
        }
    }

    /// The layer for one connection, redirected from `orig` or not.
    pub(crate) fn for_connection(&self, orig: Option<SocketAddr>) -> RouteLayer {
        RouteLayer {
            orig,
            ..self.clone()
        }
    }
}

impl<S> tower::Layer<S> for RouteLayer {
    type Service = RouteRequest<S>;

    fn layer(&self, inner: S) -> RouteRequest<S> {
        RouteRequest {
            layer: self.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct RouteRequest<S> {
    layer: RouteLayer,
    inner: S,
}

impl<S> RouteRequest<S> {
    fn route(&self, req: &Request<RequestBody>) -> Result<Arc<Route>, ProxyError> {
        let authority = headers::authority(req).ok_or(ProxyError::MissingHost)?;
        let host = headers::host_of(authority);
        match self.layer.routes.get(host) {
            Some(route) => Ok(route.clone()),
            None => {
                let mut host: String = host.chars().take(253).collect();
                host.make_ascii_lowercase();
                Err(ProxyError::NoRoute { host })
            }
        }
    }
}

impl<S> tower::Service<Request<RequestBody>> for RouteRequest<S>
where
    S: tower::Service<OutboundRequest>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut http: Request<RequestBody>) -> S::Future {
        // The host is settled first, so the route is chosen by the one
        // host that goes on.
        let route = match self.layer.sanitizer.apply(&mut http) {
            Ok(()) => self.route(&http),
            Err(refusal) => Err(ProxyError::Refused(refusal)),
        };
        // No route on a redirected connection: `outbound.unknown` decides
        // whether it goes on to where the app sent it.
        let passthrough = match (&route, self.layer.orig) {
            (Err(ProxyError::NoRoute { .. }), Some(orig)) => {
                let passed = self.layer.unknown.action(orig) == UnknownAction::Passthrough;
                self.layer.metrics.unknown_destination("http", passed);
                passed.then_some(orig)
            }
            _ => None,
        };
        self.inner.call(OutboundRequest {
            route,
            http,
            passthrough,
        })
    }
}
