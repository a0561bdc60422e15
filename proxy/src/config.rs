//! `usher.yaml`: the sidecar's one configuration file.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file,
//! the key and what was expected, so that an operator can fix a config without
//! reading the source. Relative paths are resolved against the folder of the
//! config file, not the working directory.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use usher_ca::SpiffeId;

/// The parsed and validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The service's name: `service.name` in telemetry, shown in logs.
    pub service: String,
    pub identity: IdentityConfig,
    pub inbound: InboundConfig,
    #[serde(default)]
    pub outbound: OutboundConfig,
    #[serde(default)]
    pub admin: AdminConfig,
    #[serde(default)]
    pub tls: TlsConfig,
    #[serde(default)]
    pub shutdown: ShutdownConfig,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    /// Rego authorization of inbound requests; absent: every peer with a
    /// valid mesh certificate is let through.
    #[serde(default)]
    pub policy: Option<PolicyConfig>,
    /// Spans, access log, metric label bounds. Metrics are always on.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// End-user JWTs on inbound requests; absent: tokens are not looked at.
    #[serde(default)]
    pub authentication: Option<AuthenticationConfig>,
    /// Per-caller token buckets on inbound requests.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
}

mod guard;
mod hardening;
mod telemetry;
pub use guard::{
    AuthenticationConfig, BucketConfig, JwtIssuerConfig, RateLimitConfig, RouteLimitConfig,
    TokenLocation,
};
pub use hardening::{AppProtocol, PathNormalizationConfig};
pub use telemetry::{OtlpConfig, OtlpProtocol, TelemetryConfig};

/// `policy:`: which Rego files decide, and how.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Rego files (relative to this config file's folder).
    pub files: Vec<PathBuf>,
    /// JSON or YAML data files, merged under `data`.
    #[serde(default)]
    pub data: Vec<PathBuf>,
    /// The rule whose value is the decision: a boolean or an OPA-Envoy
    /// decision object.
    #[serde(default = "defaults::policy_query", deserialize_with = "de::query")]
    pub query: String,
    #[serde(default)]
    pub mode: PolicyMode,
    /// `v1` (default) or `v0` for older OPA policies (`allow { ... }`).
    #[serde(default)]
    pub rego_version: RegoVersionConfig,
    /// A decision that takes longer is a deny.
    #[serde(default = "defaults::eval_timeout", deserialize_with = "de::duration")]
    pub eval_timeout: Duration,
    /// Hand the request body to the policy (up to `max_bytes`).
    #[serde(default)]
    pub with_body: Option<WithBodyConfig>,
    #[serde(default)]
    pub decision_log: DecisionLogConfig,
    /// Reload when a policy or data file changes on disk (SIGHUP always does).
    #[serde(default = "defaults::yes")]
    pub watch: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyMode {
    /// Denied requests get 403 (or the policy's status) and never reach the app.
    #[default]
    Enforce,
    /// Decisions are evaluated and logged; every request goes through.
    Audit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RegoVersionConfig {
    V0,
    #[default]
    V1,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WithBodyConfig {
    /// At most this many bytes are read before the decision; a longer body
    /// is handed over truncated (`input.truncated_body`) and streamed on whole.
    #[serde(deserialize_with = "de::body_limit")]
    pub max_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// Fraction of allowed requests logged (0.0 to 1.0); denials are always logged.
    #[serde(default = "defaults::sample_rate", deserialize_with = "de::fraction")]
    pub allow_sample_rate: f64,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            allow_sample_rate: defaults::sample_rate(),
        }
    }
}

/// The async runtime the sidecar runs on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads (default 2, like Istio's Envoy sidecars). 1 runs
    /// everything on one current-thread runtime, which can be cheaper per
    /// request on an idle node; 2 gave lower p99 latency and equal or lower
    /// CPU per request in the mesh benchmark (BENCHMARKS.md).
    #[serde(default = "defaults::workers", deserialize_with = "de::workers")]
    pub workers: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            workers: defaults::workers(),
        }
    }
}

/// Where the workload's certificate, key and trust bundle come from: three
/// files (written by `usher ca issue`, SPIRE or cert-manager), or
/// enrolment with `usher ca serve` (`ca`). Exactly one of the two.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityConfig {
    /// PEM: the leaf certificate first, then any intermediates. Empty when
    /// `ca` is used.
    #[serde(default)]
    pub cert: PathBuf,
    /// PEM: the leaf's private key (PKCS#8, SEC1 or PKCS#1).
    #[serde(default)]
    pub key: PathBuf,
    /// PEM: the trusted root certificates.
    #[serde(default)]
    pub bundle: PathBuf,
    /// Enrol with a usher CA server instead of reading files.
    #[serde(default)]
    pub ca: Option<CaIdentityConfig>,
    /// File mode: swap in new files when they change on disk.
    #[serde(default = "defaults::yes")]
    pub watch: bool,
    /// File mode: accept a key file that group or other users can read
    /// (mode & 0o077 != 0), with a warning, instead of refusing it.
    #[serde(default)]
    pub allow_insecure_key_permissions: bool,
}

/// `identity.ca`: get and renew the certificate from `usher ca serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaIdentityConfig {
    /// The CA server, `https://host:port`.
    #[serde(deserialize_with = "de::https_url")]
    pub url: String,
    /// PEM: the roots that verify the CA server (and are trusted for peers
    /// until the CA serves its bundle).
    pub bundle: PathBuf,
    /// What authorises the first enrolment (and a new one after the
    /// certificate expired): a file holding a bootstrap token from `usher
    /// ca token`, or, on Kubernetes, the pod's projected service account
    /// token (audience `usher-ca`; `spiffe_id` must then be
    /// `spiffe://<td>/ns/<namespace>/sa/<service account>`). Re-read at
    /// every enrolment, as the kubelet rotates projected tokens.
    pub token_file: PathBuf,
    /// The identity to ask for.
    #[serde(deserialize_with = "de::spiffe_id")]
    pub spiffe_id: SpiffeId,
    /// Renew at this fraction of the certificate's lifetime (with ±10 %
    /// jitter), like Linkerd and SPIRE do.
    #[serde(
        default = "defaults::renew_at",
        deserialize_with = "de::renew_fraction"
    )]
    pub renew_at: f64,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InboundConfig {
    /// Where peers connect with mutual TLS.
    #[serde(
        default = "defaults::inbound_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub listen: SocketAddr,
    /// The local application, plain HTTP.
    #[serde(deserialize_with = "de::socket_addr")]
    pub app: SocketAddr,
    /// How long to wait for a TCP connection to the app.
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "de::duration"
    )]
    pub app_connect_timeout: Duration,
    /// The app must answer (headers) within this; 504 otherwise.
    #[serde(
        default = "defaults::request_timeout",
        deserialize_with = "de::duration"
    )]
    pub request_timeout: Duration,
    /// Largest request head: 431 beyond it (HTTP/2: header list size).
    #[serde(
        default = "defaults::max_header_bytes",
        deserialize_with = "de::header_bytes"
    )]
    pub max_header_bytes: usize,
    /// Largest request body: 413 beyond it. Absent: unlimited (streamed).
    #[serde(default)]
    pub max_request_body: Option<u64>,
    /// A request head must arrive within this after the connection is
    /// ready for one (slowloris); the connection is closed otherwise. For
    /// HTTP/1 this also bounds how long a keep-alive connection may idle.
    #[serde(
        default = "defaults::header_read_timeout",
        deserialize_with = "de::duration"
    )]
    pub header_read_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    #[serde(default = "defaults::idle_timeout", deserialize_with = "de::duration")]
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed at accept.
    #[serde(default = "defaults::max_connections", deserialize_with = "de::count")]
    pub max_connections: usize,
    /// Streams one HTTP/2 connection may have open at once.
    #[serde(default = "defaults::h2_streams", deserialize_with = "de::count_u32")]
    pub http2_max_concurrent_streams: u32,
    /// Trust domains peers may come from (federation). Empty: this
    /// workload's own trust domain only.
    #[serde(default, deserialize_with = "hardening::trust_domains")]
    pub trust_domains: Vec<String>,
    /// `Upgrade` protocols passed to the app; `h2c` never is.
    #[serde(
        default = "hardening::default_upgrades",
        deserialize_with = "hardening::upgrades"
    )]
    pub upgrades: Vec<String>,
    /// How request paths are normalised before any check.
    #[serde(default)]
    pub path_normalization: PathNormalizationConfig,
    /// Keep the caller's `Forwarded`, `X-Forwarded-*` and `X-Real-IP`
    /// (removed by default: a peer can write anything in them).
    #[serde(default)]
    pub trust_forwarded_headers: bool,
    /// The HTTP version spoken to the app: `http1`, `http2` or `auto`.
    #[serde(default)]
    pub app_protocol: AppProtocol,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutboundConfig {
    /// Where the local application sends plain HTTP.
    #[serde(
        default = "defaults::outbound_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub listen: SocketAddr,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
    /// How long to wait for a peer's TCP connection and TLS handshake.
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "de::duration"
    )]
    pub connect_timeout: Duration,
    /// `Upgrade` protocols the app may ask for; `h2c` never is.
    #[serde(
        default = "hardening::default_upgrades",
        deserialize_with = "hardening::upgrades"
    )]
    pub upgrades: Vec<String>,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            listen: defaults::outbound_listen(),
            routes: Vec::new(),
            connect_timeout: defaults::connect_timeout(),
            upgrades: hardening::default_upgrades(),
        }
    }
}

/// One destination the local application may call.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// Matched, case-insensitively, against the request's Host or :authority
    /// with any port removed.
    #[serde(deserialize_with = "de::host")]
    pub host: String,
    /// The peer's inbound listener, `host:port` (an IP or a DNS name).
    #[serde(deserialize_with = "de::host_port")]
    pub address: String,
    /// The only SPIFFE ID the peer may present.
    #[serde(deserialize_with = "de::spiffe_id")]
    pub identity: SpiffeId,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `/live`, `/ready` and read-only views; keep it on loopback.
    #[serde(
        default = "defaults::admin_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub listen: SocketAddr,
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig {
            listen: defaults::admin_listen(),
        }
    }
}

/// TLS settings shared by the inbound and outbound legs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// `"1.3"` (default) or `"1.2"` to also accept TLS 1.2 peers.
    #[serde(default)]
    pub min_version: TlsVersion,
    /// Offer the hybrid post-quantum key exchange X25519MLKEM768 first
    /// (default true; costs ~2.3 KB and some CPU per full handshake).
    #[serde(default = "defaults::yes")]
    pub post_quantum: bool,
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            min_version: TlsVersion::default(),
            post_quantum: true,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
pub enum TlsVersion {
    #[serde(rename = "1.2")]
    Tls12,
    #[default]
    #[serde(rename = "1.3")]
    Tls13,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownConfig {
    /// After SIGTERM, how long in-flight requests may take to finish.
    #[serde(default = "defaults::drain_timeout", deserialize_with = "de::duration")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        ShutdownConfig {
            drain_timeout: defaults::drain_timeout(),
        }
    }
}

mod defaults {
    use std::net::SocketAddr;
    use std::time::Duration;

    pub fn inbound_listen() -> SocketAddr {
        SocketAddr::from(([0, 0, 0, 0], 15006))
    }
    pub fn outbound_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 15001))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 15000))
    }
    pub fn connect_timeout() -> Duration {
        Duration::from_secs(3)
    }
    pub fn drain_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn yes() -> bool {
        true
    }
    pub fn workers() -> usize {
        2
    }
    pub fn policy_query() -> String {
        "data.usher.authz.allow".to_string()
    }
    pub fn eval_timeout() -> Duration {
        Duration::from_millis(50)
    }
    pub fn sample_rate() -> f64 {
        1.0
    }
    pub fn renew_at() -> f64 {
        0.7
    }
    pub fn request_timeout() -> Duration {
        Duration::from_secs(60)
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn header_read_timeout() -> Duration {
        Duration::from_secs(30)
    }
    pub fn idle_timeout() -> Duration {
        Duration::from_secs(300)
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn h2_streams() -> u32 {
        256
    }
}

/// Deserializers whose errors say what was expected, with an example.
mod de {
    use super::*;
    use serde::de::Error;

    pub fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(|_| {
            D::Error::custom(format!(
                "expected an IP address and port such as 127.0.0.1:8080, got {s:?}"
            ))
        })
    }

    pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|_| {
            D::Error::custom(format!(
                "expected a duration such as 500ms, 3s or 1m, got {s:?}"
            ))
        })
    }

    pub fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n @ 1..=256) => Ok(n),
            _ => Err(D::Error::custom(format!(
                "expected a number of worker threads from 1 to 256, got {n}"
            ))),
        }
    }

    pub fn query<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s.starts_with("data.")
            && s.split('.').all(|part| {
                !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            });
        if ok {
            Ok(s)
        } else {
            Err(D::Error::custom(format!(
                "expected a rule path such as data.usher.authz.allow, got {s:?}"
            )))
        }
    }

    pub fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let f = f64::deserialize(d)?;
        if (0.0..=1.0).contains(&f) {
            Ok(f)
        } else {
            Err(D::Error::custom(format!(
                "expected a fraction from 0.0 to 1.0, got {f}"
            )))
        }
    }

    pub fn header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n @ 8192..=1_048_576) => Ok(n),
            _ => Err(D::Error::custom(format!(
                "expected a size from 8192 to 1048576 bytes, got {n}"
            ))),
        }
    }

    pub fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n @ 1..=1_000_000) => Ok(n),
            _ => Err(D::Error::custom(format!(
                "expected a number from 1 to 1000000, got {n}"
            ))),
        }
    }

    pub fn count_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
        let n = u64::deserialize(d)?;
        match u32::try_from(n) {
            Ok(n @ 1..=100_000) => Ok(n),
            _ => Err(D::Error::custom(format!(
                "expected a number from 1 to 100000, got {n}"
            ))),
        }
    }

    pub fn renew_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        let f = f64::deserialize(d)?;
        if (0.1..=0.95).contains(&f) {
            Ok(f)
        } else {
            Err(D::Error::custom(format!(
                "expected a fraction of the certificate lifetime from 0.1 to 0.95, got {f}"
            )))
        }
    }

    pub fn https_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        let ok = s
            .parse::<http::Uri>()
            .ok()
            .filter(|u| u.scheme_str() == Some("https") && u.authority().is_some())
            .is_some();
        if ok {
            Ok(s)
        } else {
            Err(D::Error::custom(format!(
                "expected the CA server's URL such as https://ca.mesh:8443, got {s:?}"
            )))
        }
    }

    pub fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
        let n = u64::deserialize(d)?;
        match usize::try_from(n) {
            Ok(n @ 1..=1_048_576) => Ok(n),
            _ => Err(D::Error::custom(format!(
                "expected a number of bytes from 1 to 1048576 (1 MiB), got {n}"
            ))),
        }
    }

    pub fn spiffe_id<'de, D: Deserializer<'de>>(d: D) -> Result<SpiffeId, D::Error> {
        let s = String::deserialize(d)?;
        SpiffeId::parse(&s).map_err(|e| {
            D::Error::custom(format!(
                "expected a SPIFFE ID such as spiffe://mesh.local/ns/shop/sa/payments: {e}"
            ))
        })
    }

    pub fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if valid_host(&s) {
            Ok(s.to_ascii_lowercase())
        } else {
            Err(D::Error::custom(format!(
                "expected a host name such as payments or payments.shop.svc (no port, no scheme), got {s:?}"
            )))
        }
    }

    pub fn host_port<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        if s.parse::<SocketAddr>().is_ok() {
            return Ok(s);
        }
        match s.rsplit_once(':') {
            Some((host, port)) if valid_host(host) && port.parse::<u16>().is_ok() => Ok(s),
            _ => Err(D::Error::custom(format!(
                "expected host:port such as 127.0.0.1:15006 or payments.shop.svc:15006, got {s:?}"
            ))),
        }
    }

    /// A DNS-style name: labels of letters, digits, '-' and '_'.
    pub(super) fn valid_host(s: &str) -> bool {
        !s.is_empty()
            && s.len() <= 253
            && s.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
    }
}

/// Largest `usher.yaml` accepted.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the key (`inbound.listen`, `outbound.routes[0].identity`),
    /// or empty when the problem is the file as a whole.
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(
                f,
                "{}: key `{}`: {}",
                self.file.display(),
                self.key,
                self.message
            )
        }
    }
}

impl Config {
    /// Reads, parses and validates `path`; relative paths inside are made
    /// absolute against the file's folder.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let whole = |message: String| ConfigError {
            file: path.to_path_buf(),
            key: String::new(),
            message,
        };
        // The YAML scanner is quadratic in the nesting depth (found by
        // fuzzing): a config is small, so anything larger is refused.
        let size = std::fs::metadata(path)
            .map_err(|e| whole(format!("cannot read the config file: {e}")))?
            .len();
        if size > MAX_CONFIG_BYTES {
            return Err(whole(format!(
                "the config file is {size} bytes; expected at most {MAX_CONFIG_BYTES} (1 MiB)"
            )));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| whole(format!("cannot read the config file: {e}")))?;
        let base = path.parent().unwrap_or(Path::new("."));
        Config::parse(&text, path, base)
    }

    /// Parses `text` as if it were the file `file`, resolving relative paths
    /// against `base`.
    pub fn parse(text: &str, file: &Path, base: &Path) -> Result<Config, ConfigError> {
        let de = yaml_serde::Deserializer::from_str(text);
        let mut config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            // A YAML syntax error has no key below the mapping it broke
            // (`?`): name the deepest key known.
            let path = e.path().to_string();
            let mut path = path.as_str();
            while let Some(p) = path.strip_suffix(".?").or_else(|| path.strip_suffix('?')) {
                path = p;
            }
            let path = if path == "." {
                String::new()
            } else {
                path.to_string()
            };
            let (key, message) = tidy_error(path, e.into_inner().to_string());
            ConfigError {
                file: file.to_path_buf(),
                key,
                message,
            }
        })?;
        config.validate(file)?;
        let identity = &mut config.identity;
        for path in [&mut identity.cert, &mut identity.key, &mut identity.bundle] {
            if !path.as_os_str().is_empty() {
                *path = base.join(&*path);
            }
        }
        if let Some(ca) = identity.ca.as_mut() {
            ca.bundle = base.join(&ca.bundle);
            ca.token_file = base.join(&ca.token_file);
        }
        if let Some(authn) = config.authentication.as_mut() {
            for issuer in &mut authn.jwt {
                if let Some(f) = issuer.jwks_file.as_mut() {
                    *f = base.join(&*f);
                }
            }
        }
        if let Some(policy) = config.policy.as_mut() {
            for path in policy.files.iter_mut().chain(policy.data.iter_mut()) {
                *path = base.join(&*path);
            }
        }
        Ok(config)
    }

    fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: String, message: String| ConfigError {
            file: file.to_path_buf(),
            key,
            message,
        };
        if self.service.trim().is_empty() {
            return Err(err(
                "service".into(),
                "expected a non-empty service name".into(),
            ));
        }
        let files = [
            ("identity.cert", &self.identity.cert),
            ("identity.key", &self.identity.key),
            ("identity.bundle", &self.identity.bundle),
        ];
        match &self.identity.ca {
            None => {
                if let Some((key, _)) = files.iter().find(|(_, p)| p.as_os_str().is_empty()) {
                    return Err(err(
                        (*key).into(),
                        "required, but missing (give identity.cert, identity.key and identity.bundle, or identity.ca)".into(),
                    ));
                }
            }
            Some(_) => {
                if let Some((key, _)) = files.iter().find(|(_, p)| !p.as_os_str().is_empty()) {
                    return Err(err(
                        (*key).into(),
                        "cannot be used together with identity.ca (the CA provides the certificate, key and bundle)".into(),
                    ));
                }
                if self.identity.allow_insecure_key_permissions {
                    return Err(err(
                        "identity.allow_insecure_key_permissions".into(),
                        "applies only to identity.key (file mode); with identity.ca the key is made in memory and never written".into(),
                    ));
                }
            }
        }
        for (i, route) in self.outbound.routes.iter().enumerate() {
            if let Some(j) = self.outbound.routes[..i]
                .iter()
                .position(|r| r.host == route.host)
            {
                return Err(err(
                    format!("outbound.routes[{i}].host"),
                    format!(
                        "host {:?} is already routed by outbound.routes[{j}]; each host may appear once",
                        route.host
                    ),
                ));
            }
            if route.identity.path().is_empty() {
                return Err(err(
                    format!("outbound.routes[{i}].identity"),
                    "expected a workload SPIFFE ID with a path (spiffe://td/ns/NS/sa/SA), not a bare trust domain".into(),
                ));
            }
        }
        let listeners = [
            ("inbound.listen", self.inbound.listen),
            ("outbound.listen", self.outbound.listen),
            ("admin.listen", self.admin.listen),
        ];
        for (i, (key, addr)) in listeners.iter().enumerate() {
            if addr.port() == 0 {
                continue; // ephemeral: the OS picks distinct ports
            }
            if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr) {
                return Err(err(
                    (*key).into(),
                    format!(
                        "{addr} is already used by {other}; each listener needs its own address"
                    ),
                ));
            }
        }
        if let Some(authn) = &self.authentication {
            if authn.jwt.is_empty() {
                return Err(err(
                    "authentication.jwt".into(),
                    "expected at least one issuer".into(),
                ));
            }
            for (i, issuer) in authn.jwt.iter().enumerate() {
                if issuer.jwks_file.is_none() && issuer.jwks_url.is_none() {
                    return Err(err(
                        format!("authentication.jwt[{i}]"),
                        "expected jwks_file or jwks_url (where the issuer's public keys are)"
                            .into(),
                    ));
                }
                if issuer.from_headers.is_empty() {
                    return Err(err(
                        format!("authentication.jwt[{i}].from_headers"),
                        "expected at least one header".into(),
                    ));
                }
                if let Some(j) = authn.jwt[..i]
                    .iter()
                    .position(|o| o.issuer == issuer.issuer)
                {
                    return Err(err(
                        format!("authentication.jwt[{i}].issuer"),
                        format!(
                            "issuer {:?} is already configured by authentication.jwt[{j}]",
                            issuer.issuer
                        ),
                    ));
                }
            }
        }
        if let Some(rl) = &self.rate_limit {
            for (i, route) in rl.routes.iter().enumerate() {
                if !route.path_prefix.starts_with('/') {
                    return Err(err(
                        format!("rate_limit.routes[{i}].path_prefix"),
                        format!(
                            "expected a path prefix starting with /, got {:?}",
                            route.path_prefix
                        ),
                    ));
                }
            }
            if rl.per_caller.is_none() && rl.routes.is_empty() {
                return Err(err(
                    "rate_limit".into(),
                    "expected per_caller or routes".into(),
                ));
            }
        }
        if let Some(policy) = &self.policy {
            if policy.files.is_empty() {
                return Err(err(
                    "policy.files".into(),
                    "expected at least one .rego file".into(),
                ));
            }
        }
        if app_is_inbound_listener(self.inbound.app, self.inbound.listen) {
            return Err(err(
                "inbound.app".into(),
                "the app's address must differ from inbound.listen (that would loop)".into(),
            ));
        }
        Ok(())
    }
}

/// yaml_serde prefixes its messages with the path of the enclosing map
/// (`inbound: unknown field ...`), which the key already says; and a missing
/// field is reported at its parent, so name the field itself as the key.
fn tidy_error(path: String, message: String) -> (String, String) {
    let mut message = message;
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && path.starts_with(prefix) {
            message = rest.to_string();
        }
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let key = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        let message = message.replace(&format!("missing field `{field}`"), "required, but missing");
        return (key, message);
    }
    (path, message)
}

/// Whether connecting to `app` would reach the inbound listener itself. A
/// wildcard listener (`0.0.0.0:P`, `[::]:P`) also owns every loopback
/// address on port P, so `127.0.0.1:P` is it too.
fn app_is_inbound_listener(app: SocketAddr, listen: SocketAddr) -> bool {
    app == listen
        || (app.port() == listen.port()
            && listen.ip().is_unspecified()
            && (app.ip().is_loopback() || app.ip().is_unspecified()))
}

#[cfg(test)]
mod tests;
