//! One request, observed from start to the end of its response body:
//! the span (SERVER inbound, CLIENT outbound), the request metrics and the
//! access log line all come from here, so the three always agree.
//!
//! [`Observation::start`] runs before the request goes on (it continues
//! the caller's trace and writes the context for the next hop);
//! [`Observation::respond`] wraps the response body in an
//! [`ObservedBody`], which finishes the observation when the body ends or
//! is dropped: durations cover streamed bodies, not just headers.
//!
//! gRPC: the status of a call is its `grpc-status`, in the trailers (seen
//! here as the body's last frame) or, for a trailers-only response, in the
//! headers. It goes into the request metrics (`grpc_status`, and the
//! `classification` a non-OK status makes a failure) and onto the span
//! (`rpc.grpc.status_code`, with the span status the OpenTelemetry RPC
//! conventions give it, see [`grpc_span_error`]).

use std::borrow::Cow;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, Version};
use http_body::{Body, Frame, SizeHint};
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, Status, TraceContextExt as _, Tracer as _,
};
use opentelemetry::{KeyValue, StringValue, Value};

use super::metrics::{ConnMetrics, Direction, GrpcCode, Outcome};
use super::propagation;
use super::Telemetry;

/// Why usher answered a request itself; set by `respond` on the
/// responses it generates, read here for `error.type`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorKind(pub(crate) &'static str);

/// The policy's verdict when it was not a plain allow (set by the
/// authorization layer only on denials, so allowed requests pay nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PolicyVerdict {
    Deny,
    /// Denied, but let through because the policy runs in audit mode.
    AuditDeny,
}

/// Who is at the other end of the request.
#[derive(Clone, Debug)]
pub(crate) struct Peer {
    /// The SPIFFE ID (the verified caller inbound, the route's identity
    /// outbound), or `unknown`.
    pub(crate) id: Arc<str>,
    /// The metrics label: the ID, or `other` past the label cap.
    pub(crate) label: Arc<str>,
    /// The network address of the other end, when known.
    pub(crate) addr: Option<SocketAddr>,
}

/// A request in flight. Dropped without a response (the caller went
/// away), it is recorded as 499, like nginx does.
pub(crate) struct Observation {
    inner: Option<Inner>,
}

struct Inner {
    telemetry: Arc<Telemetry>,
    conn: Arc<ConnMetrics>,
    peer: Peer,
    start: Instant,
    method: Method,
    authority: Option<http::HeaderValue>,
    path: Option<http::uri::PathAndQuery>,
    /// Boxed: the SDK span is large, and the request futures that carry
    /// an observation are moved around.
    span: Option<Box<opentelemetry_sdk::trace::Span>>,
    trace: Option<SpanContext>,
    policy_on: bool,
    status: u16,
    error: Option<&'static str>,
    verdict: Option<PolicyVerdict>,
    /// The response's content type is gRPC's.
    grpc_response: bool,
    /// The response's `grpc-status` (trailers, or headers when
    /// trailers-only), once seen.
    grpc_status: Option<GrpcCode>,
    /// Told when the request is dropped before its response.
    resets: Option<Arc<crate::serve::ResetGuard>>,
}

/// The status recorded for a request whose caller left before the response.
const CLIENT_CLOSED: u16 = 499;

impl Observation {
    /// Starts observing `req`. When tracing is on, this continues the
    /// caller's trace (W3C or B3) or starts one, and writes the new span's
    /// context into `req` for the next hop.
    pub(crate) fn start<B>(
        telemetry: &Arc<Telemetry>,
        conn: &Arc<ConnMetrics>,
        req: &mut Request<B>,
        peer: Peer,
        policy_on: bool,
    ) -> Observation {
        let direction = conn.direction();
        let keep_target = telemetry.access_log;
        let (span, trace) = match &telemetry.tracing {
            Some(tracing) => {
                let incoming = propagation::extract(req.headers());
                let parent = match &incoming.parent {
                    Some(cx) => opentelemetry::Context::new().with_remote_span_context(cx.clone()),
                    None => opentelemetry::Context::new(),
                };
                let method = semconv_method(req.method());
                let name = span_name(method);
                let builder = tracing
                    .tracer
                    .span_builder(name)
                    .with_kind(match direction {
                        Direction::Inbound => SpanKind::Server,
                        Direction::Outbound => SpanKind::Client,
                    });
                let mut span = tracing.tracer.build_with_context(builder, &parent);
                // Attributes cost allocations: only for spans that are kept.
                if span.is_recording() {
                    span.set_attributes(start_attributes(req, direction, &peer, method));
                }
                let cx = span.span_context().clone();
                propagation::inject(req.headers_mut(), &cx, &incoming);
                (Some(Box::new(span)), Some(cx))
            }
            None => (None, None),
        };
        Observation {
            inner: Some(Inner {
                telemetry: telemetry.clone(),
                conn: conn.clone(),
                peer,
                start: Instant::now(),
                method: req.method().clone(),
                authority: if keep_target {
                    authority_value(req)
                } else {
                    None
                },
                path: if keep_target {
                    req.uri().path_and_query().cloned()
                } else {
                    None
                },
                span,
                trace,
                policy_on,
                status: CLIENT_CLOSED,
                error: None,
                verdict: None,
                grpc_response: false,
                grpc_status: None,
                resets: None,
            }),
        }
    }

    /// The other end's SPIFFE ID (or `unknown`), for log lines.
    pub(crate) fn peer_id(&self) -> &str {
        self.inner.as_ref().map_or("", |i| &i.peer.id)
    }

    /// The sidecar's metrics (what `respond` counts refusals in).
    pub(crate) fn metrics(&self) -> Option<&super::Metrics> {
        self.inner.as_ref().map(|i| &*i.telemetry.metrics)
    }

    /// Reports a cancellation (the caller dropped the request before its
    /// response) to `guard`.
    pub(crate) fn on_cancel(&mut self, guard: Arc<crate::serve::ResetGuard>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.resets = Some(guard);
        }
    }

    /// [`Observation::respond`] when there is an observation; the response
    /// as is (unobserved) when there is none.
    pub(crate) fn respond_opt<B: Body>(
        obs: Option<Observation>,
        resp: Response<B>,
    ) -> Response<ObservedBody<B>> {
        match obs {
            Some(obs) => obs.respond(resp),
            None => resp.map(|body| ObservedBody {
                body,
                bytes: 0,
                obs: None,
            }),
        }
    }

    /// Notes the response and hands it on with a body that finishes the
    /// observation when it ends.
    pub(crate) fn respond<B: Body>(mut self, resp: Response<B>) -> Response<ObservedBody<B>> {
        if let Some(inner) = self.inner.as_mut() {
            inner.status = resp.status().as_u16();
            inner.error = resp.extensions().get::<ErrorKind>().map(|e| e.0);
            inner.verdict = resp.extensions().get::<PolicyVerdict>().copied();
            inner.grpc_response = is_grpc(resp.headers());
            // Trailers-only: the status is in the headers.
            inner.grpc_status = grpc_status(resp.headers());
        }
        let inner = self.inner.take();
        resp.map(|body| ObservedBody {
            body,
            bytes: 0,
            obs: inner,
        })
    }
}

impl Drop for Observation {
    fn drop(&mut self) {
        if let Some(inner) = self.inner.take() {
            if let Some(guard) = &inner.resets {
                guard.cancelled();
            }
            inner.finish(0, Some("cancelled"));
        }
    }
}

impl Inner {
    fn finish(mut self, bytes: u64, body_error: Option<&'static str>) {
        let elapsed = self.start.elapsed();
        let direction = self.conn.direction();
        let status = self.status;
        // A gRPC response that ended cleanly without a grpc-status is
        // broken (gRPC clients report INTERNAL for it).
        let grpc_missing = self.grpc_response && self.grpc_status.is_none() && body_error.is_none();
        let outcome = Outcome {
            grpc_status: self.grpc_status,
            failure: status >= 500
                || body_error.is_some()
                || grpc_missing
                || self.grpc_status.is_some_and(|c| c != GrpcCode::OK),
        };
        self.conn
            .record_outcome(&self.peer.label, status, outcome, elapsed);
        // The gRPC status as an error of this span, per the RPC conventions.
        let grpc_error: Option<&'static str> = match self.grpc_status {
            Some(code) => grpc_span_error(direction, code).then(|| code.name()),
            None => grpc_missing.then_some("grpc_status_missing"),
        };
        // error.type: usher's own failure kind, else the gRPC status's name
        // when it is an error on this side, else (for a status that counts
        // as an error on this side) the status code as a string.
        let error_type: Option<Cow<'static, str>> = body_error
            .or(self.error)
            .or(grpc_error)
            .map(Cow::Borrowed)
            .or_else(|| {
                let failed = match direction {
                    Direction::Inbound => status >= 500,
                    Direction::Outbound => status >= 400,
                };
                failed.then(|| Cow::Owned(status.to_string()))
            });
        if let Some(mut span) = self.span.take() {
            span.set_attribute(KeyValue::new(
                "http.response.status_code",
                i64::from(status),
            ));
            if let Some(code) = self.grpc_status {
                span.set_attribute(KeyValue::new(
                    "rpc.grpc.status_code",
                    i64::from(code.code()),
                ));
            }
            if let Some(kind) = &error_type {
                span.set_attribute(KeyValue::new("error.type", kind.clone()));
                let failed = match direction {
                    Direction::Inbound => {
                        status >= 500 || body_error.is_some() || grpc_error.is_some()
                    }
                    Direction::Outbound => true,
                };
                if failed {
                    span.set_status(Status::error(kind.clone()));
                }
            }
            if self.policy_on && span.is_recording() {
                let decision = match self.verdict {
                    None => "allow",
                    Some(PolicyVerdict::Deny) => "deny",
                    Some(PolicyVerdict::AuditDeny) => "audit_deny",
                };
                span.set_attribute(KeyValue::new("usher.policy.decision", decision));
            }
            span.end();
        }
        if self.telemetry.access_log {
            let authority = self
                .authority
                .as_ref()
                .and_then(|a| a.to_str().ok())
                .unwrap_or("");
            let path = self.path.as_ref().map_or("", |p| p.as_str());
            let mut ids = [0u8; 48];
            let (trace_id, span_id) = match &self.trace {
                Some(cx) => hex_ids(cx, &mut ids),
                None => ("", ""),
            };
            let error = error_type.as_deref().unwrap_or("");
            let peer = &*self.peer.id;
            let plaintext = &*self.peer.label == super::metrics::PLAINTEXT_PEER;
            let method = self.method.as_str();
            let ms = elapsed.as_secs_f64() * 1000.0;
            super::access_log::append(|buf| {
                let line = super::access_log::Line::start(buf);
                // Plain-text callers (permissive mode) are marked.
                let line = if plaintext {
                    line.num("tls", "false")
                } else {
                    line
                };
                line.str("direction", direction.as_str())
                    .str("method", method)
                    .str("authority", authority)
                    .str("path", path)
                    .num("status", status)
                    .num("duration_ms", format_args!("{ms:.3}"))
                    .num("bytes", bytes)
                    .str("peer", peer)
                    .str("trace_id", trace_id)
                    .str("span_id", span_id)
                    .str("error", error)
                    .end();
            });
        }
    }
}

/// The trace and span ids as lower-case hex, without allocating.
fn hex_ids<'a>(cx: &SpanContext, out: &'a mut [u8; 48]) -> (&'a str, &'a str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let trace = cx.trace_id().to_bytes();
    let span = cx.span_id().to_bytes();
    for (i, b) in trace.iter().chain(span.iter()).enumerate() {
        out[2 * i] = HEX[(b >> 4) as usize];
        out[2 * i + 1] = HEX[(b & 0xf) as usize];
    }
    let (t, s) = out.split_at(32);
    (
        std::str::from_utf8(t).unwrap_or(""),
        std::str::from_utf8(s).unwrap_or(""),
    )
}

/// The response body, counting bytes and finishing the observation at
/// its end (or when dropped early).
pub(crate) struct ObservedBody<B: Body> {
    body: B,
    bytes: u64,
    obs: Option<Inner>,
}

impl<B: Body> ObservedBody<B> {
    fn finish(&mut self, body_error: Option<&'static str>) {
        if let Some(obs) = self.obs.take() {
            obs.finish(self.bytes, body_error);
        }
    }
}

impl<B: Body> Drop for ObservedBody<B> {
    fn drop(&mut self) {
        // Still observing: either the body was empty and never polled, or
        // the caller went away before its end.
        let incomplete = !self.body.is_end_stream();
        self.finish(incomplete.then_some("response_incomplete"));
    }
}

impl<B> Body for ObservedBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    this.bytes += data.len() as u64;
                } else if let Some(trailers) = frame.trailers_ref() {
                    if let (Some(obs), Some(code)) = (this.obs.as_mut(), grpc_status(trailers)) {
                        obs.grpc_status = Some(code);
                    }
                }
                if this.body.is_end_stream() {
                    this.finish(None);
                }
            }
            Poll::Ready(Some(Err(_))) => this.finish(Some("response_body")),
            Poll::Ready(None) => this.finish(None),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// `application/grpc`, `application/grpc+proto`, … (not gRPC-Web, whose
/// trailers travel inside the body).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..16).map(|p| (p, &v[16..])))
        .is_some_and(|(prefix, rest)| {
            prefix.eq_ignore_ascii_case("application/grpc")
                && (rest.is_empty() || rest.starts_with('+') || rest.starts_with(';'))
        })
}

fn grpc_status(headers: &HeaderMap) -> Option<GrpcCode> {
    headers
        .get("grpc-status")
        .map(|v| GrpcCode::from_header(v.as_bytes()))
}

/// Whether a gRPC status makes this side's span an error, per the
/// OpenTelemetry RPC conventions for gRPC: on the CLIENT side any status
/// but OK; on the SERVER side only the codes that mean the server failed
/// (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
/// DATA_LOSS), not the caller's mistakes (NOT_FOUND, INVALID_ARGUMENT, …).
fn grpc_span_error(direction: Direction, code: GrpcCode) -> bool {
    match direction {
        Direction::Outbound => code != GrpcCode::OK,
        Direction::Inbound => matches!(code.code(), 2 | 4 | 12 | 13 | 14 | 15),
    }
}

/// Semantic-conventions method names: the known methods, `_OTHER` for the
/// rest (an invented method must not become a span name).
fn semconv_method(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    }
}

fn authority_value<B>(req: &Request<B>) -> Option<http::HeaderValue> {
    if let Some(a) = req.uri().authority() {
        return http::HeaderValue::from_str(a.as_str()).ok();
    }
    req.headers().get(http::header::HOST).cloned()
}

fn start_attributes<B>(
    req: &Request<B>,
    direction: Direction,
    peer: &Peer,
    method: &'static str,
) -> Vec<KeyValue> {
    let mut attrs = Vec::with_capacity(16);
    attrs.push(KeyValue::new("http.request.method", method));
    if method == "_OTHER" {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_owned(),
        ));
    }
    let uri = req.uri();
    attrs.push(KeyValue::new("url.path", uri.path().to_owned()));
    attrs.push(KeyValue::new("url.scheme", "https"));
    let query = uri.query().map(redact_query);
    if let Some(authority) = crate::headers::authority(req) {
        let host = crate::headers::host_of(authority);
        attrs.push(KeyValue::new("server.address", host.to_owned()));
        attrs.push(KeyValue::new("server.port", port_of(authority)));
        if direction == Direction::Outbound {
            attrs.push(KeyValue::new(
                "url.full",
                full_url(authority, uri, query.as_deref()),
            ));
        }
    }
    if direction == Direction::Inbound {
        if let Some(query) = query {
            attrs.push(KeyValue::new("url.query", query.into_owned()));
        }
    }
    if let Some(addr) = peer.addr {
        let ip = addr.ip().to_string();
        if direction == Direction::Inbound {
            // The caller's sidecar: the original client behind it is not
            // known (usher drops X-Forwarded-For by default).
            attrs.push(KeyValue::new("client.address", ip.clone()));
        }
        attrs.push(KeyValue::new("network.peer.address", ip));
        attrs.push(KeyValue::new("network.peer.port", i64::from(addr.port())));
    }
    if let Some(ua) = user_agent(req.headers()) {
        attrs.push(KeyValue::new("user_agent.original", ua.to_owned()));
    }
    attrs.push(KeyValue::new(
        "network.protocol.version",
        match req.version() {
            Version::HTTP_2 => "2",
            Version::HTTP_10 => "1.0",
            _ => "1.1",
        },
    ));
    if is_grpc(req.headers()) {
        attrs.push(KeyValue::new("rpc.system", "grpc"));
        // gRPC paths are `/package.Service/Method`.
        let rpc = req
            .uri()
            .path()
            .strip_prefix('/')
            .and_then(|p| p.split_once('/'));
        if let Some((service, method)) = rpc.filter(|(s, m)| !s.is_empty() && !m.is_empty()) {
            attrs.push(KeyValue::new("rpc.service", service.to_owned()));
            attrs.push(KeyValue::new("rpc.method", method.to_owned()));
        }
    }
    attrs.push(KeyValue::new("usher.direction", direction.as_str()));
    if !peer.id.is_empty() {
        attrs.push(KeyValue::new(
            "usher.peer.spiffe_id",
            Value::String(StringValue::from(peer.id.clone())),
        ));
    }
    attrs
}

/// The span name: the method, or `HTTP` for one the conventions do not
/// know (`http.request.method` is then `_OTHER`).
fn span_name(method: &'static str) -> &'static str {
    if method == "_OTHER" {
        "HTTP"
    } else {
        method
    }
}

/// The port of `host[:port]` (an IPv6 host in brackets), else 443: usher
/// speaks HTTPS between sidecars, and a target URI without a port means
/// its scheme's default (RFC 9110 §4.2.2).
fn port_of(authority: &str) -> i64 {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let rest = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map_or("", |(_, rest)| rest),
        None => authority.find(':').map_or("", |i| &authority[i..]),
    };
    rest.strip_prefix(':')
        .and_then(|p| p.parse::<u16>().ok())
        .map_or(443, i64::from)
}

/// `url.full` as usher sends the request to the peer:
/// `https://authority/path?query`, without any userinfo (the conventions
/// forbid credentials in it). An asterisk-form target (`OPTIONS *`) has an
/// empty path (RFC 9112 §3.3).
fn full_url(authority: &str, uri: &http::Uri, query: Option<&str>) -> String {
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let path = uri.path();
    let path = if path.starts_with('/') { path } else { "" };
    let query_len = query.map_or(0, |q| q.len() + 1);
    let mut url = String::with_capacity(8 + authority.len() + path.len() + query_len);
    url.push_str("https://");
    url.push_str(authority);
    url.push_str(path);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    url
}

/// Query keys whose values the HTTP conventions say to replace with
/// `REDACTED` in `url.full` and `url.query` (signed-URL credentials).
const REDACTED_QUERY_KEYS: [&str; 4] = ["AWSAccessKeyId", "Signature", "sig", "X-Goog-Signature"];

/// The query with the values of [`REDACTED_QUERY_KEYS`] replaced (their
/// keys kept: `a=1&sig=REDACTED`); borrowed when there is none.
fn redact_query(query: &str) -> Cow<'_, str> {
    let secret = |pair: &str| {
        let key = pair.split_once('=').map_or(pair, |(k, _)| k);
        REDACTED_QUERY_KEYS.contains(&key) && pair.len() > key.len()
    };
    if !query.split('&').any(secret) {
        return Cow::Borrowed(query);
    }
    let mut out = String::with_capacity(query.len());
    for (i, pair) in query.split('&').enumerate() {
        if i > 0 {
            out.push('&');
        }
        if secret(pair) {
            out.push_str(pair.split_once('=').map_or(pair, |(k, _)| k));
            out.push_str("=REDACTED");
        } else {
            out.push_str(pair);
        }
    }
    Cow::Owned(out)
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, http::HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn grpc_content_types() {
        for ct in [
            "application/grpc",
            "application/grpc+proto",
            "application/GRPC;charset=utf-8",
        ] {
            assert!(is_grpc(&headers(&[("content-type", ct)])), "{ct}");
        }
        for ct in [
            "application/grpc-web",
            "application/grpcx",
            "text/plain",
            "application/json",
        ] {
            assert!(!is_grpc(&headers(&[("content-type", ct)])), "{ct}");
        }
        assert!(!is_grpc(&headers(&[])));
    }

    #[test]
    fn grpc_status_values_stay_in_the_17_codes() {
        let code = |v: &'static str| grpc_status(&headers(&[("grpc-status", v)])).map(|c| c.code());
        assert_eq!(code("0"), Some(0));
        assert_eq!(code("5"), Some(5));
        assert_eq!(code("16"), Some(16));
        assert_eq!(code("17"), Some(2), "unknown codes are UNKNOWN");
        assert_eq!(code("abc"), Some(2));
        assert_eq!(grpc_status(&headers(&[])), None);
        assert_eq!(GrpcCode::from_header(b"14").name(), "UNAVAILABLE");
    }

    #[test]
    fn server_port_comes_from_the_authority_or_the_https_default() {
        assert_eq!(port_of("b"), 443);
        assert_eq!(port_of("b:8080"), 8080);
        assert_eq!(port_of("b:"), 443);
        assert_eq!(port_of("[::1]"), 443);
        assert_eq!(port_of("[::1]:9443"), 9443);
        assert_eq!(port_of("user:pw@b"), 443, "userinfo is not a port");
        assert_eq!(port_of("b:99999"), 443);
    }

    #[test]
    fn full_url_is_the_https_target_without_credentials() {
        let uri = |s: &str| s.parse::<http::Uri>().unwrap();
        assert_eq!(full_url("b", &uri("/x/y"), None), "https://b/x/y");
        assert_eq!(
            full_url("b:8443", &uri("/x?a=1"), Some("a=1")),
            "https://b:8443/x?a=1"
        );
        assert_eq!(
            full_url("user:pw@b", &uri("http://user:pw@b/x"), None),
            "https://b/x"
        );
        assert_eq!(full_url("[::1]:80", &uri("/"), None), "https://[::1]:80/");
        assert_eq!(full_url("b", &uri("*"), None), "https://b");
    }

    #[test]
    fn signed_url_credentials_are_redacted_in_queries() {
        assert!(matches!(redact_query("a=1&b=2"), Cow::Borrowed("a=1&b=2")));
        assert_eq!(
            redact_query("color=blue&sig=abc"),
            "color=blue&sig=REDACTED"
        );
        assert_eq!(
            redact_query("AWSAccessKeyId=AK&Signature=s&X-Goog-Signature=g&x=1"),
            "AWSAccessKeyId=REDACTED&Signature=REDACTED&X-Goog-Signature=REDACTED&x=1"
        );
        assert_eq!(redact_query("signature=s&sig"), "signature=s&sig");
    }

    #[test]
    fn unknown_methods_make_spans_named_http() {
        assert_eq!(span_name(semconv_method(&Method::GET)), "GET");
        let odd = Method::from_bytes(b"PURGE").unwrap();
        assert_eq!(semconv_method(&odd), "_OTHER");
        assert_eq!(span_name(semconv_method(&odd)), "HTTP");
    }

    #[test]
    fn grpc_span_status_follows_the_rpc_conventions() {
        let server_errors: Vec<u8> = (0..=16u8)
            .filter(|c| {
                grpc_span_error(
                    Direction::Inbound,
                    GrpcCode::from_header(c.to_string().as_bytes()),
                )
            })
            .collect();
        assert_eq!(server_errors, [2, 4, 12, 13, 14, 15]);
        let client_errors: Vec<u8> = (0..=16u8)
            .filter(|c| {
                grpc_span_error(
                    Direction::Outbound,
                    GrpcCode::from_header(c.to_string().as_bytes()),
                )
            })
            .collect();
        assert_eq!(client_errors, (1..=16).collect::<Vec<u8>>());
    }
}
