//! Real OTLP trace receivers for the tests (usher-otlp-sink's: gRPC,
//! OTLP/HTTP with protobuf bodies, and a "collector" that accepts
//! connections and never answers), with waits that fail the test.

use std::net::SocketAddr;
use std::time::Duration;

pub use usher_otlp_sink::ReceivedSpan;

/// OTLP span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
pub const KIND_SERVER: i32 = usher_otlp_sink::KIND_SERVER;
pub const KIND_CLIENT: i32 = usher_otlp_sink::KIND_CLIENT;
/// OTLP status codes.
pub const STATUS_UNSET: i32 = usher_otlp_sink::STATUS_UNSET;
pub const STATUS_ERROR: i32 = usher_otlp_sink::STATUS_ERROR;

pub struct Receiver {
    pub addr: SocketAddr,
    inner: usher_otlp_sink::Receiver,
}

impl Receiver {
    fn started(inner: std::io::Result<usher_otlp_sink::Receiver>) -> Receiver {
        let inner = inner.expect("start an OTLP receiver");
        Receiver {
            addr: inner.addr(),
            inner,
        }
    }

    /// OTLP/gRPC (HTTP/2 cleartext), like a collector on port 4317.
    pub async fn grpc() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::grpc().await)
    }

    /// OTLP/HTTP with protobuf bodies, like a collector on port 4318.
    pub async fn http() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::http().await)
    }

    /// Accepts TCP connections and never reads or answers: a hung collector.
    pub async fn hanging() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::hanging().await)
    }

    pub fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    pub fn spans(&self) -> Vec<ReceivedSpan> {
        self.inner.spans()
    }

    /// Waits until `n` spans of trace `trace_id` have arrived.
    pub async fn wait_for_trace(&self, trace_id: &str, n: usize) -> Vec<ReceivedSpan> {
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

    /// Waits until at least `n` spans have arrived in all.
    pub async fn wait_for_spans(&self, n: usize) -> Vec<ReceivedSpan> {
        let ok = super::wait_until(Duration::from_secs(15), || async {
            self.spans().len() >= n
        })
        .await;
        let spans = self.spans();
        assert!(ok, "expected {n} spans, got {spans:#?}");
        spans
    }
}
