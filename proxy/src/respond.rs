//! Every error the proxy can meet, mapped in one place to what the caller
//! sees (status, headers, body), what the log says and the metrics count,
//! and the `error.type` of the request's span and access log line.
//!
//! Layers never build an error response themselves: each returns a
//! [`ProxyError`] (a transport failure, or a refusal of its own:
//! [`Unauthenticated`], [`RateLimited`], [`PolicyDenied`], …), and the
//! observe layer at the top of both stacks hands it to
//! [`ProxyError::rescue`].
//!
//! Bodies are short, plain text and name no internals: no upstream
//! addresses, no library messages, no stack traces. The detail goes to the
//! log, where operators can see it; the client learns what happened.

mod refusals;

use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

pub(crate) use refusals::{append_headers, PolicyDenied, RateLimited, Unauthenticated};

use crate::telemetry::{ErrorKind, Metrics, PolicyVerdict};

/// The body of every response usher produces: either a streamed upstream
/// body or a small generated one. An enum, not a box: no allocation.
pub(crate) type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Why usher answered a request itself instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ProxyError {
    #[error("request has no Host header or :authority")]
    MissingHost,
    #[error("no route for host {host:?}")]
    NoRoute { host: String },
    #[error("the local app is unavailable: {reason}")]
    AppUnavailable { reason: String },
    #[error("the app connection failed mid-request: {reason}")]
    AppFailed { reason: String },
    #[error("the peer is unavailable: {reason}")]
    PeerUnavailable { reason: String },
    #[error("{0}")]
    PeerIdentityMismatch(crate::identity::IdentityMismatch),
    #[error("TLS with the peer failed: {reason}")]
    PeerTls { reason: String },
    #[error("the peer connection failed mid-request: {reason}")]
    PeerFailed { reason: String },
    #[error("the local app did not answer within {0:?}")]
    AppTimeout(std::time::Duration),
    #[error("the request body is larger than {max} bytes")]
    BodyTooLarge { max: u64 },
    #[error("request refused: {0}")]
    Refused(crate::sanitize::Refusal),
    /// The caller's body broke off or was malformed (a bad chunk size):
    /// the caller's fault, not the upstream's.
    #[error("the request body could not be read: {reason}")]
    BodyUnreadable { reason: String },
    /// `authentication:`: no token where one is required, or a bad one.
    #[error("unauthenticated: {}", .0.reason.map_or("no token", |r| r.as_str()))]
    Unauthenticated(Unauthenticated),
    /// `rate_limit:`: the caller is over its limit.
    #[error("rate limited ({} bucket, limit {})", .0.scope, .0.limit)]
    RateLimited(RateLimited),
    /// `policy:` in enforce mode denied the request.
    #[error("denied by policy (status {})", .0.status)]
    PolicyDenied(PolicyDenied),
}

/// Which side a request came in on, and who sent it, for the log line.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Side<'a> {
    /// From a peer sidecar: its verified SPIFFE ID.
    Inbound { peer: &'a str },
    /// From the local app: its socket address.
    Outbound { client: SocketAddr },
}

impl ProxyError {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ProxyError::MissingHost => StatusCode::BAD_REQUEST,
            ProxyError::NoRoute { .. } => StatusCode::NOT_FOUND,
            ProxyError::AppUnavailable { .. } | ProxyError::PeerUnavailable { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            ProxyError::AppFailed { .. }
            | ProxyError::PeerIdentityMismatch(_)
            | ProxyError::PeerTls { .. }
            | ProxyError::PeerFailed { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::AppTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::Refused(r) => r.status(),
            ProxyError::BodyUnreadable { .. } => StatusCode::BAD_REQUEST,
            ProxyError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ProxyError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::PolicyDenied(d) => d.status(),
        }
    }

    /// What the client is told. Never includes an address or a library
    /// message; only values the client itself sent or the mesh's public
    /// names (SPIFFE IDs in the route) appear.
    pub(crate) fn public_message(&self) -> String {
        match self {
            ProxyError::MissingHost => "usher: the request has no Host header".into(),
            ProxyError::NoRoute { host } => format!("usher: no route for host \"{host}\""),
            ProxyError::AppUnavailable { .. } => "usher: the local service is unavailable".into(),
            ProxyError::AppFailed { .. } => "usher: the local service closed the connection".into(),
            ProxyError::PeerUnavailable { .. } => "usher: the destination is unavailable".into(),
            ProxyError::PeerIdentityMismatch(m) => format!(
                "usher: peer identity did not match: expected {}, the peer presented {}",
                m.expected, m.presented
            ),
            ProxyError::PeerTls { .. } => "usher: mutual TLS with the destination failed".into(),
            ProxyError::PeerFailed { .. } => "usher: the destination closed the connection".into(),
            ProxyError::AppTimeout(_) => "usher: the local service did not answer in time".into(),
            ProxyError::BodyTooLarge { max } => {
                format!("usher: the request body is larger than {max} bytes")
            }
            // Fixed texts: nothing the caller sent is echoed back.
            ProxyError::Refused(r) => format!("usher: {r}"),
            ProxyError::BodyUnreadable { .. } => "usher: the request body could not be read".into(),
            ProxyError::Unauthenticated(u) => u.message(),
            ProxyError::RateLimited(_) => "usher: rate limit exceeded; retry later".into(),
            ProxyError::PolicyDenied(_) => "usher: request denied by policy".into(),
        }
    }

    /// A short, stable name for the failure.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            ProxyError::MissingHost => "missing_host",
            ProxyError::NoRoute { .. } => "no_route",
            ProxyError::AppUnavailable { .. } => "app_unavailable",
            ProxyError::AppFailed { .. } => "app_failed",
            ProxyError::PeerUnavailable { .. } => "peer_unavailable",
            ProxyError::PeerIdentityMismatch(_) => "peer_identity_mismatch",
            ProxyError::PeerTls { .. } => "peer_tls",
            ProxyError::PeerFailed { .. } => "peer_failed",
            ProxyError::AppTimeout(_) => "app_timeout",
            ProxyError::BodyTooLarge { .. } => "body_too_large",
            ProxyError::Refused(r) => r.kind(),
            ProxyError::BodyUnreadable { .. } => "body_unreadable",
            ProxyError::Unauthenticated(_) => "unauthenticated",
            ProxyError::RateLimited(_) => "rate_limited",
            ProxyError::PolicyDenied(_) => "policy_denied",
        }
    }

    /// `error.type` on spans, the `error` field of the access log: the
    /// kind, except for a policy denial, which is the policy's answer
    /// rather than a failure (spans carry it as `usher.policy.decision`).
    pub(crate) fn error_type(&self) -> Option<&'static str> {
        match self {
            ProxyError::PolicyDenied(_) => None,
            other => Some(other.kind()),
        }
    }

    /// The response the caller gets, tagged for telemetry (its
    /// `error.type`, the policy's verdict).
    pub(crate) fn into_response(self) -> Response<ProxyBody> {
        let error_type = self.error_type();
        let mut resp = match self {
            ProxyError::PolicyDenied(denied) => {
                let mut resp = denied.into_response();
                resp.extensions_mut().insert(PolicyVerdict::Deny);
                resp
            }
            other => {
                let mut body = other.public_message();
                body.push('\n');
                let mut resp = text(other.status(), body);
                match &other {
                    ProxyError::Unauthenticated(u) => u.challenge(resp.headers_mut()),
                    ProxyError::RateLimited(r) => r.headers(resp.headers_mut()),
                    _ => {}
                }
                resp
            }
        };
        if let Some(kind) = error_type {
            resp.extensions_mut().insert(ErrorKind(kind));
        }
        resp
    }

    /// Logs and counts the error, then answers it: the one place every
    /// error of either direction ends up.
    pub(crate) fn rescue(self, side: Side<'_>, metrics: Option<&Metrics>) -> Response<ProxyBody> {
        if let Some(metrics) = metrics {
            self.count(metrics);
        }
        self.log(side);
        self.into_response()
    }

    fn count(&self, metrics: &Metrics) {
        match self {
            ProxyError::Unauthenticated(u) => {
                metrics.authn_failure(u.reason.map_or("missing", |r| r.label()))
            }
            ProxyError::RateLimited(r) => metrics.rate_limited(r.scope),
            // Policy decisions are counted by the policy step, allows too.
            _ => {}
        }
    }

    fn log(&self, side: Side<'_>) {
        let peer = match side {
            Side::Outbound { client } => {
                tracing::warn!(direction = "outbound", %client, error = %self, "request refused");
                return;
            }
            Side::Inbound { peer } => peer,
        };
        match self {
            ProxyError::Unauthenticated(Unauthenticated { reason: None, .. }) => tracing::warn!(
                target: "usher::audit",
                peer,
                reason = "no token",
                "request refused: a bearer token is required"
            ),
            ProxyError::Unauthenticated(Unauthenticated {
                reason: Some(reason),
                issuer: Some(issuer),
            }) => tracing::warn!(
                target: "usher::audit",
                peer,
                issuer = &**issuer,
                reason = reason.as_str(),
                "request refused: invalid token"
            ),
            ProxyError::Unauthenticated(Unauthenticated {
                reason: Some(reason),
                issuer: None,
            }) => tracing::warn!(
                target: "usher::audit",
                peer,
                reason = reason.as_str(),
                "request refused: invalid token"
            ),
            ProxyError::RateLimited(r) => {
                // Throttled by the rate limiter: at most a line a second.
                if let Some(n) = r.log_line {
                    tracing::warn!(
                        target: "usher::ratelimit",
                        peer,
                        scope = r.scope,
                        limit = r.limit,
                        refused_since_last_line = n,
                        "request refused: rate limit"
                    );
                }
            }
            // Every decision, allow or deny, is in the decision log.
            ProxyError::PolicyDenied(_) => {}
            ProxyError::Refused(refusal) => {
                tracing::debug!(direction = "inbound", peer, %refusal, "request refused")
            }
            // The caller's own fault: not a warning. A body over the limit
            // is as plain a refusal as the sanitiser's (debug); a body that
            // broke off mid-stream is worth seeing (info).
            ProxyError::BodyTooLarge { .. } => {
                tracing::debug!(direction = "inbound", peer, error = %self, "client error")
            }
            ProxyError::BodyUnreadable { .. } => {
                tracing::info!(direction = "inbound", peer, error = %self, "client error")
            }
            _ => tracing::warn!(direction = "inbound", peer, error = %self, "request failed"),
        }
    }
}

/// A small plain-text response generated by usher.
pub(crate) fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(body.into())));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

#[cfg(test)]
mod tests;
