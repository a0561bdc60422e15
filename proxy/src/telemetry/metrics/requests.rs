//! HTTP requests: `usher_requests_total` (by direction, status code,
//! peer, classification and gRPC status) and
//! `usher_request_duration_seconds`, counted through each connection's
//! cache of counter handles ([`ConnMetrics`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::{EncodeLabel as _, EncodeLabelSet};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::{Direction, Metrics, PLAINTEXT_PEER};

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

/// Request latency buckets in seconds: 0.5 ms to 10 s.
const DURATION_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

fn histogram() -> Histogram {
    Histogram::new(DURATION_BUCKETS)
}

/// The request families.
pub(super) struct Requests {
    requests: Family<RequestLabels, Counter>,
    durations: Family<DurationLabels, Histogram>,
}

impl Requests {
    pub(super) fn register(registry: &mut Registry) -> Requests {
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
        Requests {
            requests,
            durations,
        }
    }
}

/// A connection's handles to the request counters it has used: requests
/// on one connection mostly share a peer and a few status codes, so after
/// the first request the family's lock is not taken again.
pub struct ConnMetrics {
    metrics: Arc<Metrics>,
    direction: Direction,
    pub(super) cache: Mutex<Vec<CacheEntry>>,
}

pub(super) struct CacheEntry {
    peer: Arc<str>,
    code: u16,
    outcome: Outcome,
    count: Counter,
    duration: Histogram,
}

/// Entries kept per connection; rare combinations beyond it go to the
/// families directly.
pub(super) const CACHE_ENTRIES: usize = 8;

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
        let count = self
            .metrics
            .requests
            .requests
            .get_or_create_owned(&RequestLabels {
                direction: self.direction,
                code,
                peer: peer.clone(),
                outcome,
            });
        let duration = self
            .metrics
            .requests
            .durations
            .get_or_create_owned(&DurationLabels {
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
