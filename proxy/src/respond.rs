//! Every error the proxy can meet, mapped to a response in one place.
//!
//! Bodies are short, plain text and name no internals: no upstream
//! addresses, no library messages, no stack traces. The detail goes to the
//! log, where operators can see it; the client learns what happened.

use bytes::Bytes;
use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Response, StatusCode};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::telemetry::ErrorKind;

/// The body of every response usher produces: either a streamed upstream
/// body or a small generated one. An enum, not a box: no allocation.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// Why usher answered a request itself instead of the upstream.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
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
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
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
        }
    }

    /// What the client is told. Never includes an address or a library
    /// message; only values the client itself sent or the mesh's public
    /// names (SPIFFE IDs in the route) appear.
    pub fn public_message(&self) -> String {
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
        }
    }

    /// A short, stable name for the failure: `error.type` on spans, the
    /// `error` field of the access log.
    pub fn kind(&self) -> &'static str {
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
        }
    }

    pub fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let kind = self.kind();
        let mut body = self.public_message();
        body.push('\n');
        let mut resp = text(status, body);
        resp.extensions_mut().insert(ErrorKind(kind));
        resp
    }
}

/// A small plain-text response generated by usher.
pub fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<ProxyBody> {
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
