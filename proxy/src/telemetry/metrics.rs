//! Prometheus metrics, served as text on the admin listener's `/metrics`:
//! OpenMetrics 1.0 to a scraper that asks for it, the Prometheus text
//! format 0.0.4 otherwise (see [`Format`]), with the standard `process_*`
//! metrics read from `/proc/self` at scrape time on Linux.
//!
//! Cardinality is bounded by construction: every label value comes from a
//! fixed set (direction, status code, gRPC status, classification, reason,
//! decision) or from the mesh's identities, and inbound peer identities
//! are capped at `telemetry.max_peer_labels` (later callers share the
//! label `other`). Paths and authorities never become labels.
//!
//! The request path does not take a process-wide lock per request: each
//! connection keeps its own small cache of counter handles (see
//! [`ConnMetrics`]), and the fixed-label counters are resolved once here.
//!
//! Each subsystem registers its own families and records into them, as
//! Linkerd's proxy does: `requests` (HTTP requests and their latency),
//! `connections` (open and accepted connections; refused, upgraded and
//! unknown-destination ones), `tls` (handshake failures), `policy`
//! (authorization decisions), `identity` (the certificate in use), `guard`
//! (JWT authentication and rate limits) and `telemetry` (spans and access
//! log lines usher could not deliver). [`Metrics`] composes them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

mod connections;
mod format;
mod guard;
mod identity;
mod policy;
#[cfg(target_os = "linux")]
mod process;
mod requests;
mod telemetry;
mod tls;

#[cfg(test)]
use connections::upgrade_protocol;
pub use format::Format;
pub use requests::{ConnMetrics, GrpcCode, Outcome};
pub use telemetry::SpanDrop;

/// The peer label of requests whose peer is not known (no route matched)
/// and of inbound callers past the label cap.
pub const UNKNOWN_PEER: &str = "unknown";
pub const OTHER_PEER: &str = "other";
/// The peer label of plain-text inbound callers (`inbound.mode:
/// permissive`): no identity. Their series also carry `tls="false"`.
pub const PLAINTEXT_PEER: &str = "unauthenticated";

/// Which side of the sidecar a request or connection is on.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Direction {
    Inbound,
    Outbound,
}

impl EncodeLabelValue for Direction {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder,
    ) -> Result<(), std::fmt::Error> {
        EncodeLabelValue::encode(&self.as_str(), encoder)
    }
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Every metric usher serves.
pub struct Metrics {
    /// The root: `process_*` here, usher's own metrics in a sub-registry
    /// with the `usher` prefix.
    registry: Registry,
    requests: requests::Requests,
    connections: connections::Connections,
    tls: tls::Tls,
    policy: policy::Policy,
    identity: identity::Identity,
    traces: telemetry::Traces,
    guard: guard::Guard,
    outcomes: connections::Outcomes,
    access_log: telemetry::AccessLog,
    decision_log: telemetry::DecisionLog,
    peers: PeerLabels,
}

impl Metrics {
    pub fn new(max_peer_labels: usize) -> Arc<Metrics> {
        let mut root = Registry::default();
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("usher");
        // The order of registration is the order of `/metrics`; it is the
        // order in which the families were added to usher, so connections
        // and telemetry register in two steps.
        let requests = requests::Requests::register(registry);
        let connections = connections::Connections::register(registry);
        let tls = tls::Tls::register(registry);
        let policy = policy::Policy::register(registry);
        let identity = identity::Identity::register(registry);
        let traces = telemetry::Traces::register(registry);
        let guard = guard::Guard::register(registry);
        let outcomes = connections::Outcomes::register(registry);
        let access_log = telemetry::AccessLog::register(registry);
        let decision_log = telemetry::DecisionLog::register(registry);
        registry.register(
            "build",
            "usher's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );
        Arc::new(Metrics {
            requests,
            connections,
            tls,
            policy,
            identity,
            traces,
            guard,
            outcomes,
            access_log,
            decision_log,
            peers: PeerLabels::new(max_peer_labels),
            registry: root,
        })
    }

    /// Every metric in the Prometheus text format 0.0.4.
    pub fn encode(&self) -> String {
        self.encode_as(Format::Prometheus)
    }

    /// Every metric in `format`. Both come from the same registry through
    /// prometheus-client's own encoders, so they always hold the same
    /// samples.
    pub fn encode_as(&self, format: Format) -> String {
        self.access_log.catch_up();
        self.decision_log.catch_up();
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = match format {
            Format::Prometheus => {
                prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
            }
            Format::OpenMetrics => {
                prometheus_client::encoding::text::encode(&mut out, &self.registry)
            }
        };
        out
    }

    /// The label for an inbound caller: its SPIFFE ID while fewer than
    /// `max_peer_labels` callers have been seen, `other` after that.
    pub fn peer_label(&self, spiffe_id: &str) -> Arc<str> {
        self.peers.get(spiffe_id)
    }
}

/// Interns inbound peer labels up to a cap (taken once per connection).
struct PeerLabels {
    max: usize,
    seen: Mutex<HashMap<Box<str>, Arc<str>>>,
    other: Arc<str>,
}

impl PeerLabels {
    fn new(max: usize) -> PeerLabels {
        PeerLabels {
            max,
            seen: Mutex::new(HashMap::new()),
            other: Arc::from(OTHER_PEER),
        }
    }

    fn get(&self, id: &str) -> Arc<str> {
        let Ok(mut seen) = self.seen.lock() else {
            return self.other.clone();
        };
        if let Some(label) = seen.get(id) {
            return label.clone();
        }
        if seen.len() >= self.max {
            return self.other.clone();
        }
        let label: Arc<str> = Arc::from(id);
        seen.insert(Box::from(id), label.clone());
        label
    }
}

#[cfg(test)]
mod tests;
