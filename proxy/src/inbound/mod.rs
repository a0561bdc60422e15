//! Inbound: peers connect with mutual TLS; the verified SPIFFE ID of the
//! peer's certificate is the caller's identity; requests go through a tower
//! stack and on to the local app over pooled plain-HTTP connections.
//!
//! The stack is built per connection from an [`InboundConn`] (the target:
//! who is calling, from where), so layers know the caller without any
//! per-request lookup. Authorization, rate limiting and tracing layers slot
//! in around [`ToApp`] in [`stack`].

mod app;
mod identity_headers;
mod limits;
mod maybe;
mod observe;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Version};
use usher_ca::SpiffeId;

pub use app::AppConnector;
pub use identity_headers::{IdentityHeaders, IdentityHeadersLayer};
pub use limits::BodyLimit;
pub use maybe::Maybe;
pub use observe::{Observe, ObserveFuture};

use crate::authn::{Authenticate, Authn};
use crate::authz::{Authorize, AuthzShared};
use crate::body::RequestBody;
use crate::config::AppProtocol;
use crate::connect::{classify, Hop};
use crate::forward::Upstream;
use crate::ratelimit::{RateLimit, RateLimits};
use crate::respond::{ProxyBody, ProxyError};
use crate::sanitize::Sanitizer;

static X_FORWARDED_HOST: http::header::HeaderName =
    http::header::HeaderName::from_static("x-forwarded-host");
use crate::telemetry::{ConnMetrics, Direction, Peer, Telemetry};

/// One accepted, verified mTLS connection: the target every inbound layer
/// is built for.
#[derive(Debug)]
pub struct InboundConn {
    pub peer: SpiffeId,
    pub remote: SocketAddr,
    /// `By=<own>;URI=<peer>`, built once per connection.
    pub xfcc: HeaderValue,
    /// The caller as telemetry labels it (its metric label is resolved
    /// once per connection).
    pub peer_info: Peer,
    /// Closes this connection on a flood of cancelled requests.
    pub resets: Arc<crate::serve::ResetGuard>,
}

impl InboundConn {
    pub fn new(
        own: &SpiffeId,
        peer: SpiffeId,
        remote: SocketAddr,
        telemetry: &Telemetry,
        close: tokio_util::sync::CancellationToken,
    ) -> InboundConn {
        let value = format!("By={own};URI={peer}");
        // SPIFFE IDs are restricted to visible ASCII, so this cannot fail;
        // fall back to an empty value rather than panic.
        let xfcc = HeaderValue::from_maybe_shared(Bytes::from(value))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        let peer_info = Peer {
            id: Arc::from(peer.as_str()),
            label: telemetry.metrics.peer_label(peer.as_str()),
            addr: Some(remote),
        };
        InboundConn {
            peer,
            remote,
            xfcc,
            peer_info,
            resets: Arc::new(crate::serve::ResetGuard::new(close)),
        }
    }
}

/// Shared by every inbound connection.
pub struct Inbound {
    app_authority: Authority,
    upstream: Upstream<AppConnector>,
    /// The app must answer (headers) within this: 504 otherwise.
    request_timeout: Duration,
    max_request_body: Option<u64>,
    authn: Option<Arc<Authn>>,
    rate_limits: Option<Arc<RateLimits>>,
    sanitizer: Arc<Sanitizer>,
    app_protocol: AppProtocol,
}

/// The guards of the inbound stack (authentication and rate limits are
/// optional).
#[derive(Default)]
pub struct Guards {
    pub authn: Option<Arc<Authn>>,
    pub rate_limits: Option<Arc<RateLimits>>,
    pub sanitizer: Arc<Sanitizer>,
    pub app_protocol: AppProtocol,
}

impl Inbound {
    pub fn new(
        app: SocketAddr,
        upstream: Upstream<AppConnector>,
        request_timeout: Duration,
        max_request_body: Option<u64>,
        guards: Guards,
    ) -> Arc<Inbound> {
        let app_authority = app
            .to_string()
            .parse()
            .unwrap_or_else(|_| Authority::from_static("localhost"));
        Arc::new(Inbound {
            app_authority,
            upstream,
            request_timeout,
            max_request_body,
            authn: guards.authn,
            rate_limits: guards.rate_limits,
            sanitizer: guards.sanitizer,
            app_protocol: guards.app_protocol,
        })
    }
}

/// The policy step and below.
type Authorized = Maybe<Authorize<ToApp>, ToApp>;
/// Authentication and below.
type Authenticated = Maybe<Authenticate<Authorized>, Authorized>;
/// The whole stack under observation.
pub type InboundStack =
    Observe<IdentityHeaders<BodyLimit<Maybe<RateLimit<Authenticated>, Authenticated>>>>;

/// The inbound request path for one connection, outermost layer first:
/// observation (span, metrics, access log), the request made unambiguous
/// and identity headers set (hop-by-hop, upgrades, host, path, forged
/// identity headers removed, xfcc set), the body size limit, the caller's rate limit, JWT
/// authentication, authorization by policy, then the app. The optional
/// steps are pass-throughs when not configured.
pub fn stack(
    conn: Arc<InboundConn>,
    shared: Arc<Inbound>,
    authz: Option<&Arc<AuthzShared>>,
    telemetry: &Arc<Telemetry>,
) -> InboundStack {
    let max_body = shared.max_request_body;
    let authn = shared.authn.clone();
    let rate_limits = shared.rate_limits.clone();
    let sanitizer = shared.sanitizer.clone();
    let to_app = ToApp { shared };
    let authorize = match authz {
        Some(authz) => Maybe::On(Authorize::new(conn.clone(), authz.clone(), to_app)),
        None => Maybe::Off(to_app),
    };
    let authenticate = match authn {
        Some(authn) => Maybe::On(Authenticate::new(authn, authorize)),
        None => Maybe::Off(authorize),
    };
    let limited = match rate_limits {
        Some(limits) => Maybe::On(RateLimit::new(conn.clone(), limits, authenticate)),
        None => Maybe::Off(authenticate),
    };
    let body_limit = BodyLimit::new(max_body, limited);
    let identity = tower::Layer::layer(
        &IdentityHeadersLayer::new(conn.clone(), sanitizer),
        body_limit,
    );
    let metrics = Arc::new(ConnMetrics::new(
        telemetry.metrics.clone(),
        Direction::Inbound,
    ));
    Observe::new(conn, telemetry.clone(), metrics, authz.is_some(), identity)
}

/// The innermost service: forwards to the local app and maps failures to
/// responses.
#[derive(Clone)]
pub struct ToApp {
    shared: Arc<Inbound>,
}

impl tower::Service<Request<RequestBody>> for ToApp {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move {
            // The connection pool is keyed by the URI's authority: always
            // the app's own (pre-parsed), never the caller's, or a caller
            // could open a connection to the app per host name it makes up.
            // The caller's host (checked by the sanitiser, the one the
            // policy saw) reaches an HTTP/1.1 app in Host; an HTTP/2 app
            // gets the app's address as `:authority` and the caller's host
            // in `x-forwarded-host` (usher's own: callers' are removed).
            let mut req = req;
            let version = shared.app_protocol.version_for(&req);
            *req.version_mut() = version;
            let from_uri = || {
                req.uri()
                    .authority()
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
            };
            if version == Version::HTTP_2 {
                let host = from_uri().or_else(|| req.headers_mut().remove(HOST));
                req.headers_mut().remove(HOST);
                if let Some(host) = host {
                    req.headers_mut().insert(X_FORWARDED_HOST.clone(), host);
                }
            } else if let Some(host) = from_uri() {
                // From an HTTP/2 caller; an HTTP/1 caller's Host is already
                // the one host (the sanitiser saw to it).
                req.headers_mut().insert(HOST, host);
            }
            let authority = shared.app_authority.clone();
            let forward = shared.upstream.forward(req, Scheme::HTTP, authority);
            let Ok(result) = tokio::time::timeout(shared.request_timeout, forward).await else {
                return Err(ProxyError::AppTimeout(shared.request_timeout));
            };
            match result {
                Ok(resp) => Ok(resp.map(ProxyBody::Left)),
                Err(e) => Err(classify(&e, Hop::App)),
            }
        })
    }
}
