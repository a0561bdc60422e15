//! What one span costs on the way to the collector, piece by piece, and
//! what writing the OTLP protobuf span straight from usher's own fields
//! would cost instead (BENCHMARKS.md, "Tracing"):
//!
//! - `sdk`: the OpenTelemetry SDK path usher takes per request: a
//!   `SpanBuilder`, sampling, ids, ~13 `KeyValue` attributes (the ones
//!   `observe.rs` sets on a SERVER span), `end()` into `SpanData` handed to
//!   a span processor;
//! - `otlp`: the exporter's part per span: `SpanData` → OTLP protobuf
//!   messages (opentelemetry-proto's transform, as opentelemetry-otlp
//!   does) and the protobuf encoding of a 512-span request;
//! - `direct`: the OTLP protobuf span built from the same values
//!   (ids, times, attributes) with no SDK span, and its encoding;
//! - `wire`: the same span written straight into the protobuf bytes of
//!   the batch (no message structs, no per-attribute `String`s); checked
//!   once against `direct` by decoding it.
//!
//! Run: `cargo bench -p usher-benches --bench spans`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use opentelemetry::trace::{Span as _, SpanKind, Tracer as _, TracerProvider as _};
use opentelemetry::KeyValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, InstrumentationScope};
use opentelemetry_proto::tonic::resource::v1::Resource as ProtoResource;
use opentelemetry_proto::tonic::trace::v1::{span, ResourceSpans, ScopeSpans, Span, Status};
use opentelemetry_proto::transform::common::tonic::ResourceAttributesWithSchema;
use opentelemetry_proto::transform::trace::tonic::group_spans_by_resource_and_scope;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;
use prost::encoding::{encode_key, encode_varint, encoded_len_varint, key_len, WireType};
use prost::Message as _;

const BATCH: usize = 512;

/// The values one inbound request gives its span.
struct Fields {
    method: &'static str,
    path: String,
    host: String,
    port: i64,
    client_ip: String,
    client_port: i64,
    user_agent: String,
    protocol: &'static str,
    peer_id: String,
    status: i64,
}

fn fields() -> Fields {
    Fields {
        method: "GET",
        path: "/orders/42".into(),
        host: "payments".into(),
        port: 8080,
        client_ip: "10.1.2.3".into(),
        client_port: 51234,
        user_agent: "orders-app/1.0".into(),
        protocol: "1.1",
        peer_id: "spiffe://mesh.bench/ns/shop/sa/orders".into(),
        status: 200,
    }
}

fn sdk_attributes(f: &Fields) -> Vec<KeyValue> {
    vec![
        KeyValue::new("http.request.method", f.method),
        KeyValue::new("url.path", f.path.clone()),
        KeyValue::new("url.scheme", "https"),
        KeyValue::new("server.address", f.host.clone()),
        KeyValue::new("server.port", f.port),
        KeyValue::new("client.address", f.client_ip.clone()),
        KeyValue::new("network.peer.address", f.client_ip.clone()),
        KeyValue::new("network.peer.port", f.client_port),
        KeyValue::new("user_agent.original", f.user_agent.clone()),
        KeyValue::new("network.protocol.version", f.protocol),
        KeyValue::new("usher.direction", "inbound"),
        KeyValue::new("usher.peer.spiffe_id", f.peer_id.clone()),
    ]
}

/// Collects ended spans, as usher's export queue receives them.
#[derive(Debug, Default)]
struct Collect(std::sync::Mutex<Vec<SpanData>>);

impl SpanProcessor for Collect {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}
    fn on_end(&self, span: SpanData) {
        self.0.lock().unwrap().push(span);
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

fn resource() -> Resource {
    Resource::builder_empty()
        .with_service_name("payments")
        .with_attributes([
            KeyValue::new("service.version", "0.1.0"),
            KeyValue::new("usher.spiffe_id", "spiffe://mesh.bench/ns/shop/sa/payments"),
        ])
        .build()
}

/// A batch of SDK spans, as the export thread receives it.
fn sdk_batch(f: &Fields) -> Vec<SpanData> {
    let collect = std::sync::Arc::new(Collect::default());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ArcProcessor(collect.clone()))
        .with_sampler(Sampler::AlwaysOn)
        .build();
    let tracer = provider.tracer("usher");
    for _ in 0..BATCH {
        sdk_span(&tracer, f);
    }
    let spans = std::mem::take(&mut *collect.0.lock().unwrap());
    drop(provider);
    spans
}

#[derive(Debug)]
struct ArcProcessor(std::sync::Arc<Collect>);

impl SpanProcessor for ArcProcessor {
    fn on_start(&self, s: &mut opentelemetry_sdk::trace::Span, cx: &opentelemetry::Context) {
        self.0.on_start(s, cx)
    }
    fn on_end(&self, span: SpanData) {
        self.0.on_end(span)
    }
    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }
    fn shutdown_with_timeout(&self, _: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// usher's per-request SDK work for one span (observe.rs).
fn sdk_span(tracer: &opentelemetry_sdk::trace::SdkTracer, f: &Fields) {
    let builder = tracer.span_builder(f.method).with_kind(SpanKind::Server);
    let mut span = tracer.build_with_context(builder, &opentelemetry::Context::new());
    if span.is_recording() {
        span.set_attributes(sdk_attributes(f));
    }
    span.set_attribute(KeyValue::new("http.response.status_code", f.status));
    span.end();
}

fn string(key: &str, value: &str) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(value.to_owned())),
        }),
        ..Default::default()
    }
}

fn int(key: &str, value: i64) -> opentelemetry_proto::tonic::common::v1::KeyValue {
    opentelemetry_proto::tonic::common::v1::KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(any_value::Value::IntValue(value)),
        }),
        ..Default::default()
    }
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The OTLP span written straight from the request's values: ids from a
/// fast RNG (the SDK's generator is also a thread-local RNG), two clock
/// reads, the same attributes.
fn direct_span(f: &Fields) -> Span {
    let start = SystemTime::now();
    let trace_id = fastrand::u128(..).to_be_bytes().to_vec();
    let span_id = fastrand::u64(..).to_be_bytes().to_vec();
    let end = SystemTime::now();
    Span {
        trace_id,
        span_id,
        trace_state: String::new(),
        parent_span_id: Vec::new(),
        flags: 0x101,
        name: f.method.to_owned(),
        kind: span::SpanKind::Server as i32,
        start_time_unix_nano: nanos(start),
        end_time_unix_nano: nanos(end),
        attributes: vec![
            string("http.request.method", f.method),
            string("url.path", &f.path),
            string("url.scheme", "https"),
            string("server.address", &f.host),
            int("server.port", f.port),
            string("client.address", &f.client_ip),
            string("network.peer.address", &f.client_ip),
            int("network.peer.port", f.client_port),
            string("user_agent.original", &f.user_agent),
            string("network.protocol.version", f.protocol),
            string("usher.direction", "inbound"),
            string("usher.peer.spiffe_id", &f.peer_id),
            int("http.response.status_code", f.status),
        ],
        dropped_attributes_count: 0,
        events: Vec::new(),
        dropped_events_count: 0,
        links: Vec::new(),
        dropped_links_count: 0,
        status: Some(Status::default()),
    }
}

fn direct_request(
    spans: Vec<Span>,
    resource: &ResourceAttributesWithSchema,
) -> ExportTraceServiceRequest {
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(ProtoResource {
                attributes: resource.attributes.0.clone(),
                dropped_attributes_count: 0,
                entity_refs: Vec::new(),
            }),
            scope_spans: vec![ScopeSpans {
                scope: Some(InstrumentationScope {
                    name: "usher".into(),
                    ..Default::default()
                }),
                spans,
                schema_url: String::new(),
            }],
            schema_url: String::new(),
        }],
    }
}

/// Protobuf wire format by hand: a length-delimited string field.
fn put_str(buf: &mut Vec<u8>, tag: u32, s: &[u8]) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(s.len() as u64, buf);
    buf.extend_from_slice(s);
}

fn str_len(tag: u32, len: usize) -> usize {
    key_len(tag) + encoded_len_varint(len as u64) + len
}

/// `attributes` (Span field 9): KeyValue { key: 1, value: AnyValue { string_value: 1 } }.
fn put_attr_str(buf: &mut Vec<u8>, key: &str, value: &str) {
    let any = str_len(1, value.len());
    let kv = str_len(1, key.len()) + key_len(2) + encoded_len_varint(any as u64) + any;
    encode_key(9, WireType::LengthDelimited, buf);
    encode_varint(kv as u64, buf);
    put_str(buf, 1, key.as_bytes());
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(any as u64, buf);
    put_str(buf, 1, value.as_bytes());
}

/// KeyValue { key: 1, value: AnyValue { int_value: 3 } }.
fn put_attr_int(buf: &mut Vec<u8>, key: &str, value: i64) {
    let any = key_len(3) + encoded_len_varint(value as u64);
    let kv = str_len(1, key.len()) + key_len(2) + encoded_len_varint(any as u64) + any;
    encode_key(9, WireType::LengthDelimited, buf);
    encode_varint(kv as u64, buf);
    put_str(buf, 1, key.as_bytes());
    encode_key(2, WireType::LengthDelimited, buf);
    encode_varint(any as u64, buf);
    encode_key(3, WireType::Varint, buf);
    encode_varint(value as u64, buf);
}

/// One span's message bytes, written into `buf` (cleared first).
fn wire_span(buf: &mut Vec<u8>, f: &Fields) {
    buf.clear();
    let start = nanos(SystemTime::now());
    put_str(buf, 1, &fastrand::u128(..).to_be_bytes());
    put_str(buf, 2, &fastrand::u64(..).to_be_bytes());
    put_str(buf, 5, f.method.as_bytes());
    encode_key(6, WireType::Varint, buf);
    encode_varint(span::SpanKind::Server as u64, buf);
    encode_key(7, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&start.to_le_bytes());
    encode_key(8, WireType::SixtyFourBit, buf);
    buf.extend_from_slice(&nanos(SystemTime::now()).to_le_bytes());
    put_attr_str(buf, "http.request.method", f.method);
    put_attr_str(buf, "url.path", &f.path);
    put_attr_str(buf, "url.scheme", "https");
    put_attr_str(buf, "server.address", &f.host);
    put_attr_int(buf, "server.port", f.port);
    put_attr_str(buf, "client.address", &f.client_ip);
    put_attr_str(buf, "network.peer.address", &f.client_ip);
    put_attr_int(buf, "network.peer.port", f.client_port);
    put_attr_str(buf, "user_agent.original", &f.user_agent);
    put_attr_str(buf, "network.protocol.version", f.protocol);
    put_attr_str(buf, "usher.direction", "inbound");
    put_attr_str(buf, "usher.peer.spiffe_id", &f.peer_id);
    put_attr_int(buf, "http.response.status_code", f.status);
    // Status {} (UNSET) as an empty message: field 15.
    encode_key(15, WireType::LengthDelimited, buf);
    encode_varint(0, buf);
    encode_key(16, WireType::ThirtyTwoBit, buf);
    buf.extend_from_slice(&0x101u32.to_le_bytes());
}

fn spans(c: &mut Criterion) {
    let f = fields();
    let resource = resource();
    let attrs = ResourceAttributesWithSchema::from(&resource);

    let mut g = c.benchmark_group("span");
    g.throughput(Throughput::Elements(BATCH as u64));
    // The SDK span per request: build, attributes, end → SpanData.
    let collect = std::sync::Arc::new(Collect::default());
    let provider = SdkTracerProvider::builder()
        .with_span_processor(ArcProcessor(collect.clone()))
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            1.0,
        ))))
        .build();
    let tracer = provider.tracer("usher");
    g.bench_function("sdk: build + attributes + end, 512 spans", |b| {
        b.iter(|| {
            for _ in 0..BATCH {
                sdk_span(&tracer, &f);
            }
            // Dropping the SpanData is the exporter's, counted below.
            black_box(std::mem::take(&mut *collect.0.lock().unwrap()))
        })
    });
    g.bench_function(
        "otlp: SpanData → protobuf messages + encode, 512 spans",
        |b| {
            b.iter_batched(
                || sdk_batch(&f),
                |batch| {
                    let request = ExportTraceServiceRequest {
                        resource_spans: group_spans_by_resource_and_scope(batch, &attrs),
                    };
                    black_box(request.encode_to_vec())
                },
                BatchSize::LargeInput,
            )
        },
    );
    g.bench_function(
        "direct: protobuf span from usher's fields + encode, 512 spans",
        |b| {
            b.iter(|| {
                let spans: Vec<Span> = (0..BATCH).map(|_| direct_span(&f)).collect();
                black_box(direct_request(spans, &attrs).encode_to_vec())
            })
        },
    );
    // The hand-written bytes decode to the span `direct` builds.
    let mut one = Vec::new();
    wire_span(&mut one, &f);
    let decoded = Span::decode(one.as_slice()).unwrap();
    let expected = direct_span(&f);
    assert_eq!(decoded.attributes, expected.attributes);
    assert_eq!(
        (decoded.kind, &decoded.name),
        (expected.kind, &expected.name)
    );
    assert_eq!(
        (decoded.flags, &decoded.status),
        (expected.flags, &expected.status)
    );
    assert_eq!((decoded.trace_id.len(), decoded.span_id.len()), (16, 8));
    g.bench_function("wire: protobuf bytes from usher's fields, 512 spans", |b| {
        let mut span = Vec::with_capacity(1024);
        b.iter(|| {
            // The spans field of ScopeSpans (2), each length-prefixed.
            let mut batch = Vec::with_capacity(BATCH * 600);
            for _ in 0..BATCH {
                wire_span(&mut span, &f);
                put_str(&mut batch, 2, &span);
            }
            black_box(batch)
        })
    });
    g.finish();
}

criterion_group!(benches, spans);
criterion_main!(benches);
