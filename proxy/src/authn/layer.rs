//! The authentication step of the inbound stack.

use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Request, Response, StatusCode};

use super::verify::{verify, Reject};
use super::Authn;
use crate::body::RequestBody;
use crate::inbound::InboundConn;
use crate::respond::{text, ProxyBody};
use crate::telemetry::ErrorKind;

/// The verified claims of the request's token, for the policy input
/// (`input.usher.jwt.claims`).
#[derive(Clone, Debug)]
pub struct VerifiedClaims(pub Arc<serde_json::Value>);

#[derive(Clone)]
pub struct Authenticate<S> {
    conn: Arc<InboundConn>,
    shared: Arc<Authn>,
    inner: S,
}

impl<S> Authenticate<S> {
    pub fn new(conn: Arc<InboundConn>, shared: Arc<Authn>, inner: S) -> Self {
        Authenticate {
            conn,
            shared,
            inner,
        }
    }
}

impl<S> tower::Service<Request<RequestBody>> for Authenticate<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = Infallible>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ProxyBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> Self::Future {
        let shared = &*self.shared;
        // Headers usher fills from claims can only come from usher.
        for h in &shared.output_headers {
            req.headers_mut().remove(h);
        }
        let found = shared
            .locations
            .iter()
            .enumerate()
            .find_map(|(i, (name, prefix))| {
                let value = req.headers().get(name)?.to_str().ok()?;
                let token = strip_prefix_ci(value, prefix)?;
                Some((i, token.trim().to_owned()))
            });
        let Some((location, token)) = found else {
            if shared.required {
                tracing::warn!(
                    target: "usher::audit",
                    peer = %self.conn.peer,
                    reason = "no token",
                    "request refused: a bearer token is required"
                );
                shared.metrics.authn_failure("missing");
                return Either::Left(ready(Ok(unauthorized(None))));
            }
            return Either::Right(self.inner.call(req));
        };
        match verify(
            &token,
            &shared.issuers,
            shared.leeway_secs,
            shared.max_token_bytes,
        ) {
            Ok(verified) => {
                // `verify` returns the index of one of these issuers.
                let rule = shared.rules.get(verified.issuer);
                for (claim, header) in rule.iter().flat_map(|r| &r.claims_to_headers) {
                    if let Some(value) = verified.claims.get(claim).and_then(claim_header) {
                        req.headers_mut().insert(header.clone(), value);
                    }
                }
                if !rule.is_some_and(|r| r.forward) {
                    if let Some((name, _)) = shared.locations.get(location) {
                        req.headers_mut().remove(name);
                    }
                }
                req.extensions_mut()
                    .insert(VerifiedClaims(Arc::new(verified.claims)));
                Either::Right(self.inner.call(req))
            }
            Err((issuer, reason)) => {
                let issuer = issuer
                    .and_then(|i| shared.issuers.get(i))
                    .map_or("", |i| i.issuer.as_str());
                tracing::warn!(
                    target: "usher::audit",
                    peer = %self.conn.peer,
                    issuer,
                    reason = reason.as_str(),
                    "request refused: invalid token"
                );
                shared.metrics.authn_failure(reason.label());
                Either::Left(ready(Ok(unauthorized(Some(reason)))))
            }
        }
    }
}

/// `Bearer abc` with prefix `Bearer `: the scheme is case-insensitive.
fn strip_prefix_ci<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    if prefix.is_empty() {
        return Some(value);
    }
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
}

/// A claim as a header value: strings as they are, anything else as JSON.
fn claim_header(v: &serde_json::Value) -> Option<HeaderValue> {
    match v {
        serde_json::Value::String(s) => HeaderValue::from_str(s).ok(),
        other => HeaderValue::from_str(&other.to_string()).ok(),
    }
}

/// 401 with the RFC 6750 challenge. No token: no error code (§3.1).
fn unauthorized(reason: Option<Reject>) -> Response<ProxyBody> {
    let (challenge, body) = match reason {
        None => (
            HeaderValue::from_static("Bearer realm=\"usher\""),
            "usher: a bearer token is required\n".to_string(),
        ),
        Some(r) => (
            HeaderValue::from_str(&format!(
                "Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"{}\"",
                r.as_str()
            ))
            .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"invalid_token\"")),
            format!("usher: invalid token ({})\n", r.as_str()),
        ),
    };
    let mut resp = text(StatusCode::UNAUTHORIZED, body);
    resp.headers_mut().insert(WWW_AUTHENTICATE, challenge);
    resp.extensions_mut().insert(ErrorKind("unauthenticated"));
    resp
}
