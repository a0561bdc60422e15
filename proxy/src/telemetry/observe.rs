//! One request, observed from start to the end of its response body:
//! the span (SERVER inbound, CLIENT outbound), the request metrics and the
//! access log line all come from here, so the three always agree.
//!
//! [`Observation::start`] runs before the request goes on (it continues
//! the caller's trace and writes the context for the next hop);
//! [`Observation::respond`] wraps the response body in an
//! [`ObservedBody`], which finishes the observation when the body ends or
//! is dropped: durations cover streamed bodies, not just headers.

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

use super::metrics::{ConnMetrics, Direction};
use super::propagation;
use super::Telemetry;

/// Why usher answered a request itself; set by `respond` on the
/// responses it generates, read here for `error.type`.
#[derive(Clone, Copy, Debug)]
pub struct ErrorKind(pub &'static str);

/// The policy's verdict when it was not a plain allow (set by the
/// authorization layer only on denials, so allowed requests pay nothing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyVerdict {
    Deny,
    /// Denied, but let through because the policy runs in audit mode.
    AuditDeny,
}

/// Who is at the other end of the request.
#[derive(Clone, Debug)]
pub struct Peer {
    /// The SPIFFE ID (the verified caller inbound, the route's identity
    /// outbound), or `unknown`.
    pub id: Arc<str>,
    /// The metrics label: the ID, or `other` past the label cap.
    pub label: Arc<str>,
    /// The network address of the other end, when known.
    pub addr: Option<SocketAddr>,
}

/// A request in flight. Dropped without a response (the caller went
/// away), it is recorded as 499, like nginx does.
pub struct Observation {
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
    /// Told when the request is dropped before its response.
    resets: Option<Arc<crate::serve::ResetGuard>>,
}

/// The status recorded for a request whose caller left before the response.
const CLIENT_CLOSED: u16 = 499;

impl Observation {
    /// Starts observing `req`. When tracing is on, this continues the
    /// caller's trace (W3C or B3) or starts one, and writes the new span's
    /// context into `req` for the next hop.
    pub fn start<B>(
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
                let builder = tracing
                    .tracer
                    .span_builder(method)
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
                resets: None,
            }),
        }
    }

    /// Reports a cancellation (the caller dropped the request before its
    /// response) to `guard`.
    pub fn on_cancel(&mut self, guard: Arc<crate::serve::ResetGuard>) {
        if let Some(inner) = self.inner.as_mut() {
            inner.resets = Some(guard);
        }
    }

    /// [`Observation::respond`] when there is an observation; the response
    /// as is (unobserved) when there is none.
    pub fn respond_opt<B: Body>(
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
    pub fn respond<B: Body>(mut self, resp: Response<B>) -> Response<ObservedBody<B>> {
        if let Some(inner) = self.inner.as_mut() {
            inner.status = resp.status().as_u16();
            inner.error = resp.extensions().get::<ErrorKind>().map(|e| e.0);
            inner.verdict = resp.extensions().get::<PolicyVerdict>().copied();
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
        self.conn.record(&self.peer.label, self.status, elapsed);
        let status = self.status;
        // error.type: usher's own failure kind, else (for a status that
        // counts as an error on this side) the status code as a string.
        let error_type: Option<Cow<'static, str>> =
            body_error.or(self.error).map(Cow::Borrowed).or_else(|| {
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
            if let Some(kind) = &error_type {
                span.set_attribute(KeyValue::new("error.type", kind.clone()));
                let failed = match direction {
                    Direction::Inbound => status >= 500 || body_error.is_some(),
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
            let method = self.method.as_str();
            let ms = elapsed.as_secs_f64() * 1000.0;
            super::access_log::append(|buf| {
                super::access_log::Line::start(buf)
                    .str("direction", direction.as_str())
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
pub struct ObservedBody<B: Body> {
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
    let mut attrs = Vec::with_capacity(12);
    attrs.push(KeyValue::new("http.request.method", method));
    if method == "_OTHER" {
        attrs.push(KeyValue::new(
            "http.request.method_original",
            req.method().as_str().to_owned(),
        ));
    }
    attrs.push(KeyValue::new("url.path", req.uri().path().to_owned()));
    attrs.push(KeyValue::new("url.scheme", "https"));
    if let Some(authority) = crate::headers::authority(req) {
        let host = crate::headers::host_of(authority);
        attrs.push(KeyValue::new("server.address", host.to_owned()));
        let port = authority
            .rsplit_once(':')
            .and_then(|(_, p)| p.parse::<i64>().ok());
        if let Some(port) = port {
            attrs.push(KeyValue::new("server.port", port));
        }
    }
    if let Some(addr) = peer.addr {
        attrs.push(KeyValue::new("network.peer.address", addr.ip().to_string()));
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
    attrs.push(KeyValue::new("usher.direction", direction.as_str()));
    attrs.push(KeyValue::new(
        "usher.peer.spiffe_id",
        Value::String(StringValue::from(peer.id.clone())),
    ));
    attrs
}

fn user_agent(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(http::header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
}
