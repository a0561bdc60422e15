//! Real OTLP trace receivers for the tests: a gRPC one built from
//! opentelemetry-proto's tonic service definition, an OTLP/HTTP one
//! (protobuf bodies on `POST /v1/traces`), and a "collector" that accepts
//! connections and never answers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
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
pub(crate) const KIND_SERVER: i32 = 2;
pub(crate) const KIND_CLIENT: i32 = 3;
/// OTLP status codes.
pub(crate) const STATUS_UNSET: i32 = 0;
pub(crate) const STATUS_ERROR: i32 = 2;

/// A span as received, flattened for assertions.
#[derive(Clone, Debug)]
pub(crate) struct ReceivedSpan {
    pub service: String,
    pub resource: HashMap<String, String>,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub name: String,
    pub kind: i32,
    pub status_code: i32,
    pub attrs: HashMap<String, String>,
}

impl ReceivedSpan {
    pub(crate) fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

#[derive(Clone, Default)]
struct Store {
    spans: Arc<Mutex<Vec<ReceivedSpan>>>,
    requests: Arc<std::sync::atomic::AtomicUsize>,
}

impl Store {
    fn add(&self, req: ExportTraceServiceRequest) {
        self.requests
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut out = self.spans.lock().unwrap();
        for rs in req.resource_spans {
            let resource = rs
                .resource
                .map(|r| flatten(&r.attributes))
                .unwrap_or_default();
            let service = resource.get("service.name").cloned().unwrap_or_default();
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push(ReceivedSpan {
                        service: service.clone(),
                        resource: resource.clone(),
                        trace_id: hex(&s.trace_id),
                        span_id: hex(&s.span_id),
                        parent_span_id: hex(&s.parent_span_id),
                        name: s.name,
                        kind: s.kind,
                        status_code: s.status.map(|st| st.code).unwrap_or(0),
                        attrs: flatten(&s.attributes),
                    });
                }
            }
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
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

pub(crate) struct Receiver {
    pub addr: SocketAddr,
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
    /// OTLP/gRPC (HTTP/2 cleartext), like a collector on port 4317.
    pub(crate) async fn grpc() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Store::default();
        let service = TraceServiceServer::new(Grpc(store.clone()));
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let svc = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        });
        Receiver { addr, store }
    }

    /// OTLP/HTTP with protobuf bodies, like a collector on port 4318.
    pub(crate) async fn http() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let store = Store::default();
        let shared = store.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
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
        Receiver { addr, store }
    }

    /// Accepts TCP connections and never reads or answers: a hung collector.
    pub(crate) async fn hanging() -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let mut held = Vec::new();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                held.push(tcp);
            }
        });
        Receiver {
            addr,
            store: Store::default(),
        }
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.store.spans.lock().unwrap().clone()
    }

    /// Waits until `n` spans of trace `trace_id` have arrived.
    pub(crate) async fn wait_for_trace(&self, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
        let ok = super::wait_until(Duration::from_secs(15), || async {
            self.spans()
                .iter()
                .filter(|s| s.trace_id == trace_id)
                .count()
                >= n
        })
        .await;
        let spans: Vec<_> = self
            .spans()
            .into_iter()
            .filter(|s| s.trace_id == trace_id)
            .collect();
        assert!(ok, "expected {n} spans of trace {trace_id}, got {spans:#?}");
        spans
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
        .map(|v| v.as_bytes() == b"application/x-protobuf")
        .unwrap_or(false);
    if !is_proto {
        return reply(StatusCode::UNSUPPORTED_MEDIA_TYPE, Vec::new());
    }
    let Ok(body) = req.into_body().collect().await else {
        return reply(StatusCode::BAD_REQUEST, Vec::new());
    };
    match ExportTraceServiceRequest::decode(body.to_bytes()) {
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
