//! What usher tells the outside world about the traffic it carries:
//! OpenTelemetry spans over OTLP ([`trace`]), Prometheus metrics
//! ([`metrics`]), a JSON access log line per request and operational logs
//! with a log level that can change at run time ([`logs`]).
//!
//! [`observe`] ties them to one request; [`propagation`] reads and writes
//! trace context headers.

pub(crate) mod access_log;
pub(crate) mod line_writer;
pub mod logs;
// metrics.rs is being split into smaller files on another branch; its
// unreachable `pub` items become pub(crate) once that has landed, not here.
#[allow(unreachable_pub)]
pub(crate) mod metrics;
pub(crate) mod observe;
pub mod propagation;
pub(crate) mod trace;

use std::sync::Arc;
use std::time::Duration;

pub use metrics::{ConnMetrics, Direction, Metrics};
pub(crate) use observe::{ErrorKind, Observation, ObservedBody, Peer, PolicyVerdict};

use crate::config::TelemetryConfig;

/// Shared by every connection of a sidecar.
pub struct Telemetry {
    pub metrics: Arc<Metrics>,
    /// Present when `telemetry.otlp` is configured; without it no span is
    /// made and trace headers pass through untouched.
    pub(crate) tracing: Option<trace::Tracing>,
    pub(crate) access_log: bool,
}

impl Telemetry {
    /// Builds metrics and, when configured, the span exporter on its own
    /// thread (`usher-otlp`, with its own runtime: no export work runs on
    /// the request workers).
    pub fn start(
        config: &TelemetryConfig,
        service: &str,
        spiffe_id: &str,
    ) -> Result<Arc<Telemetry>, trace::ExporterError> {
        let metrics = Metrics::new(config.max_peer_labels);
        let tracing = match &config.otlp {
            Some(otlp) => Some(trace::Tracing::start(
                otlp,
                config.sampling,
                service,
                spiffe_id,
                metrics.clone(),
            )?),
            None => None,
        };
        Ok(Arc::new(Telemetry {
            metrics,
            tracing,
            access_log: config.access_log,
        }))
    }

    /// Sends the spans still queued, for at most `timeout`, and writes
    /// out the buffered access log and decision log lines.
    pub(crate) async fn shutdown(&self, timeout: Duration) {
        if let Some(tracing) = &self.tracing {
            tracing.shutdown(timeout).await;
        }
        line_writer::flush();
    }
}
