//! The bottom of the inbound stack: the request goes to the local app over
//! a pooled plain-HTTP connection, in the HTTP version the app speaks.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::header::{HeaderName, HeaderValue, HOST};
use http::uri::{Authority, Scheme};
use http::{Request, Response, Version};
use tokio::time::Timeout;

use super::AppConnector;
use crate::body::RequestBody;
use crate::config::AppProtocol;
use crate::connect::{classify, Hop};
use crate::forward::{ForwardFuture, Upstream};
use crate::respond::{ProxyBody, ProxyError};

static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");

/// Forwards to the local app; its failures are [`ProxyError`]s. Cheap to
/// clone: one `Arc`.
#[derive(Clone)]
pub(crate) struct ToApp {
    shared: Arc<AppUpstream>,
}

struct AppUpstream {
    app_authority: Authority,
    upstream: Upstream<AppConnector>,
    /// The app must answer (headers) within this: 504 otherwise.
    request_timeout: Duration,
    app_protocol: AppProtocol,
}

impl ToApp {
    pub(crate) fn new(
        app: SocketAddr,
        upstream: Upstream<AppConnector>,
        request_timeout: Duration,
        app_protocol: AppProtocol,
    ) -> ToApp {
        let app_authority = app
            .to_string()
            .parse()
            .unwrap_or_else(|_| Authority::from_static("localhost"));
        ToApp {
            shared: Arc::new(AppUpstream {
                app_authority,
                upstream,
                request_timeout,
                app_protocol,
            }),
        }
    }
}

impl tower::Service<Request<RequestBody>> for ToApp {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = ToAppFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> ToAppFuture {
        let shared = &*self.shared;
        // The connection pool is keyed by the URI's authority: always the
        // app's own (pre-parsed), never the caller's, or a caller could
        // open a connection to the app per host name it makes up. The
        // caller's host (checked by the sanitiser, the one the policy saw)
        // reaches an HTTP/1.1 app in Host; an HTTP/2 app gets the app's
        // address as `:authority` and the caller's host in
        // `x-forwarded-host` (usher's own: callers' are removed).
        let version = shared.app_protocol.version_for(&req);
        *req.version_mut() = version;
        let from_uri = |req: &Request<RequestBody>| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        };
        if version == Version::HTTP_2 {
            let host = from_uri(&req).or_else(|| req.headers_mut().remove(HOST));
            req.headers_mut().remove(HOST);
            if let Some(host) = host {
                req.headers_mut().insert(X_FORWARDED_HOST.clone(), host);
            }
        } else if let Some(host) = from_uri(&req) {
            // From an HTTP/2 caller; an HTTP/1 caller's Host is already
            // the one host (the sanitiser saw to it).
            req.headers_mut().insert(HOST, host);
        }
        let forward = shared
            .upstream
            .forward(req, Scheme::HTTP, shared.app_authority.clone());
        ToAppFuture {
            forward: tokio::time::timeout(shared.request_timeout, forward),
            timeout: shared.request_timeout,
        }
    }
}

pin_project_lite::pin_project! {
    /// The app's response within `inbound.request_timeout`, or why not.
    pub(crate) struct ToAppFuture {
        #[pin]
        forward: Timeout<ForwardFuture>,
        timeout: Duration,
    }
}

impl Future for ToAppFuture {
    type Output = Result<Response<ProxyBody>, ProxyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        Poll::Ready(match std::task::ready!(this.forward.poll(cx)) {
            Ok(Ok(resp)) => Ok(resp.map(ProxyBody::Left)),
            Ok(Err(e)) => Err(classify(&e, Hop::App)),
            Err(_elapsed) => Err(ProxyError::AppTimeout(*this.timeout)),
        })
    }
}
