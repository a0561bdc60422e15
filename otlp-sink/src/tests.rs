use hyper::client::conn::http1;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span, Status};

use super::*;

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

/// One resource (`service.name` = `orders`) with `n` spans.
fn export(n: usize) -> ExportTraceServiceRequest {
    let span = |i: u8| Span {
        trace_id: vec![0xab; 16],
        span_id: vec![i; 8],
        parent_span_id: Vec::new(),
        name: "GET /orders".into(),
        kind: KIND_SERVER,
        start_time_unix_nano: 1_000,
        end_time_unix_nano: 2_500,
        attributes: vec![
            kv("url.path", Value::StringValue("/orders/42".into())),
            kv("http.response.status_code", Value::IntValue(503)),
            kv("error", Value::BoolValue(true)),
        ],
        status: Some(Status {
            code: STATUS_ERROR,
            ..Default::default()
        }),
        ..Default::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", Value::StringValue("orders".into()))],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: (1..=n).map(|i| span(i as u8)).collect(),
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

/// Sends `body` to `rx` over HTTP/1.1: the status of the answer.
async fn send(rx: &Receiver, method: &str, path: &str, ctype: &str, body: Vec<u8>) -> StatusCode {
    let tcp = tokio::net::TcpStream::connect(rx.addr()).await.unwrap();
    let (mut sender, conn) = http1::handshake(TokioIo::new(tcp)).await.unwrap();
    tokio::spawn(conn);
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "collector")
        .header("content-type", ctype)
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    sender.send_request(req).await.unwrap().status()
}

#[tokio::test]
async fn http_keeps_spans_flattened() {
    let rx = Receiver::http().await.unwrap();
    let status = send(
        &rx,
        "POST",
        "/v1/traces",
        "application/x-protobuf",
        export(2).encode_to_vec(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rx.span_count(), 2);
    let spans = rx.spans();
    assert_eq!(spans.len(), 2);
    let s = &spans[0];
    assert_eq!(s.service, "orders");
    assert_eq!(
        s.resource.get("service.name").map(String::as_str),
        Some("orders")
    );
    assert_eq!(s.trace_id, "ab".repeat(16));
    assert_eq!(s.span_id, "01".repeat(8));
    assert_eq!(s.parent_span_id, "");
    assert_eq!(s.name, "GET /orders");
    assert_eq!((s.kind, s.status_code), (KIND_SERVER, STATUS_ERROR));
    assert_eq!((s.start_ns, s.end_ns), (1_000, 2_500));
    assert_eq!(s.attr("url.path"), Some("/orders/42"));
    assert_eq!(s.attr("http.response.status_code"), Some("503"));
    assert_eq!(s.attr("error"), Some("true"));
    assert_eq!(rx.endpoint(), format!("http://{}", rx.addr()));
}

#[tokio::test]
async fn http_refuses_what_a_collector_refuses() {
    let rx = Receiver::http().await.unwrap();
    let proto = "application/x-protobuf";
    let body = export(1).encode_to_vec();
    assert_eq!(
        send(&rx, "GET", "/v1/traces", proto, Vec::new()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&rx, "POST", "/v1/logs", proto, body.clone()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        send(&rx, "POST", "/v1/traces", "application/json", body).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        send(&rx, "POST", "/v1/traces", proto, vec![0xff; 3]).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        send(&rx, "POST", "/v1/traces", proto, vec![0; MAX_EXPORT + 1]).await,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(rx.span_count(), 0);
}

#[tokio::test]
async fn grpc_service_keeps_or_counts() {
    for (store, kept) in [(Store::default(), 3), (Store::counting(), 0)] {
        let service = Grpc(store.clone());
        service
            .export(tonic::Request::new(export(3)))
            .await
            .unwrap();
        assert_eq!(store.count.load(Ordering::Relaxed), 3);
        assert_eq!(store.spans.lock().unwrap().len(), kept);
    }
}
