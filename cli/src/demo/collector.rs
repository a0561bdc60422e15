//! The demo's tracing backend: a small OTLP/HTTP receiver (protobuf on
//! `POST /v1/traces`, what an OpenTelemetry Collector accepts on 4318)
//! that keeps the spans it gets, and a waterfall to show one trace.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use tokio::net::TcpListener;

/// One received span, reduced to what the waterfall shows.
#[derive(Clone, Debug)]
pub(super) struct DemoSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub kind: &'static str,
    pub name: String,
    pub path: String,
    pub status: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub(super) struct Collector {
    pub addr: SocketAddr,
    spans: Arc<Mutex<Vec<DemoSpan>>>,
}

/// Export requests larger than this are refused.
const MAX_EXPORT: usize = 4 * 1024 * 1024;

impl Collector {
    pub(super) async fn start() -> std::io::Result<Collector> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let collector = Collector {
            addr: listener.local_addr()?,
            spans: Arc::default(),
        };
        let spans = collector.spans.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let spans = spans.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| receive(req, spans.clone()));
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(collector)
    }

    pub(super) fn spans(&self) -> Vec<DemoSpan> {
        self.spans.lock().map(|s| s.clone()).unwrap_or_default()
    }
}

async fn receive(
    req: Request<Incoming>,
    spans: Arc<Mutex<Vec<DemoSpan>>>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp
    };
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" {
        return Ok(reply(StatusCode::NOT_FOUND, Vec::new()));
    }
    let Ok(body) = Limited::new(req.into_body(), MAX_EXPORT).collect().await else {
        return Ok(reply(StatusCode::PAYLOAD_TOO_LARGE, Vec::new()));
    };
    let Ok(export) = ExportTraceServiceRequest::decode(body.to_bytes()) else {
        return Ok(reply(StatusCode::BAD_REQUEST, Vec::new()));
    };
    let mut got = Vec::new();
    for rs in export.resource_spans {
        let service = rs
            .resource
            .as_ref()
            .and_then(|r| string_attr(&r.attributes, "service.name"))
            .unwrap_or_default();
        for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
            got.push(DemoSpan {
                service: service.clone(),
                trace_id: hex(&span.trace_id),
                span_id: hex(&span.span_id),
                parent_span_id: hex(&span.parent_span_id),
                kind: match span.kind {
                    2 => "SERVER",
                    3 => "CLIENT",
                    _ => "INTERNAL",
                },
                path: string_attr(&span.attributes, "url.path").unwrap_or_default(),
                status: string_attr(&span.attributes, "http.response.status_code")
                    .unwrap_or_default(),
                name: span.name,
                start_ns: span.start_time_unix_nano,
                end_ns: span.end_time_unix_nano,
            });
        }
    }
    if let Ok(mut spans) = spans.lock() {
        spans.extend(got);
    }
    Ok(reply(
        StatusCode::OK,
        ExportTraceServiceResponse::default().encode_to_vec(),
    ))
}

fn string_attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    let v = attrs.iter().find(|kv| kv.key == key)?.value.as_ref()?;
    match v.value.as_ref()? {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        _ => None,
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter().fold(String::new(), |mut s, x| {
        let _ = write!(s, "{x:02x}");
        s
    })
}

/// The spans of one trace as lines of a waterfall: parents before their
/// children, each bar placed on the trace's time line.
pub(super) fn waterfall(spans: &[DemoSpan]) -> Vec<String> {
    const WIDTH: u64 = 40;
    let Some(start) = spans.iter().map(|s| s.start_ns).min() else {
        return Vec::new();
    };
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let mut ordered: Vec<(usize, &DemoSpan)> = Vec::new();
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut stack: Vec<(usize, &DemoSpan)> = spans
        .iter()
        .filter(|s| !ids.contains(&s.parent_span_id.as_str()))
        .map(|s| (0, s))
        .collect();
    while let Some((depth, span)) = stack.pop() {
        ordered.push((depth, span));
        for child in spans.iter().filter(|c| c.parent_span_id == span.span_id) {
            stack.push((depth + 1, child));
        }
    }
    ordered
        .into_iter()
        .map(|(depth, s)| {
            let from = (s.start_ns.saturating_sub(start)) * WIDTH / total;
            let to = ((s.end_ns.saturating_sub(start)) * WIDTH)
                .div_ceil(total)
                .max(from + 1);
            let bar: String = (0..WIDTH)
                .map(|i| if i >= from && i < to { '#' } else { '.' })
                .collect();
            let label = format!(
                "{}{} {} {} {}",
                "  ".repeat(depth),
                s.service,
                s.kind,
                s.name,
                s.path
            );
            let ms = s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6;
            format!("{label:<40} {} |{bar}| {ms:>7.3} ms", s.status)
        })
        .collect()
}
