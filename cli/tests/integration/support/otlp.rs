//! Real OTLP trace receivers for the tests (usher-otlp-sink's: gRPC,
//! OTLP/HTTP with protobuf bodies, and a "collector" that accepts
//! connections and never answers), with waits that fail the test.

use std::time::Duration;

pub(crate) use usher_otlp_sink::ReceivedSpan;

/// OTLP span kinds (opentelemetry.proto.trace.v1.Span.SpanKind).
pub(crate) const KIND_SERVER: i32 = usher_otlp_sink::KIND_SERVER;
pub(crate) const KIND_CLIENT: i32 = usher_otlp_sink::KIND_CLIENT;
/// OTLP status codes.
pub(crate) const STATUS_UNSET: i32 = usher_otlp_sink::STATUS_UNSET;
pub(crate) const STATUS_ERROR: i32 = usher_otlp_sink::STATUS_ERROR;

pub(crate) struct Receiver {
    inner: usher_otlp_sink::Receiver,
}

impl Receiver {
    fn started(inner: std::io::Result<usher_otlp_sink::Receiver>) -> Receiver {
        Receiver {
            inner: inner.expect("start an OTLP receiver"),
        }
    }

    /// OTLP/gRPC (HTTP/2 cleartext), like a collector on port 4317.
    pub(crate) async fn grpc() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::grpc().await)
    }

    /// OTLP/HTTP with protobuf bodies, like a collector on port 4318.
    pub(crate) async fn http() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::http().await)
    }

    /// Accepts TCP connections and never reads or answers: a hung collector.
    pub(crate) async fn hanging() -> Receiver {
        Receiver::started(usher_otlp_sink::Receiver::hanging().await)
    }

    pub(crate) fn endpoint(&self) -> String {
        self.inner.endpoint()
    }

    pub(crate) fn spans(&self) -> Vec<ReceivedSpan> {
        self.inner.spans()
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
