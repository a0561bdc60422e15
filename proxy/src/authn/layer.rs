//! The authentication step of the inbound stack: a request without a
//! valid token (where one is needed) ends here with
//! [`ProxyError::Unauthenticated`]; `respond` answers and logs it.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::header::HeaderValue;
use http::{Request, Response};

use super::verify::{verify, Reject};
use super::Authn;
use crate::body::RequestBody;
use crate::respond::{ProxyBody, ProxyError, Unauthenticated};

/// The verified claims of the request's token, for the policy input
/// (`input.usher.jwt.claims`).
#[derive(Clone, Debug)]
pub(crate) struct VerifiedClaims(pub(crate) Arc<serde_json::Value>);

/// Adds the authentication step (`authentication:`) to a stack.
#[derive(Clone)]
pub(crate) struct AuthenticateLayer {
    shared: Arc<Authn>,
}

impl AuthenticateLayer {
    pub(crate) fn new(shared: Arc<Authn>) -> Self {
        AuthenticateLayer { shared }
    }
}

impl<S> tower::Layer<S> for AuthenticateLayer {
    type Service = Authenticate<S>;

    fn layer(&self, inner: S) -> Authenticate<S> {
        Authenticate {
            shared: self.shared.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct Authenticate<S> {
    shared: Arc<Authn>,
    inner: S,
}

impl<S> tower::Service<Request<RequestBody>> for Authenticate<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Response<ProxyBody>, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> Self::Future {
        let shared = &*self.shared;
        // Headers usher fills from claims can only come from usher.
        for h in &shared.output_headers {
            req.headers_mut().remove(h);
        }
        // Underscore spellings of a token header reach CGI/WSGI apps as
        // the header itself, unverified: removed.
        strip_underscored(req.headers_mut(), &shared.locations);
        // Every location is looked at: at most one token, in one value of
        // one header. A value that starts with the scheme but is no
        // well-formed credential is a malformed token, not "no token", so
        // that nothing the app might read as a token passes unverified.
        let mut found: Option<(usize, String)> = None;
        let mut refused: Option<Reject> = None;
        for (i, (name, prefix)) in shared.locations.iter().enumerate() {
            let mut values = req.headers().get_all(name).iter();
            let Some(value) = values.next() else {
                continue;
            };
            if values.next().is_some() {
                refused = Some(Reject::Ambiguous);
                break;
            }
            match extract(value.as_bytes(), prefix) {
                Extracted::Token(t) => {
                    if found.is_some() {
                        refused = Some(Reject::Ambiguous);
                        break;
                    }
                    found = Some((i, t));
                }
                Extracted::Malformed => refused = refused.or(Some(Reject::Malformed)),
                Extracted::NotOurs => {}
            }
        }
        if let Some(reason) = refused {
            return refuse(Some(reason), None);
        }
        let Some((location, token)) = found else {
            if shared.required {
                return refuse(None, None);
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
                refuse(Some(reason), Some(issuer.into()))
            }
        }
    }
}

enum Extracted {
    Token(String),
    /// Starts like a credential of this location's scheme, but is not one.
    Malformed,
    /// Another scheme (`Basic ...`): not a token for usher.
    NotOurs,
}

/// The token in `value` for a location with `prefix` (`Bearer `): the
/// scheme case-insensitively, then one or more spaces or tabs (RFC 9110
/// §11.4), then the token; with an empty prefix, the whole value.
fn extract(value: &[u8], prefix: &str) -> Extracted {
    let scheme = prefix.trim_end().as_bytes();
    let spaced = scheme.len() < prefix.len();
    let rest = if scheme.is_empty() {
        value
    } else {
        match value.get(..scheme.len()) {
            Some(head) if head.eq_ignore_ascii_case(scheme) => &value[scheme.len()..],
            _ => return Extracted::NotOurs,
        }
    };
    if spaced && !matches!(rest.first(), Some(b' ' | b'\t')) {
        return Extracted::Malformed;
    }
    let token = rest.trim_ascii();
    match std::str::from_utf8(token) {
        Ok(t) if !t.is_empty() && t.is_ascii() => Extracted::Token(t.to_owned()),
        _ => Extracted::Malformed,
    }
}

/// Removes `x_jwt` where `x-jwt` is a token location.
fn strip_underscored(headers: &mut http::HeaderMap, locations: &[(http::HeaderName, String)]) {
    crate::sanitize::remove_where(headers, |k| {
        let k = k.as_str();
        k.contains('_')
            && locations
                .iter()
                .any(|(n, _)| crate::sanitize::spelled_as(n.as_str(), k))
    });
}

/// A claim as a header value: strings as they are, anything else as JSON.
fn claim_header(v: &serde_json::Value) -> Option<HeaderValue> {
    match v {
        serde_json::Value::String(s) => HeaderValue::from_str(s).ok(),
        other => HeaderValue::from_str(&other.to_string()).ok(),
    }
}

/// The 401 (challenge, log line, metric: all in `respond`).
fn refuse<F>(
    reason: Option<Reject>,
    issuer: Option<Box<str>>,
) -> Either<Ready<Result<Response<ProxyBody>, ProxyError>>, F> {
    Either::Left(ready(Err(ProxyError::Unauthenticated(Unauthenticated {
        reason,
        issuer,
    }))))
}
