//! What a caller can shape in a request, made unambiguous before any check
//! runs, so that the policy, authentication, rate limits and the app all
//! see the same request:
//!
//! - hop-by-hop headers go first, so that `Connection: <name>` can no
//!   longer remove a header usher sets afterwards (identity, claims);
//! - protocol upgrades pass only when configured (WebSocket by default);
//!   `h2c` upgrades are stripped (the request goes on as plain HTTP/1.1),
//!   anything else is refused, and so is `CONNECT`;
//! - one host per request: two `Host` headers, a `host` that differs from
//!   HTTP/2's `:authority`, or no host at all are refused; an absolute-form
//!   target's authority replaces `Host` (RFC 9112 §3.2.2);
//! - headers only usher may set are removed in every spelling, including
//!   `_` for `-` (CGI, WSGI, PHP and nginx map both to one variable);
//! - the path is normalised ([`path`]) and the app is sent the very path
//!   the checks saw.
//!
//! Both listeners run it; the inbound one with path normalisation.

pub mod path;

use http::header::{HeaderMap, HeaderName, HeaderValue, HOST, TRAILER, UPGRADE};
use http::uri::{Authority, Parts, PathAndQuery, Uri};
use http::{Method, Request, StatusCode, Version};

pub use path::{EscapedSlashes, PathError, PathOptions};

use crate::headers;

static HTTP2_SETTINGS: HeaderName = HeaderName::from_static("http2-settings");

/// Headers that say where a request came from, or change what it means
/// to some frameworks (the path: IIS/Symfony's `X-Original-URL`; the
/// method: method-override middleware), which the policy does not see. A
/// mesh peer could write anything in them, so they are removed unless
/// configured as trusted; so is every `X-Forwarded-*` header
/// ([`FORWARDED_PREFIX`]: `-User`, `-Email`, `-Prefix`, `-Uri`...).
pub(crate) static FORWARDED: &[&str] = &[
    "forwarded",
    "x-real-ip",
    "x-original-url",
    "x-rewrite-url",
    "x-http-method-override",
    "x-http-method",
    "x-method-override",
];

/// Every header starting with this is removed with [`FORWARDED`].
pub(crate) const FORWARDED_PREFIX: &str = "x-forwarded-";

/// Why a request was refused before any check ran.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("{0}")]
    Path(PathError),
    #[error("the request has no Host header or :authority")]
    MissingHost,
    #[error("the request has more than one Host header")]
    DuplicateHost,
    #[error("the Host header differs from :authority")]
    HostMismatch,
    #[error("the request's host is not a valid host[:port]")]
    InvalidHost,
    #[error("the requested protocol upgrade is not allowed")]
    UpgradeNotAllowed,
    #[error("CONNECT is not allowed")]
    Connect,
    #[error("the method must be written in upper case")]
    MethodCase,
}

impl Refusal {
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Refusal::UpgradeNotAllowed | Refusal::Connect => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    /// `error.type` on spans and in the access log.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Refusal::Path(_) => "invalid_path",
            Refusal::MissingHost => "missing_host",
            Refusal::DuplicateHost | Refusal::HostMismatch | Refusal::InvalidHost => "invalid_host",
            Refusal::UpgradeNotAllowed => "upgrade_not_allowed",
            Refusal::Connect => "connect_not_allowed",
            Refusal::MethodCase => "invalid_method",
        }
    }
}

/// One listener's rules; built once at start.
#[derive(Clone, Debug)]
pub struct Sanitizer {
    /// Lower-case `Upgrade` protocol names that may pass.
    upgrades: Vec<String>,
    /// `None`: the path goes on as sent (the outbound side: the peer's
    /// inbound normalises).
    path: Option<PathOptions>,
    /// Removed in every spelling.
    protected: Vec<HeaderName>,
    /// Names starting with one of these (in every spelling) are removed.
    protected_prefixes: Vec<&'static str>,
}

impl Default for Sanitizer {
    /// The inbound defaults: WebSocket, every normalisation step, and the
    /// identity and forwarded headers protected.
    fn default() -> Self {
        let mut protected = vec![headers::XFCC.clone()];
        protected.extend(FORWARDED.iter().map(|n| HeaderName::from_static(n)));
        Sanitizer {
            upgrades: vec!["websocket".into()],
            path: Some(PathOptions::default()),
            protected,
            protected_prefixes: vec![FORWARDED_PREFIX],
        }
    }
}

impl Sanitizer {
    /// `protected_prefixes`: names starting with one of these are removed
    /// too (lower-case, `-` separated).
    pub(crate) fn new(
        upgrades: Vec<String>,
        path: Option<PathOptions>,
        protected: Vec<HeaderName>,
        protected_prefixes: Vec<&'static str>,
    ) -> Self {
        let mut unique: Vec<HeaderName> = Vec::with_capacity(protected.len());
        for name in protected {
            if !unique.contains(&name) {
                unique.push(name);
            }
        }
        Sanitizer {
            upgrades,
            path,
            protected: unique,
            protected_prefixes,
        }
    }

    /// Rewrites `req` in place, or says why it must be refused.
    pub fn apply<B>(&self, req: &mut Request<B>) -> Result<(), Refusal> {
        if req.method() == Method::CONNECT {
            return Err(Refusal::Connect);
        }
        // `delete` is not `DELETE` to the policy, but some frameworks
        // upper-case it (Django, Werkzeug): refused rather than guessed.
        let method = req.method().as_str();
        if method.bytes().any(|b| b.is_ascii_lowercase())
            && STANDARD_METHODS
                .iter()
                .any(|m| m.eq_ignore_ascii_case(method))
        {
            return Err(Refusal::MethodCase);
        }
        let upgrade = self.upgrade(req)?;
        let h = req.headers_mut();
        headers::strip_hop_by_hop(h, upgrade);
        h.remove(&HTTP2_SETTINGS);
        self.strip_protected(h);
        self.restrict_trailer(h);
        one_host(req)?;
        if let Some(opts) = &self.path {
            normalize_path(req, opts)?;
        }
        Ok(())
    }

    /// Whether the request is an upgrade that may pass. Offers of
    /// protocols that are not allowed are dropped from `Upgrade`; an offer
    /// of nothing but `h2c` makes a plain request.
    fn upgrade<B>(&self, req: &mut Request<B>) -> Result<bool, Refusal> {
        if !headers::is_upgrade(req) {
            return Ok(false);
        }
        let mut allowed: Vec<&str> = Vec::new();
        let mut refused = false;
        for value in req.headers().get_all(UPGRADE) {
            let Ok(value) = value.to_str() else {
                return Err(Refusal::UpgradeNotAllowed);
            };
            for offer in value.split(',').map(str::trim).filter(|o| !o.is_empty()) {
                let name = offer.split('/').next().unwrap_or(offer).trim();
                if self.upgrades.iter().any(|u| u.eq_ignore_ascii_case(name)) {
                    allowed.push(offer);
                } else if !name.eq_ignore_ascii_case("h2c") {
                    refused = true;
                }
            }
        }
        if allowed.is_empty() {
            return if refused {
                Err(Refusal::UpgradeNotAllowed)
            } else {
                Ok(false)
            };
        }
        let value =
            HeaderValue::from_str(&allowed.join(", ")).map_err(|_| Refusal::UpgradeNotAllowed)?;
        req.headers_mut().insert(UPGRADE, value);
        Ok(true)
    }

    fn strip_protected(&self, h: &mut HeaderMap) {
        for name in &self.protected {
            h.remove(name);
        }
        let doomed = |k: &HeaderName| self.spelled_protected(k.as_str());
        remove_where(h, doomed);
    }

    /// A protected name under a prefix, or with `_` for some `-`.
    fn spelled_protected(&self, k: &str) -> bool {
        self.protected_prefixes
            .iter()
            .any(|p| k.len() >= p.len() && spelled_as(p, &k[..p.len()]))
            || (k.contains('_') && self.protected.iter().any(|p| spelled_as(p.as_str(), k)))
    }

    /// Trailers never pass through [`Sanitizer::apply`], and hyper writes
    /// to an HTTP/1.1 app exactly the trailer fields `Trailer` declares;
    /// some servers merge request trailers into the headers (Apache,
    /// CVE-2013-5704). So `Trailer` may not declare a protected name, a
    /// hop-by-hop one or `Host`: those are taken out of it (and an
    /// unreadable `Trailer` goes whole).
    fn restrict_trailer(&self, h: &mut HeaderMap) {
        if !h.contains_key(TRAILER) {
            return;
        }
        let declared: Option<Vec<String>> = h
            .get_all(TRAILER)
            .iter()
            .map(|v| v.to_str().ok())
            .collect::<Option<Vec<&str>>>()
            .map(|values| {
                values
                    .iter()
                    .flat_map(|v| v.split(','))
                    .map(|t| t.trim().to_ascii_lowercase())
                    .filter(|t| !t.is_empty())
                    .collect()
            });
        let Some(declared) = declared else {
            h.remove(TRAILER);
            return;
        };
        let kept: Vec<&str> = declared
            .iter()
            .map(String::as_str)
            .filter(|t| {
                !(self.protected.iter().any(|p| p.as_str() == *t)
                    || self.spelled_protected(t)
                    || headers::SPOOFABLE.iter().any(|p| p.as_str() == *t)
                    || TRAILER_NEVER.contains(t))
            })
            .collect();
        if kept.len() == declared.len() {
            return;
        }
        h.remove(TRAILER);
        if !kept.is_empty() {
            if let Ok(value) = HeaderValue::from_str(&kept.join(", ")) {
                h.insert(TRAILER, value);
            }
        }
    }
}

/// Whether `spelled` is `name` with `_` written for any of its `-`:
/// `x_forwarded_client_cert` reaches a CGI/WSGI/PHP app as the same
/// variable as `x-forwarded-client-cert`. Both lower case (header names).
pub(crate) fn spelled_as(name: &str, spelled: &str) -> bool {
    name.len() == spelled.len()
        && name
            .bytes()
            .zip(spelled.bytes())
            .all(|(a, b)| a == b || (a == b'-' && b == b'_'))
}

/// Removes every header `doomed` picks. The common case, none, allocates
/// nothing.
pub(crate) fn remove_where(h: &mut HeaderMap, doomed: impl Fn(&HeaderName) -> bool) {
    if h.keys().any(&doomed) {
        let names: Vec<HeaderName> = h.keys().filter(|k| doomed(k)).cloned().collect();
        for name in names {
            h.remove(name);
        }
    }
}

/// Names a request's `Trailer` may not declare, besides protected ones:
/// hop-by-hop fields and those that frame or route the request.
const TRAILER_NEVER: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "host",
    "content-length",
    "authorization",
    "cookie",
];

const STANDARD_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

/// `host[:port]` (RFC 3986): a registered name or IPv4 address of
/// unreserved characters, or an IPv6 literal in brackets; a port of 1 to 5
/// digits up to 65535. No userinfo, no percent-encoding, no list.
fn valid_host(host: &[u8]) -> bool {
    let (name, port) = if host.first() == Some(&b'[') {
        let Some(end) = host.iter().position(|&b| b == b']') else {
            return false;
        };
        let inside = &host[1..end];
        if inside.is_empty()
            || !inside
                .iter()
                .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        {
            return false;
        }
        match &host[end + 1..] {
            [] => return true,
            [b':', port @ ..] => (&host[..0], Some(port)),
            _ => return false,
        }
    } else {
        match host.iter().position(|&b| b == b':') {
            Some(i) => (&host[..i], Some(&host[i + 1..])),
            None => (host, None),
        }
    };
    let port_ok = port.is_none_or(|p| {
        (1..=5).contains(&p.len())
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p)
                .ok()
                .and_then(|p| p.parse::<u32>().ok())
                .is_some_and(|n| n <= 65535)
    });
    let name_ok = host.first() == Some(&b'[') || (!name.is_empty() && unreserved(name));
    port_ok && name_ok
}

/// Letters, digits, `-._~`.
fn unreserved(s: &[u8]) -> bool {
    s.iter()
        .all(|&b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

fn one_host<B>(req: &mut Request<B>) -> Result<(), Refusal> {
    let mut hosts = req.headers().get_all(HOST).iter();
    let host = hosts.next().cloned();
    if hosts.next().is_some() {
        return Err(Refusal::DuplicateHost);
    }
    let h2 = req.version() == Version::HTTP_2;
    match (req.uri().authority(), host) {
        (Some(authority), host) => {
            if !valid_host(authority.as_str().as_bytes()) {
                return Err(Refusal::InvalidHost);
            }
            if h2 {
                // RFC 9113 §8.3.1: `host` must name what `:authority` does.
                if let Some(h) = host {
                    if !h
                        .as_bytes()
                        .eq_ignore_ascii_case(authority.as_str().as_bytes())
                    {
                        return Err(Refusal::HostMismatch);
                    }
                    req.headers_mut().remove(HOST);
                }
            } else {
                // Absolute form: the target's authority is the host.
                let value =
                    HeaderValue::from_str(authority.as_str()).map_err(|_| Refusal::InvalidHost)?;
                req.headers_mut().insert(HOST, value);
            }
            Ok(())
        }
        (None, Some(h)) => {
            if h.is_empty() {
                return Err(Refusal::MissingHost);
            }
            if !valid_host(h.as_bytes()) {
                return Err(Refusal::InvalidHost);
            }
            if h2 {
                // HTTP/2 without :authority: the host moves into it, so
                // that the app gets one (rare: clients send :authority).
                let authority =
                    Authority::try_from(h.as_bytes()).map_err(|_| Refusal::InvalidHost)?;
                let mut parts = Parts::from(std::mem::take(req.uri_mut()));
                if parts.scheme.is_none() {
                    parts.scheme = Some(http::uri::Scheme::HTTP);
                }
                parts.authority = Some(authority);
                if parts.path_and_query.is_none() {
                    parts.path_and_query = Some(PathAndQuery::from_static("/"));
                }
                *req.uri_mut() = Uri::from_parts(parts).map_err(|_| Refusal::InvalidHost)?;
                req.headers_mut().remove(HOST);
            }
            Ok(())
        }
        (None, None) => Err(Refusal::MissingHost),
    }
}

/// Rewrites the URI's path with its normal form (query untouched).
fn normalize_path<B>(req: &mut Request<B>, opts: &PathOptions) -> Result<(), Refusal> {
    let Some(pq) = req.uri().path_and_query() else {
        return Ok(());
    };
    let path = pq.path();
    // `OPTIONS *` is the one target that is not a path; `http://b?/x`
    // has an empty one, which is `/` (RFC 9112 §3.2.1).
    if path == "*" {
        return if req.method() == Method::OPTIONS {
            Ok(())
        } else {
            Err(Refusal::Path(PathError::NotAbsolute))
        };
    }
    let normal = if path.is_empty() {
        "/".to_string()
    } else if !path.starts_with('/') {
        return Err(Refusal::Path(PathError::NotAbsolute));
    } else {
        match path::normalize(path, opts).map_err(Refusal::Path)? {
            std::borrow::Cow::Borrowed(_) => return Ok(()),
            std::borrow::Cow::Owned(p) => p,
        }
    };
    let mut target = normal;
    if let Some(q) = pq.query() {
        target.push('?');
        target.push_str(q);
    }
    let pq =
        PathAndQuery::try_from(target).map_err(|_| Refusal::Path(PathError::InvalidEncoding))?;
    let mut parts = Parts::from(std::mem::take(req.uri_mut()));
    parts.path_and_query = Some(pq);
    *req.uri_mut() =
        Uri::from_parts(parts).map_err(|_| Refusal::Path(PathError::InvalidEncoding))?;
    Ok(())
}

#[cfg(test)]
mod tests;
