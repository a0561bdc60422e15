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

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::{EncodeLabel as _, EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};

mod format;
#[cfg(target_os = "linux")]
mod process;

pub use format::Format;

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

/// A gRPC status code (`grpc-status`), 0 (OK) to 16 (UNAUTHENTICATED).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct GrpcCode(u8);

impl GrpcCode {
    pub const OK: GrpcCode = GrpcCode(0);
    pub const UNKNOWN: GrpcCode = GrpcCode(2);

    /// The code in a `grpc-status` header or trailer. A value that is not
    /// one of the 17 codes is UNKNOWN, as gRPC clients read it (and so the
    /// label stays one of 17 values).
    pub fn from_header(value: &[u8]) -> GrpcCode {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<u8>().ok())
            .filter(|c| *c <= 16)
            .map_or(GrpcCode::UNKNOWN, GrpcCode)
    }

    pub fn code(self) -> u8 {
        self.0
    }

    /// The canonical name, e.g. `NOT_FOUND`.
    pub fn name(self) -> &'static str {
        const NAMES: [&str; 17] = [
            "OK",
            "CANCELLED",
            "UNKNOWN",
            "INVALID_ARGUMENT",
            "DEADLINE_EXCEEDED",
            "NOT_FOUND",
            "ALREADY_EXISTS",
            "PERMISSION_DENIED",
            "RESOURCE_EXHAUSTED",
            "FAILED_PRECONDITION",
            "ABORTED",
            "OUT_OF_RANGE",
            "UNIMPLEMENTED",
            "INTERNAL",
            "UNAVAILABLE",
            "DATA_LOSS",
            "UNAUTHENTICATED",
        ];
        NAMES.get(usize::from(self.0)).copied().unwrap_or("UNKNOWN")
    }
}

/// How a finished request is classified in `usher_requests_total`, as
/// Linkerd does: a failure is a 5xx, a gRPC status other than OK, or a
/// response that did not complete.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct Outcome {
    /// Present when the response carried a `grpc-status`.
    pub grpc_status: Option<GrpcCode>,
    pub failure: bool,
}

impl Outcome {
    /// An HTTP response that completed: a failure when 5xx.
    pub fn http(code: u16) -> Outcome {
        Outcome {
            grpc_status: None,
            failure: code >= 500,
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
struct RequestLabels {
    direction: Direction,
    code: u16,
    peer: Arc<str>,
    outcome: Outcome,
}

/// `direction`, `code`, `peer`, `classification`, and `grpc_status` only
/// for gRPC responses (not an empty label on every other series).
impl EncodeLabelSet for RequestLabels {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelSetEncoder,
    ) -> Result<(), std::fmt::Error> {
        ("direction", self.direction).encode(encoder.encode_label())?;
        ("code", self.code).encode(encoder.encode_label())?;
        ("peer", &*self.peer).encode(encoder.encode_label())?;
        let class = if self.outcome.failure {
            "failure"
        } else {
            "success"
        };
        ("classification", class).encode(encoder.encode_label())?;
        if let Some(grpc) = self.outcome.grpc_status {
            ("grpc_status", grpc.0).encode(encoder.encode_label())?;
        }
        // Only on plain-text callers' series: every other series is mTLS.
        if &*self.peer == PLAINTEXT_PEER {
            ("tls", "false").encode(encoder.encode_label())?;
        }
        Ok(())
    }
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
struct UpgradeLabels {
    direction: Direction,
    protocol: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnknownLabels {
    /// `http` or `tcp`.
    protocol: &'static str,
    /// `passthrough` or `refused`.
    action: &'static str,
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
    /// The root: `process_*` here, usher's own metrics in a sub-registry
    /// with the `usher` prefix.
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
    upgrades: Family<UpgradeLabels, Counter>,
    unknown_destinations: Family<UnknownLabels, Counter>,
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
        let mut root = Registry::default();
        #[cfg(target_os = "linux")]
        root.register_collector(Box::new(process::ProcessCollector));
        let registry = root.sub_registry_with_prefix("usher");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "requests",
            "Requests handled, by direction, response status code, peer SPIFFE ID, classification (success or failure) and, for gRPC, grpc-status",
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
        let upgrades = Family::<UpgradeLabels, Counter>::default();
        registry.register(
            "upgrades",
            "Connections switched to another protocol (101) and spliced as opaque tunnels, by direction and protocol",
            upgrades.clone(),
        );
        let unknown_destinations = Family::<UnknownLabels, Counter>::default();
        registry.register(
            "outbound_unknown_destinations",
            "Redirected outbound connections (tcp) and requests (http) no route covers, passed through to their original destination or refused (outbound.unknown)",
            unknown_destinations.clone(),
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
            upgrades,
            unknown_destinations,
            access_log_dropped,
            access_log_reported: AtomicU64::new(0),
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
        let dropped = super::access_log::dropped();
        let before = self
            .access_log_reported
            .swap(dropped, std::sync::atomic::Ordering::Relaxed);
        self.access_log_dropped
            .inc_by(dropped.saturating_sub(before));
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

    /// A connection was upgraded (101) to `switched`, the response's
    /// `Upgrade`, after the request offered `offered` (see
    /// [`upgrade_protocol`] for the label).
    pub fn upgraded(&self, direction: Direction, offered: &str, switched: &str) {
        self.upgrades
            .get_or_create(&UpgradeLabels {
                direction,
                protocol: upgrade_protocol(offered, switched),
            })
            .inc();
    }

    /// A redirected connection or request no route covers: `protocol`
    /// `http` or `tcp`, passed through or refused.
    pub fn unknown_destination(&self, protocol: &'static str, passed: bool) {
        self.unknown_destinations
            .get_or_create(&UnknownLabels {
                protocol,
                action: if passed { "passthrough" } else { "refused" },
            })
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
    outcome: Outcome,
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

    /// Counts one finished, complete HTTP request (classified by its
    /// status alone).
    pub fn record(&self, peer: &Arc<str>, code: u16, duration: Duration) {
        self.record_outcome(peer, code, Outcome::http(code), duration);
    }

    /// Counts one finished request.
    pub fn record_outcome(&self, peer: &Arc<str>, code: u16, outcome: Outcome, duration: Duration) {
        let secs = duration.as_secs_f64();
        if let Ok(mut cache) = self.cache.lock() {
            if let Some(e) = cache
                .iter()
                .find(|e| e.code == code && e.outcome == outcome && Arc::ptr_eq(&e.peer, peer))
            {
                e.count.inc();
                e.duration.observe(secs);
                return;
            }
            let (count, duration) = self.handles(peer, code, outcome);
            count.inc();
            duration.observe(secs);
            if cache.len() < CACHE_ENTRIES {
                cache.push(CacheEntry {
                    peer: peer.clone(),
                    code,
                    outcome,
                    count,
                    duration,
                });
            }
            return;
        }
        let (count, duration) = self.handles(peer, code, outcome);
        count.inc();
        duration.observe(secs);
    }

    fn handles(&self, peer: &Arc<str>, code: u16, outcome: Outcome) -> (Counter, Histogram) {
        let count = self.metrics.requests.get_or_create_owned(&RequestLabels {
            direction: self.direction,
            code,
            peer: peer.clone(),
            outcome,
        });
        let duration = self.metrics.durations.get_or_create_owned(&DurationLabels {
            direction: self.direction,
            class: status_class(code),
            peer: peer.clone(),
        });
        (count, duration)
    }
}

/// Longest protocol name kept as an `usher_upgrades_total` label.
const MAX_PROTOCOL_LABEL: usize = 32;

/// The `protocol` label of an upgrade: the name (without `/version`) of
/// the first protocol the 101 response switched to, lower-cased, when it
/// is an RFC 9110 token of at most 32 bytes *and* one of the protocols the
/// request offered; anything else is `other`. Offers pass the sanitizer
/// only for configured protocols, so the label set is bounded by the
/// config even when an app answers a 101 with a name of its own.
pub fn upgrade_protocol(offered: &str, switched: &str) -> Cow<'static, str> {
    let switched = protocol_name(switched.split(',').next().unwrap_or(""));
    let valid = !switched.is_empty()
        && switched.len() <= MAX_PROTOCOL_LABEL
        && switched.bytes().all(is_tchar);
    let was_offered = || {
        offered
            .split(',')
            .any(|o| protocol_name(o).eq_ignore_ascii_case(switched))
    };
    if valid && was_offered() {
        Cow::Owned(switched.to_ascii_lowercase())
    } else {
        Cow::Borrowed("other")
    }
}

/// `websocket/13` → `websocket` (RFC 9110 §7.8: `name[/version]`).
fn protocol_name(protocol: &str) -> &str {
    let p = protocol.trim();
    p.split_once('/').map_or(p, |(n, _)| n).trim()
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
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
