//! An OTLP trace receiver: the collector usher's integration tests, `usher
//! demo` and the mesh benchmark's sink (`benches/mesh/otlp_sink.rs`) all
//! run, in-process, on a loopback port.
//!
//! - [`Receiver::grpc`]: OTLP/gRPC over HTTP/2 cleartext, like a collector
//!   on port 4317, served from opentelemetry-proto's tonic service
//!   definition (so a sender does all the work a real collector would make
//!   it do).
//! - [`Receiver::http`]: OTLP/HTTP with protobuf bodies on `POST
//!   /v1/traces`, like a collector on port 4318. Another method or path is
//!   answered 404, another content type 415, a body over [`MAX_EXPORT`]
//!   413, one that does not decode 400.
//! - [`Receiver::grpc_counting`]: OTLP/gRPC that only counts spans (a
//!   benchmark sends millions).
//! - [`Receiver::hanging`]: accepts connections and never reads or
//!   answers: a hung collector.
//!
//! The kept spans are flattened into [`ReceivedSpan`]s for assertions and
//! display. A receiver serves until its tokio runtime shuts down.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use prost::Message as _;
use tokio::net::TcpListener;

/// OTLP span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
pub const KIND_SERVER: i32 = 2;
pub const KIND_CLIENT: i32 = 3;
/// OTLP status codes.
pub const STATUS_UNSET: i32 = 0;
pub const STATUS_ERROR: i32 = 2;

/// OTLP/HTTP export requests larger than this are refused (413).
pub const MAX_EXPORT: usize = 4 * 1024 * 1024;

/// A span as received, flattened: ids in lowercase hex, attribute values
/// as text.
#[derive(Clone, Debug)]
pub struct ReceivedSpan {
    /// The resource's `service.name`.
    pub service: String,
    pub resource: HashMap<String, String>,
    pub trace_id: String,
    pub span_id: String,
    /// Empty for a root span.
    pub parent_span_id: String,
    pub name: String,
    /// [`KIND_SERVER`], [`KIND_CLIENT`], ...
    pub kind: i32,
    /// [`STATUS_UNSET`], [`STATUS_ERROR`], ...
    pub status_code: i32,
    pub attrs: HashMap<String, String>,
    pub start_ns: u64,
    pub end_ns: u64,
}

impl ReceivedSpan {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// What a receiver has received.
#[derive(Clone, Default)]
struct Store {
    /// Count only, keep no span.
    count_only: bool,
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    count: Arc<AtomicU64>,
}

impl Store {
    fn counting() -> Store {
        Store {
            count_only: true,
            ..Store::default()
        }
    }

    fn add(&self, req: ExportTraceServiceRequest) {
        let n: usize = req
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.count.fetch_add(n as u64, Ordering::Relaxed);
        if self.count_only {
            return;
        }
        let mut got = Vec::with_capacity(n);
        for rs in req.resource_spans {
            let resource = rs
                .resource
                .map(|r| flatten(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for s in rs.scope_spans.into_iter().flat_map(|ss| ss.spans) {
                got.push(ReceivedSpan {
                    service: service.clone(),
                    resource: resource.clone(),
                    trace_id: hex(&s.trace_id),
                    span_id: hex(&s.span_id),
                    parent_span_id: hex(&s.parent_span_id),
                    name: s.name,
                    kind: s.kind,
                    status_code: s.status.map(|st| st.code).unwrap_or(0),
                    attrs: flatten(&s.attributes),
                    start_ns: s.start_time_unix_nano,
                    end_ns: s.end_time_unix_nano,
                });
            }
        }
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(got);
    }
}

fn hex(b: &[u8]) -> String {
    use std::fmt::Write as _;
    b.iter()
        .fold(String::with_capacity(2 * b.len()), |mut s, x| {
            let _ = write!(s, "{x:02x}");
            s
        })
}

fn flatten(attrs: &[KeyValue]) -> HashMap<String, String> {
    attrs
        .iter()
        .map(|kv| {
            let v = match kv.value.as_ref().and_then(|v| v.value.as_ref()) {
                Some(Value::StringValue(s)) => s.clone(),
                Some(Value::IntValue(i)) => i.to_string(),
                Some(Value::BoolValue(b)) => b.to_string(),
                Some(Value::DoubleValue(d)) => d.to_string(),
                other => format!("{other:?}"),
            };
            (kv.key.clone(), v)
        })
        .collect()
}

/// A running receiver on a loopback port.
pub struct Receiver {
    addr: SocketAddr,
    store: Store,
}

struct Grpc(Store);

#[tonic::codegen::async_trait]
impl TraceService for Grpc {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        self.0.add(request.into_inner());
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

impl Receiver {
    /// OTLP/gRPC (HTTP/2 cleartext), keeping every span.
    pub async fn grpc() -> io::Result<Receiver> {
        Receiver::serve_grpc(Store::default()).await
    }

    /// OTLP/gRPC (HTTP/2 cleartext), counting spans and keeping none.
    pub async fn grpc_counting() -> io::Result<Receiver> {
        Receiver::serve_grpc(Store::counting()).await
    }

    async fn serve_grpc(store: Store) -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let service = TraceServiceServer::new(Grpc(store.clone()));
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let svc = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, store })
    }

    /// OTLP/HTTP with protobuf bodies, keeping every span.
    pub async fn http() -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let store = Store::default();
        let shared = store.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let store = shared.clone();
                let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                    let store = store.clone();
                    async move { Ok::<_, Infallible>(http_export(req, store).await) }
                });
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Ok(Receiver { addr, store })
    }

    /// Accepts TCP connections and never reads or answers: a hung collector.
    pub async fn hanging() -> io::Result<Receiver> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((tcp, _)) = listener.accept().await {
                held.push(tcp);
            }
        });
        Ok(Receiver {
            addr,
            store: Store::default(),
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://ADDR`, what an OTLP exporter is configured with.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The spans received so far, in the order they arrived (none for a
    /// counting receiver).
    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.store
            .spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// How many spans have been received, kept or not.
    pub fn span_count(&self) -> u64 {
        self.store.count.load(Ordering::Relaxed)
    }
}

async fn http_export(req: Request<Incoming>, store: Store) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: Vec<u8>| {
        let mut r = Response::new(Full::new(Bytes::from(body)));
        *r.status_mut() = status;
        r.headers_mut().insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/x-protobuf"),
        );
        r
    };
    if req.method() != http::Method::POST || req.uri().path() != "/v1/traces" {
        return reply(StatusCode::NOT_FOUND, Vec::new());
    }
    let is_proto = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"application/x-protobuf");
    if !is_proto {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let body = match Limited::new(req.into_body(), MAX_EXPORT).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return reply(StatusCode::PAYLOAD_TOO_LARGE, Vec::new())
        }
        Err(_) => return reply(StatusCode::BAD_REQUEST, Vec::new()),
    };
    match ExportTraceServiceRequest::decode(body) {
        Ok(export) => {
            store.add(export);
            reply(
                StatusCode::OK,
                ExportTraceServiceResponse::default().encode_to_vec(),
            )
        }
        Err(_) => reply(StatusCode::BAD_REQUEST, Vec::new()),
    }
}

#[cfg(test)]
mod tests;
