//! Spans to an OTLP collector.
//!
//! The SDK's tracer makes spans (ids, sampling, attributes); finished spans
//! go through [`ExportQueue`], usher's own span processor: a bounded queue
//! filled with `try_send` (a full queue drops the span and counts it, so a
//! slow or dead collector never holds up a request). The other end of the
//! queue is the export thread ([`export`]): its own OS thread and runtime,
//! which sends batches with the OTLP exporter (gRPC or HTTP/protobuf),
//! whose retry policy backs off between attempts. The SDK's batch
//! processor is not used because it does not expose how many spans it
//! dropped.

mod export;

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::{
    Sampler, SdkTracer, SdkTracerProvider, Span, SpanData, SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, oneshot, Notify};

use super::metrics::{Metrics, SpanDrop};
use crate::config::OtlpConfig;

#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp: cannot set up the exporter: {0}")]
pub struct ExporterError(String);

/// The tracer and the handle that flushes the queue at shutdown.
pub(crate) struct Tracing {
    pub(crate) tracer: SdkTracer,
    provider: SdkTracerProvider,
    flush: std::sync::Mutex<Option<export::FlushRequest>>,
}

impl Tracing {
    /// Starts the export thread, which builds the exporter (a config the
    /// exporter refuses is returned here). Nothing connects yet: the first
    /// batch does.
    pub(crate) fn start(
        otlp: &OtlpConfig,
        sampling: f64,
        service: &str,
        spiffe_id: &str,
        metrics: Arc<Metrics>,
    ) -> Result<Tracing, ExporterError> {
        let resource = resource(service, spiffe_id);
        let (tx, rx) = mpsc::channel(otlp.queue_size);
        let full = Arc::new(Notify::new());
        let flush = export::spawn(export::Job {
            otlp: otlp.clone(),
            resource: resource.clone(),
            rx,
            full: full.clone(),
            metrics: metrics.clone(),
        })?;
        let provider = SdkTracerProvider::builder()
            .with_span_processor(ExportQueue {
                tx,
                metrics,
                full,
                batch_size: otlp.batch_size.min(otlp.queue_size),
            })
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                sampling,
            ))))
            .with_resource(resource)
            .build();
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "usher");
        Ok(Tracing {
            tracer,
            provider,
            flush: std::sync::Mutex::new(Some(flush)),
        })
    }

    /// Has the export thread send what is queued (waiting at most
    /// `timeout`) and stop.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        let sender = self.flush.lock().ok().and_then(|mut f| f.take());
        if let Some(sender) = sender {
            let (done_tx, done_rx) = oneshot::channel();
            if sender.send(done_tx).is_ok() {
                let _ = tokio::time::timeout(timeout, done_rx).await;
            }
        }
        let _ = self
            .provider
            .shutdown_with_timeout(Duration::from_millis(100));
    }
}

/// The resource attributes of every span (OpenTelemetry resource
/// conventions): `service.name`, `service.version` (usher's version),
/// `service.instance.id` (a random UUID per sidecar start, as the
/// conventions recommend: nothing about the pod or host is exposed),
/// `telemetry.sdk.*` from the SDK's own detector (`opentelemetry`, `rust`,
/// the opentelemetry_sdk version) and `usher.spiffe_id`. The environment
/// (`OTEL_RESOURCE_ATTRIBUTES`) is not read: the config says what is sent.
fn resource(service: &str, spiffe_id: &str) -> Resource {
    Resource::builder_empty()
        .with_detector(Box::new(TelemetryResourceDetector))
        .with_service_name(service.to_owned())
        .with_attributes([
            KeyValue::new("service.version", env!("CARGO_PKG_VERSION")),
            KeyValue::new("service.instance.id", uuid_v4()),
            KeyValue::new("usher.spiffe_id", spiffe_id.to_owned()),
        ])
        .build()
}

/// A random (version 4, RFC 9562) UUID in its usual text form.
fn uuid_v4() -> String {
    let mut b = fastrand::u128(..).to_be_bytes();
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The span processor: finished, sampled spans into the bounded queue.
///
/// The export thread is not woken per span (a cross-thread wake per request
/// cost more than the span itself): it wakes on its batch timer, or when
/// this queue holds a full batch.
#[derive(Debug)]
struct ExportQueue {
    tx: mpsc::Sender<SpanData>,
    metrics: Arc<Metrics>,
    full: Arc<Notify>,
    batch_size: usize,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl SpanProcessor for ExportQueue {
    fn on_start(&self, _span: &mut Span, _cx: &opentelemetry::Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.tx.try_send(span).is_err() {
            self.metrics.spans_dropped(SpanDrop::QueueFull, 1);
            return;
        }
        let queued = self.tx.max_capacity() - self.tx.capacity();
        if queued == self.batch_size {
            self.full.notify_one();
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resource_follows_the_conventions() {
        let r = resource("orders", "spiffe://td/ns/a/sa/orders");
        let get = |k: &'static str| {
            r.get(&opentelemetry::Key::from_static_str(k))
                .map(|v| v.to_string())
        };
        assert_eq!(get("service.name").as_deref(), Some("orders"));
        assert_eq!(
            get("service.version").as_deref(),
            Some(env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(get("telemetry.sdk.name").as_deref(), Some("opentelemetry"));
        assert_eq!(get("telemetry.sdk.language").as_deref(), Some("rust"));
        assert!(get("telemetry.sdk.version").is_some_and(|v| !v.is_empty()));
        assert_eq!(
            get("usher.spiffe_id").as_deref(),
            Some("spiffe://td/ns/a/sa/orders")
        );
        let id = get("service.instance.id").unwrap();
        let other = resource("orders", "spiffe://td/ns/a/sa/orders");
        let other_id = other
            .get(&opentelemetry::Key::from_static_str("service.instance.id"))
            .unwrap()
            .to_string();
        assert_ne!(id, other_id, "a new id per start");
    }

    #[test]
    fn instance_ids_are_version_4_uuids() {
        for _ in 0..100 {
            let id = uuid_v4();
            let groups: Vec<&str> = id.split('-').collect();
            assert_eq!(
                groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
                [8, 4, 4, 4, 12],
                "{id}"
            );
            assert!(id
                .bytes()
                .all(|b| b == b'-' || b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
            assert!(groups[2].starts_with('4'), "{id}");
            assert!(
                matches!(groups[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'),
                "{id}"
            );
        }
    }
}
