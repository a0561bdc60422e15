//! usher's own telemetry: spans accepted by the OTLP collector or not
//! delivered (queue full, export failed), and access log lines dropped
//! because stdout did not keep up.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

/// Why spans were not delivered to the collector.
#[derive(Clone, Copy, Debug)]
pub enum SpanDrop {
    /// The export queue was full (the collector is slow or down).
    QueueFull,
    /// Export failed after the exporter's retries.
    ExportFailed,
}

/// The span families.
pub(super) struct Traces {
    spans_exported: Counter,
    spans_dropped: [Counter; 2],
}

impl Traces {
    pub(super) fn register(registry: &mut Registry) -> Traces {
        let spans_exported = Counter::default();
        registry.register(
            "trace_spans_exported",
            "Spans accepted by the OTLP collector",
            spans_exported.clone(),
        );
        let drop_family = Family::<DropLabels, Counter>::default();
        registry.register(
            "trace_spans_dropped",
            "Spans not delivered: the export queue was full, or export failed after retries",
            drop_family.clone(),
        );
        let drop = |reason| drop_family.get_or_create_owned(&DropLabels { reason });
        Traces {
            spans_exported,
            spans_dropped: [drop("queue_full"), drop("export_failed")],
        }
    }
}

/// The access log's dropped lines, counted by the access log itself and
/// brought into the counter at each scrape.
pub(super) struct AccessLog {
    dropped: Counter,
    /// The access log's count at the previous scrape.
    reported: AtomicU64,
}

impl AccessLog {
    pub(super) fn register(registry: &mut Registry) -> AccessLog {
        let dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because stdout did not keep up",
            dropped.clone(),
        );
        AccessLog {
            dropped,
            reported: AtomicU64::new(0),
        }
    }

    /// Adds the lines dropped since the previous scrape.
    pub(super) fn catch_up(&self) {
        let dropped = crate::telemetry::access_log::dropped();
        let before = self.reported.swap(dropped, Ordering::Relaxed);
        self.dropped.inc_by(dropped.saturating_sub(before));
    }
}

impl Metrics {
    pub fn spans_exported(&self, n: u64) {
        self.traces.spans_exported.inc_by(n);
    }

    pub fn spans_dropped(&self, why: SpanDrop, n: u64) {
        self.traces.spans_dropped[why as usize].inc_by(n);
    }
}
