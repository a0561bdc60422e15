//! The authorization layer of the inbound stack: builds the OPA-Envoy input
//! from the request, asks the policy in force, logs the decision, and then
//! lets the request through (changing headers as the decision says) or
//! ends it with [`ProxyError::PolicyDenied`] (answered by `respond`).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Request, Response, Version};
use usher_ca::SpiffeId;
use usher_policy::{BodyInput, RequestInput};

use super::decision_log::log_decision;
use super::future::AuthorizeFuture;
use super::PolicyStore;
use crate::body::RequestBody;
use crate::config::PolicyMode;
use crate::respond::{append_headers, PolicyDenied, ProxyBody, ProxyError};
use crate::target::{PeerIdentity, RemoteAddr};
use crate::telemetry::{Metrics, PolicyVerdict};

static REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Shared by every inbound connection when a policy is configured.
pub(crate) struct AuthzShared {
    pub(crate) store: Arc<PolicyStore>,
    pub(crate) own_id: SpiffeId,
    /// The inbound listener's address: `destination.address`.
    pub(crate) local_addr: SocketAddr,
    ids: RequestIds,
    metrics: Arc<Metrics>,
}

impl AuthzShared {
    pub(crate) fn new(
        store: Arc<PolicyStore>,
        own_id: SpiffeId,
        local_addr: SocketAddr,
        metrics: Arc<Metrics>,
    ) -> Arc<AuthzShared> {
        Arc::new(AuthzShared {
            store,
            own_id,
            local_addr,
            ids: RequestIds::new(),
            metrics,
        })
    }
}

/// Request ids for requests that arrive without `x-request-id`: a random
/// per-process prefix and a counter (one atomic add, no lock).
struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl RequestIds {
    fn new() -> RequestIds {
        RequestIds {
            prefix: fastrand::u64(..),
            next: AtomicU64::new(1),
        }
    }

    fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}-{n:x}", self.prefix)
    }
}

/// Adds the policy step to a connection's stack: `T` says who calls
/// (`source.principal`) and from where (`source.address`).
pub(crate) struct AuthorizeLayer<T> {
    target: Arc<T>,
    shared: Arc<AuthzShared>,
}

impl<T> AuthorizeLayer<T> {
    pub(crate) fn new(target: Arc<T>, shared: Arc<AuthzShared>) -> Self {
        AuthorizeLayer { target, shared }
    }
}

impl<T, S> tower::Layer<S> for AuthorizeLayer<T> {
    type Service = Authorize<T, S>;

    fn layer(&self, inner: S) -> Authorize<T, S> {
        Authorize {
            target: self.target.clone(),
            shared: self.shared.clone(),
            inner,
        }
    }
}

pub(crate) struct Authorize<T, S> {
    target: Arc<T>,
    shared: Arc<AuthzShared>,
    inner: S,
}

impl<T, S: Clone> Clone for Authorize<T, S> {
    fn clone(&self) -> Self {
        Authorize {
            target: self.target.clone(),
            shared: self.shared.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S> tower::Service<Request<RequestBody>> for Authorize<T, S>
where
    T: PeerIdentity + RemoteAddr,
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>
        + Clone,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = AuthorizeFuture<T, S, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let (mut parts, body) = req.into_parts();
        let with_body = self.shared.store.config().with_body.as_ref();
        let Some(max) = with_body.map(|w| w.max_bytes) else {
            // Decided here and now: the next step is called right away.
            return match decide(&*self.target, &self.shared, &mut parts, None) {
                Ok(verdict) => AuthorizeFuture::next(
                    self.inner.call(Request::from_parts(parts, body)),
                    verdict,
                ),
                Err(err) => AuthorizeFuture::refused(err),
            };
        };
        // The policy reads the body first; the next step is called once the
        // decision is made, so the future takes the service that was polled
        // ready (tower's rule) and leaves a clone here. Only on this path:
        // the service below is `ToApp`, one `Arc`.
        let clone = self.inner.clone();
        let ready = std::mem::replace(&mut self.inner, clone);
        AuthorizeFuture::reading(
            body.read_prefix(max),
            parts,
            self.target.clone(),
            self.shared.clone(),
            ready,
        )
    }
}

/// Builds the policy input, evaluates the policy in force, logs and counts
/// the decision; an allow's header changes are applied to `parts`.
pub(super) fn decide<T: PeerIdentity + RemoteAddr>(
    target: &T,
    shared: &AuthzShared,
    parts: &mut http::request::Parts,
    body: Option<&BodyInput>,
) -> Result<Verdict, ProxyError> {
    let request_id = match parts.headers.get(&REQUEST_ID).and_then(|v| v.to_str().ok()) {
        Some(id) => id.to_owned(),
        None => {
            let id = shared.ids.next();
            if let Ok(v) = HeaderValue::from_str(&id) {
                parts.headers.insert(REQUEST_ID.clone(), v);
            }
            id
        }
    };

    let loaded = shared.store.current();
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let host = crate::headers::authority_of_parts(parts).unwrap_or("");
    let input = RequestInput {
        source_principal: target.peer_id().map(SpiffeId::as_str),
        source_address: target.remote_addr(),
        destination_principal: shared.own_id.as_str(),
        destination_address: shared.local_addr,
        method: parts.method.as_str(),
        path,
        host,
        scheme: if target.peer_id().is_some() {
            "https"
        } else {
            "http"
        },
        protocol: protocol(parts.version),
        headers: &parts.headers,
        request_id: &request_id,
        body,
        jwt_claims: parts
            .extensions
            .get::<crate::authn::VerifiedClaims>()
            .map(|c| &*c.0),
    };
    let decision = loaded.policy.evaluate(&input);
    let mode = shared.store.mode();
    log_decision(
        target.peer_id(),
        parts,
        &decision,
        loaded.policy.revision(),
        mode,
        shared.store.config().decision_log.allow_sample_rate,
    );
    drop(loaded);
    shared
        .metrics
        .policy_decision(mode == PolicyMode::Audit, decision.allowed);

    if !decision.allowed {
        if mode == PolicyMode::Enforce {
            return Err(ProxyError::PolicyDenied(PolicyDenied::from_decision(
                decision,
            )));
        }
        // Audit: the request goes on untouched, as if no policy ran.
        return Ok(Verdict::AuditDeny);
    }
    for name in &decision.request_headers_to_remove {
        parts.headers.remove(name);
    }
    set_headers(&mut parts.headers, &decision.headers);
    Ok(Verdict::Allow {
        response_headers: decision.response_headers_to_add,
    })
}

/// What the decision says to do with the response from the next step.
pub(super) enum Verdict {
    Allow {
        /// The decision's `response_headers_to_add`.
        response_headers: Vec<(HeaderName, HeaderValue)>,
    },
    /// Denied, let through in audit mode: tagged for the span.
    AuditDeny,
}

impl Verdict {
    pub(super) fn apply(self, resp: &mut Response<ProxyBody>) {
        match self {
            Verdict::Allow { response_headers } => {
                append_headers(resp.headers_mut(), &response_headers)
            }
            Verdict::AuditDeny => {
                resp.extensions_mut().insert(PolicyVerdict::AuditDeny);
            }
        }
    }
}

fn protocol(v: Version) -> &'static str {
    match v {
        Version::HTTP_2 => "HTTP/2",
        Version::HTTP_10 => "HTTP/1.0",
        Version::HTTP_3 => "HTTP/3",
        _ => "HTTP/1.1",
    }
}

/// Replaces each named header with the decision's value(s).
fn set_headers(headers: &mut HeaderMap, add: &[(HeaderName, HeaderValue)]) {
    for (name, _) in add {
        headers.remove(name);
    }
    append_headers(headers, add);
}
