//! usher's own telemetry: spans accepted by the OTLP collector or not
//! delivered (queue full, export failed), and access log and decision log
//! lines dropped because stdout did not keep up.

use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;
use crate::telemetry::line_writer::{self, Kind};

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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    decision: &'static str,
}

/// The decision log's dropped lines (by decision: a dropped denial is a
/// lost audit record), brought into the counters at each scrape like the
/// access log's.
pub(super) struct DecisionLog {
    /// allow, deny.
    dropped: [(Counter, AtomicU64, Kind); 2],
}

impl DecisionLog {
    pub(super) fn register(registry: &mut Registry) -> DecisionLog {
        let family = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decision_log_dropped",
            "Policy decision log lines dropped because stdout did not keep up",
            family.clone(),
        );
        let counter = |decision| family.get_or_create_owned(&DecisionLabels { decision });
        DecisionLog {
            dropped: [
                (counter("allow"), AtomicU64::new(0), Kind::DecisionAllow),
                (counter("deny"), AtomicU64::new(0), Kind::DecisionDeny),
            ],
        }
    }

    /// Adds the lines dropped since the previous scrape.
    pub(super) fn catch_up(&self) {
        for (counter, reported, kind) in &self.dropped {
            let dropped = line_writer::dropped(*kind);
            let before = reported.swap(dropped, Ordering::Relaxed);
            counter.inc_by(dropped.saturating_sub(before));
        }
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
