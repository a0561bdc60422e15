//! `telemetry:`: where spans go, how many are sampled, and the access log.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::de;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The OTLP collector for spans; absent: no spans are made at all, and
    /// trace headers pass through untouched.
    #[serde(default)]
    pub(crate) otlp: Option<OtlpConfig>,
    /// Fraction of new traces recorded (0.0 to 1.0). A caller's sampling
    /// decision is always followed (parent-based).
    #[serde(default = "one", deserialize_with = "de::fraction")]
    pub(crate) sampling: f64,
    /// One JSON line per request on stdout (target `usher::access`).
    #[serde(default = "yes")]
    pub(crate) access_log: bool,
    /// At most this many inbound caller identities become metric labels;
    /// later ones are counted as `other`.
    #[serde(default = "max_peer_labels", deserialize_with = "count")]
    pub(crate) max_peer_labels: usize,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            otlp: None,
            sampling: one(),
            access_log: true,
            max_peer_labels: max_peer_labels(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OtlpConfig {
    /// `http://host:port`: 4317 is the usual gRPC port, 4318 the HTTP one.
    /// For HTTP, a URL without a path gets `/v1/traces`.
    #[serde(deserialize_with = "endpoint")]
    pub(crate) endpoint: String,
    #[serde(default)]
    pub(crate) protocol: OtlpProtocol,
    /// Deadline of one export attempt.
    #[serde(default = "timeout", deserialize_with = "de::duration")]
    pub(crate) timeout: Duration,
    /// Finished spans waiting for export; when full, new spans are dropped
    /// (and counted), never waited for.
    #[serde(default = "queue_size", deserialize_with = "count")]
    pub(crate) queue_size: usize,
    /// Spans per export request.
    #[serde(default = "batch_size", deserialize_with = "count")]
    pub(crate) batch_size: usize,
    /// How long a batch may wait to fill before it is sent.
    #[serde(default = "batch_delay", deserialize_with = "de::duration")]
    pub(crate) batch_delay: Duration,
}

impl OtlpConfig {
    /// The OTLP/HTTP traces URL: the endpoint as given when it has a path,
    /// else the endpoint + `/v1/traces` (as OTEL_EXPORTER_OTLP_ENDPOINT).
    pub(crate) fn traces_url(&self) -> String {
        let rest = self.endpoint.split_once("://").map_or("", |(_, r)| r);
        if rest.contains('/') && !self.endpoint.ends_with('/') {
            self.endpoint.clone()
        } else {
            format!("{}/v1/traces", self.endpoint.trim_end_matches('/'))
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OtlpProtocol {
    #[default]
    Grpc,
    /// OTLP/HTTP with protobuf bodies.
    Http,
}

fn one() -> f64 {
    1.0
}
fn yes() -> bool {
    true
}
fn max_peer_labels() -> usize {
    1000
}
fn timeout() -> Duration {
    Duration::from_secs(10)
}
fn queue_size() -> usize {
    2048
}
fn batch_size() -> usize {
    512
}
fn batch_delay() -> Duration {
    Duration::from_secs(1)
}

fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    use serde::de::Error;
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a count from 1 to 1000000, got {n}"
        ))),
    }
}

fn endpoint<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    let expected = |why: &str| {
        D::Error::custom(format!(
            "expected a collector URL such as http://127.0.0.1:4317 ({why}), got {s:?}"
        ))
    };
    let uri: http::Uri = s.parse().map_err(|_| expected("not a URL"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(expected(
                "https collectors are not supported yet: point usher at a local collector or agent over http",
            ))
        }
        _ => return Err(expected("the scheme must be http")),
    }
    if uri.authority().is_none() {
        return Err(expected("a host is required"));
    }
    Ok(s)
}
