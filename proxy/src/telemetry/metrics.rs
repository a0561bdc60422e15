//! Prometheus metrics, served as text on the admin listener's `/metrics`.
//!
//! Cardinality is bounded by construction: every label value comes from a
//! fixed set (direction, status code, reason, decision) or from the mesh's
//! identities, and inbound peer identities are capped at
//! `telemetry.max_peer_labels` (later callers share the label `other`).
//! Paths and authorities never become labels.
//!
//! The request path does not take a process-wide lock per request: each
//! connection keeps its own small cache of counter handles (see
//! [`ConnMetrics`]), and the fixed-label counters are resolved once here.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

/// The peer label of requests whose peer is not known (no route matched)
/// and of inbound callers past the label cap.
pub const UNKNOWN_PEER: &str = "unknown";
pub const OTHER_PEER: &str = "other";

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
struct RequestLabels {
    direction: Direction,
    code: u16,
    peer: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DurationLabels {
    direction: Direction,
    class: &'static str,
    peer: Arc<str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DirectionLabels {
    direction: Direction,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    direction: Direction,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    decision: &'static str,
    mode: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Why spans were not delivered to the collector.
#[derive(Clone, Copy, Debug)]
pub enum SpanDrop {
    /// The export queue was full (the collector is slow or down).
    QueueFull,
    /// Export failed after the exporter's retries.
    ExportFailed,
}

/// Every metric usher serves.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
    open: [Gauge; 2],
    accepted: [Counter; 2],
    handshake_failures: Family<HandshakeLabels, Counter>,
    /// [enforce, audit] × [allow, deny]
    policy: [[Counter; 2]; 2],
    cert_expiry: Gauge<f64, AtomicU64>,
    /// [success, failure]
    renewals: [Counter; 2],
    last_renewal: Gauge<f64, AtomicU64>,
    spans_exported: Counter,
    spans_dropped: [Counter; 2],
    authn_failures: Family<ReasonLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    connections_refused: Family<DirectionLabels, Counter>,
    access_log_dropped: Counter,
    access_log_reported: AtomicU64,
    peers: PeerLabels,
}

/// Request latency buckets in seconds: 0.5 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

impl Metrics {
    pub fn new(max_peer_labels: usize) -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("usher");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by direction, response status code and peer SPIFFE ID",
            requests.clone(),
        );
        let durations = Family::<DurationLabels, Histogram>::new_with_constructor(
            histogram as fn() -> Histogram,
        );
        registry.register_with_unit(
            "request_duration",
            "Time from request to the end of the response body, by direction, status class and peer",
            Unit::Seconds,
            durations.clone(),
        );
        let open_family = Family::<DirectionLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by direction",
            open_family.clone(),
        );
        let accepted_family = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted (inbound: after a successful mTLS handshake)",
            accepted_family.clone(),
        );
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "Mutual TLS handshakes that failed, by direction and reason",
            handshake_failures.clone(),
        );
        let policy_family = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_decisions",
            "Authorization decisions, by decision and policy mode",
            policy_family.clone(),
        );
        let cert_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "identity_cert_expiry_timestamp_seconds",
            "When the workload certificate in use expires (Unix time)",
            cert_expiry.clone(),
        );
        let renewal_family = Family::<ResultLabels, Counter>::default();
        registry.register(
            "identity_renewals",
            "Certificate renewals (CA enrolment and renewal, or new files on disk), by result",
            renewal_family.clone(),
        );
        let last_renewal = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "identity_last_renewal_timestamp_seconds",
            "When the certificate in use was installed (Unix time)",
            last_renewal.clone(),
        );
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
        let authn_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "authn_failures",
            "Requests refused by JWT authentication, by reason",
            authn_failures.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (429), by bucket scope (caller, route)",
            rate_limited.clone(),
        );
        let connections_refused = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept because the listener was at max_connections",
            connections_refused.clone(),
        );
        let access_log_dropped = Counter::default();
        registry.register(
            "access_log_dropped",
            "Access log lines dropped because stdout did not keep up",
            access_log_dropped.clone(),
        );
        registry.register(
            "build",
            "usher's version",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        let dir = |d| DirectionLabels { direction: d };
        let policy = |mode| {
            let get =
                |decision| policy_family.get_or_create_owned(&PolicyLabels { decision, mode });
            [get("allow"), get("deny")]
        };
        let drop = |reason| drop_family.get_or_create_owned(&DropLabels { reason });
        Arc::new(Metrics {
            requests,
            durations,
            open: [
                open_family.get_or_create_owned(&dir(Direction::Inbound)),
                open_family.get_or_create_owned(&dir(Direction::Outbound)),
            ],
            accepted: [
                accepted_family.get_or_create_owned(&dir(Direction::Inbound)),
                accepted_family.get_or_create_owned(&dir(Direction::Outbound)),
            ],
            handshake_failures,
            policy: [policy("enforce"), policy("audit")],
            cert_expiry,
            renewals: [
                renewal_family.get_or_create_owned(&ResultLabels { result: "success" }),
                renewal_family.get_or_create_owned(&ResultLabels { result: "failure" }),
            ],
            last_renewal,
            spans_exported,
            spans_dropped: [drop("queue_full"), drop("export_failed")],
            authn_failures,
            rate_limited,
            connections_refused,
            access_log_dropped,
            access_log_reported: AtomicU64::new(0),
            peers: PeerLabels::new(max_peer_labels),
            registry,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let dropped = super::access_log::dropped();
        let before = self
            .access_log_reported
            .swap(dropped, std::sync::atomic::Ordering::Relaxed);
        self.access_log_dropped
            .inc_by(dropped.saturating_sub(before));
        let mut out = String::with_capacity(8 * 1024);
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    /// A connection opened; the returned guard marks it closed when dropped.
    pub fn connection_opened(self: &Arc<Self>, direction: Direction) -> OpenConnection {
        let i = direction as usize;
        self.accepted[i].inc();
        self.open[i].inc();
        OpenConnection {
            metrics: self.clone(),
            direction,
        }
    }

    pub fn handshake_failed(&self, direction: Direction, reason: &'static str) {
        self.handshake_failures
            .get_or_create(&HandshakeLabels { direction, reason })
            .inc();
    }

    pub fn policy_decision(&self, audit: bool, allowed: bool) {
        self.policy[usize::from(audit)][usize::from(!allowed)].inc();
    }

    pub fn set_cert_expiry(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        self.cert_expiry.set(secs);
    }

    /// A certificate was installed (`Ok`) or could not be obtained.
    pub fn renewal(&self, ok: bool) {
        self.renewals[usize::from(!ok)].inc();
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64();
            self.last_renewal.set(now);
        }
    }

    pub fn authn_failure(&self, reason: &'static str) {
        self.authn_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn rate_limited(&self, scope: &'static str) {
        self.rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }

    pub fn connection_refused(&self, direction: Direction) {
        self.connections_refused
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    pub fn spans_exported(&self, n: u64) {
        self.spans_exported.inc_by(n);
    }

    pub fn spans_dropped(&self, why: SpanDrop, n: u64) {
        self.spans_dropped[why as usize].inc_by(n);
    }

    /// The label for an inbound caller: its SPIFFE ID while fewer than
    /// `max_peer_labels` callers have been seen, `other` after that.
    pub fn peer_label(&self, spiffe_id: &str) -> Arc<str> {
        self.peers.get(spiffe_id)
    }
}

/// Closes a connection in the gauge when dropped.
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    direction: Direction,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.open[self.direction as usize].dec();
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

/// A connection's handles to the request counters it has used: requests
/// on one connection mostly share a peer and a few status codes, so after
/// the first request the family's lock is not taken again.
pub struct ConnMetrics {
    metrics: Arc<Metrics>,
    direction: Direction,
    cache: Mutex<Vec<CacheEntry>>,
}

struct CacheEntry {
    peer: Arc<str>,
    code: u16,
    count: Counter,
    duration: Histogram,
}

/// Entries kept per connection; rare combinations beyond it go to the
/// families directly.
const CACHE_ENTRIES: usize = 8;

impl ConnMetrics {
    pub fn new(metrics: Arc<Metrics>, direction: Direction) -> ConnMetrics {
        ConnMetrics {
            metrics,
            direction,
            cache: Mutex::new(Vec::new()),
        }
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn direction(&self) -> Direction {
        self.direction
    }

    /// Counts one finished request.
    pub fn record(&self, peer: &Arc<str>, code: u16, duration: Duration) {
        let secs = duration.as_secs_f64();
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(e) = cache
                .iter()
                .find(|e| e.code == code && Arc::ptr_eq(&e.peer, peer))
            {
                e.count.inc();
                e.duration.observe(secs);
                return;
            }
            let (count, duration) = self.handles(peer, code);
            count.inc();
            duration.observe(secs);
            if cache.len() < CACHE_ENTRIES {
                cache.push(CacheEntry {
                    peer: peer.clone(),
                    code,
                    count,
                    duration,
                });
            }
            return;
        }
        let (count, duration) = self.handles(peer, code);
        count.inc();
        duration.observe(secs);
    }

    fn handles(&self, peer: &Arc<str>, code: u16) -> (Counter, Histogram) {
        let count = self.metrics.requests.get_or_create_owned(&RequestLabels {
            direction: self.direction,
            code,
            peer: peer.clone(),
        });
        let duration = self.metrics.durations.get_or_create_owned(&DurationLabels {
            direction: self.direction,
            class: status_class(code),
            peer: peer.clone(),
        });
        (count, duration)
    }
}

fn status_class(code: u16) -> &'static str {
    match code {
        100..=199 => "1xx",
        200..=299 => "2xx",
        300..=399 => "3xx",
        400..=499 => "4xx",
        _ => "5xx",
    }
}

#[cfg(test)]
mod tests;
