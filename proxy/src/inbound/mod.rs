//! Inbound: peers connect with mutual TLS; the verified SPIFFE ID of the
//! peer's certificate is the caller's identity; requests go through a tower
//! stack and on to the local app over pooled plain-HTTP connections.
//!
//! [`serve_inbound`] accepts and verifies connections; for each it builds an
//! [`InboundConn`] (the target: who is calling, from where) and the
//! connection's [`stack`], so layers know the caller without any
//! per-request lookup. The whole request path is in [`stack`].

mod app;
mod conn;
mod identity_headers;
mod limits;
mod listener;
mod mux;
pub(crate) mod ratelimit;
mod targets;
mod to_app;

use std::sync::Arc;

use http::{Request, Response};
use tower::ServiceBuilder;

pub(crate) use app::AppConnector;
pub use conn::InboundConn;
pub(crate) use identity_headers::IdentityHeadersLayer;
pub(crate) use limits::BodyLimitLayer;
pub(crate) use listener::{sanitizer, serve_inbound, InboundListener};
pub(crate) use ratelimit::{RateLimitLayer, RateLimits};
pub(crate) use targets::AppTargets;
pub(crate) use to_app::ToApp;

use crate::authn::{AuthenticateLayer, Authn};
use crate::authz::{AuthorizeLayer, AuthzShared};
use crate::body::RequestBody;
use crate::observe::ObserveLayer;
use crate::sanitize::Sanitizer;
use crate::telemetry::{ObservedBody, Telemetry};

/// What every inbound connection's stack is built from.
pub(crate) struct Inbound {
    /// The app, by the port a connection is for.
    pub(crate) apps: AppTargets,
    pub(crate) sanitizer: Arc<Sanitizer>,
    /// `inbound.max_request_body`.
    pub(crate) max_request_body: Option<u64>,
    /// `rate_limit:`, when configured.
    pub(crate) rate_limits: Option<Arc<RateLimits>>,
    /// `authentication:`, when configured.
    pub(crate) authn: Option<Arc<Authn>>,
    /// `policy:`, when configured.
    pub(crate) authz: Option<Arc<AuthzShared>>,
    pub(crate) telemetry: Arc<Telemetry>,
}

/// The inbound request path for one connection, outermost step first.
/// Steps that are not configured are not in the stack at all
/// (`option_layer`: a `tower::util::Either` that passes straight through).
pub(crate) fn stack(
    conn: Arc<InboundConn>,
    inbound: &Inbound,
    to_app: ToApp,
) -> impl tower::Service<
    Request<RequestBody>,
    Response = Response<ObservedBody<crate::respond::ProxyBody>>,
    Error = std::convert::Infallible,
    Future: Send,
> + Send
       + 'static {
    ServiceBuilder::new()
        // The SERVER span (continuing the peer's context, handing the app
        // one whose parent is this span), metrics, the access log line;
        // every error below becomes its response here.
        .layer(ObserveLayer::new(
            conn.clone(),
            inbound.telemetry.clone(),
            inbound.authz.is_some(),
        ))
        // The request made unambiguous (hop-by-hop headers, upgrades, one
        // host, forged identity and claim headers, the path normalised)
        // or refused; then x-forwarded-client-cert from the certificate.
        .layer(IdentityHeadersLayer::new(
            conn.clone(),
            inbound.sanitizer.clone(),
        ))
        // 413 from Content-Length, or a streamed body cut off past it.
        .option_layer(inbound.max_request_body.map(BodyLimitLayer::new))
        // 429 per caller (and per caller and path prefix).
        .option_layer(
            inbound
                .rate_limits
                .clone()
                .map(|limits| RateLimitLayer::new(conn.clone(), limits)),
        )
        // JWTs: 401, or the verified claims in the request's extensions.
        .option_layer(inbound.authn.clone().map(AuthenticateLayer::new))
        // The policy decides (with the claims, and the body if asked).
        .option_layer(
            inbound
                .authz
                .clone()
                .map(|authz| AuthorizeLayer::new(conn.clone(), authz)),
        )
        .service(to_app)
}
