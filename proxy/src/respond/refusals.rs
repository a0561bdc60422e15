//! The refusals of the inbound guards, as typed errors: each layer returns
//! one of these (inside a [`ProxyError`](super::ProxyError)) and
//! [`super`] turns it into the response, the log line and the metric.

use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, Response, StatusCode};

use super::{text, ProxyBody};
use crate::authn::Reject;

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

/// 401: no token where one is required, or a token that does not verify.
#[derive(Debug)]
pub(crate) struct Unauthenticated {
    /// `None`: no token at all (RFC 6750 §3.1: the challenge then carries
    /// no error code).
    pub(crate) reason: Option<Reject>,
    /// The issuer the token named, when it got that far (for the log).
    pub(crate) issuer: Option<Box<str>>,
}

impl Unauthenticated {
    pub(super) fn message(&self) -> String {
        match self.reason {
            None => "usher: a bearer token is required".into(),
            Some(r) => format!("usher: invalid token ({})", r.as_str()),
        }
    }

    /// The RFC 6750 challenge.
    pub(super) fn challenge(&self, headers: &mut HeaderMap) {
        let challenge = match self.reason {
            None => HeaderValue::from_static("Bearer realm=\"usher\""),
            Some(r) => HeaderValue::from_str(&format!(
                "Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"{}\"",
                r.as_str()
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\"")),
        };
        headers.insert(WWW_AUTHENTICATE, challenge);
    }
}

/// 429: the caller's bucket (or its route bucket) is empty.
#[derive(Debug)]
pub(crate) struct RateLimited {
    pub(crate) limit: u32,
    pub(crate) retry_after: Duration,
    /// `caller` or `route`: the metric's label.
    pub(crate) scope: &'static str,
    /// Set on the refusal that writes the (throttled) warn line: how many
    /// were refused since the last one.
    pub(crate) log_line: Option<u64>,
}

impl RateLimited {
    /// `Retry-After` and the IETF `RateLimit-*` headers: whole seconds,
    /// rounded up, at least one.
    pub(super) fn headers(&self, h: &mut HeaderMap) {
        let secs = self.retry_after.as_secs() + u64::from(self.retry_after.subsec_nanos() > 0);
        let secs = secs.max(1);
        h.insert(RETRY_AFTER, HeaderValue::from(secs));
        h.insert(LIMIT.clone(), HeaderValue::from(self.limit));
        h.insert(REMAINING.clone(), HeaderValue::from_static("0"));
        h.insert(RESET.clone(), HeaderValue::from(secs));
    }
}

/// A request the policy denied in enforce mode: the policy's status, body
/// and headers (the reason stays in the decision log).
#[derive(Debug)]
pub(crate) struct PolicyDenied {
    pub(crate) status: u16,
    pub(crate) body: Option<String>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) response_headers_to_add: Vec<(HeaderName, HeaderValue)>,
}

impl PolicyDenied {
    pub(crate) fn from_decision(decision: usher_policy::Decision) -> PolicyDenied {
        PolicyDenied {
            status: decision.http_status,
            body: decision.body,
            headers: decision.headers,
            response_headers_to_add: decision.response_headers_to_add,
        }
    }

    pub(super) fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::FORBIDDEN)
    }

    /// The policy's body as it wrote it (no newline added), else usher's.
    pub(super) fn into_response(self) -> Response<ProxyBody> {
        let status = self.status();
        let body = self
            .body
            .map(Bytes::from)
            .unwrap_or_else(|| Bytes::from_static(b"usher: request denied by policy\n"));
        let mut resp = text(status, body);
        if self.headers.iter().any(|(n, _)| n == CONTENT_TYPE) {
            resp.headers_mut().remove(CONTENT_TYPE);
        }
        append_headers(resp.headers_mut(), &self.headers);
        append_headers(resp.headers_mut(), &self.response_headers_to_add);
        resp
    }
}

/// Appends every pair (a name may repeat).
pub(crate) fn append_headers(headers: &mut HeaderMap, add: &[(HeaderName, HeaderValue)]) {
    for (name, value) in add {
        headers.append(name.clone(), value.clone());
    }
}
