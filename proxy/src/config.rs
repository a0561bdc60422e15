//! `usher.yaml`: the sidecar's one configuration file.
//!
//! Parsing is strict: unknown keys are errors, and every error names the file,
//! the key and what was expected, so that an operator can fix a config without
//! reading the source. Relative paths are resolved against the folder of the
//! config file, not the working directory.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use usher_ca::SpiffeId;

/// The parsed and validated configuration.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The service's name: `service.name` in telemetry, shown in logs.
    pub service: String,
    /// The certificate's source: three files, or a CA (`identity.ca`).
    pub identity: IdentitySource,
    pub(crate) inbound: InboundConfig,
    #[serde(default)]
    pub(crate) outbound: OutboundConfig,
    #[serde(default)]
    pub(crate) admin: AdminConfig,
    #[serde(default)]
    pub(crate) tls: TlsConfig,
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
    pub(crate) telemetry: TelemetryConfig,
    /// End-user JWTs on inbound requests; absent: tokens are not looked at.
    #[serde(default)]
    pub(crate) authentication: Option<AuthenticationConfig>,
    /// Per-caller token buckets on inbound requests.
    #[serde(default)]
    pub(crate) rate_limit: Option<RateLimitConfig>,
    /// `server:` as written; resolved into [`Config::server`].
    #[serde(default, rename = "server")]
    server_keys: ServerKeys,
    /// The limits every listener applies (`server:`, or the old spelling
    /// under `inbound:`).
    #[serde(skip)]
    pub(crate) server: ServerConfig,
    /// What works but should be changed (old spellings); `usher run` logs
    /// them at start, `usher check` prints them.
    #[serde(skip)]
    pub(crate) warnings: Vec<ConfigWarning>,
    /// The app's probes usher makes for the kubelet, from the environment
    /// (`USHER_APP_PROBES`, written by `usher inject`), read by
    /// [`Config::load`].
    #[serde(skip)]
    pub(crate) app_probes: crate::admin::app_probe::AppProbes,
}

mod guard;
mod hardening;
mod identity;
mod policy;
mod server;
mod telemetry;
mod transparent;
mod validate;
#[cfg(test)]
pub(crate) use guard::RouteLimitConfig;
pub(crate) use guard::{AuthenticationConfig, BucketConfig, RateLimitConfig};
pub(crate) use hardening::{AppProtocol, PathNormalizationConfig};
pub use identity::{CaIdentityConfig, IdentityFiles, IdentitySource};
pub use policy::PolicyConfig;
pub(crate) use policy::{PolicyMode, RegoVersionConfig};
pub(crate) use server::{ConfigWarning, ServerConfig, ServerKeys};
pub use telemetry::TelemetryConfig;
pub(crate) use telemetry::{OtlpConfig, OtlpProtocol};
pub(crate) use transparent::{InboundMode, InboundModes, UnknownAction, UnknownDestinations};

/// The async runtime the sidecar runs on.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Worker threads (default 1: one current-thread runtime, as
    /// Linkerd's proxy runs by default). With the multiplexed hop between
    /// sidecars, one thread costs about half the CPU per request of two
    /// (no cross-thread wake-ups or lock contention on the shared HTTP/2
    /// connection) in the mesh benchmark (BENCHMARKS.md); 2 or more for a
    /// service whose sidecar must use more than one core. Span export and
    /// log writing have threads of their own either way.
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

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct InboundConfig {
    /// Where peers connect with mutual TLS.
    #[serde(
        default = "defaults::inbound_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub(crate) listen: SocketAddr,
    /// The local application, plain HTTP.
    #[serde(deserialize_with = "de::socket_addr")]
    pub(crate) app: SocketAddr,
    /// How long to wait for a TCP connection to the app.
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "de::duration"
    )]
    pub(crate) app_connect_timeout: Duration,
    /// The app must answer (headers) within this; 504 otherwise.
    #[serde(
        default = "defaults::request_timeout",
        deserialize_with = "de::duration"
    )]
    pub(crate) request_timeout: Duration,
    /// Largest request body: 413 beyond it. Absent: unlimited (streamed).
    #[serde(default)]
    pub(crate) max_request_body: Option<u64>,
    /// Trust domains peers may come from (federation). Empty: this
    /// workload's own trust domain only.
    #[serde(default, deserialize_with = "hardening::trust_domains")]
    pub(crate) trust_domains: Vec<String>,
    /// `Upgrade` protocols passed to the app; `h2c` never is.
    #[serde(
        default = "hardening::default_upgrades",
        deserialize_with = "hardening::upgrades"
    )]
    pub(crate) upgrades: Vec<String>,
    /// How request paths are normalised before any check.
    #[serde(default)]
    pub(crate) path_normalization: PathNormalizationConfig,
    /// Keep the caller's `Forwarded`, `X-Forwarded-*` and `X-Real-IP`
    /// (removed by default: a peer can write anything in them).
    #[serde(default)]
    pub(crate) trust_forwarded_headers: bool,
    /// The HTTP version spoken to the app: `http1`, `http2` or `auto`.
    #[serde(default)]
    pub(crate) app_protocol: AppProtocol,
    /// `strict` (mTLS only) or `permissive` (plain-text callers too, with
    /// no identity), for connections `usher init-net` redirects or that
    /// reach the listener directly.
    #[serde(default)]
    pub(crate) mode: InboundMode,
    /// Per port the caller dialled (the original destination): a mode
    /// other than `mode`.
    #[serde(default)]
    pub(crate) port_modes: BTreeMap<u16, InboundMode>,
    /// Permissive mode: how long a connection's first bytes may take.
    #[serde(
        default = "transparent::inbound_detect_timeout",
        deserialize_with = "de::duration"
    )]
    pub(crate) detect_timeout: Duration,
    // The old spelling of the `server:` keys: still accepted, with a
    // warning; resolved into `Config::server` (read that, not these).
    #[serde(default, deserialize_with = "server::count")]
    max_connections: Option<usize>,
    #[serde(default, deserialize_with = "server::header_bytes")]
    max_header_bytes: Option<usize>,
    #[serde(default, deserialize_with = "server::duration")]
    header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "server::duration")]
    idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "server::count_u32")]
    http2_max_concurrent_streams: Option<u32>,
}

impl InboundConfig {
    /// The `server:` keys given here, in their old spelling.
    fn old_server_keys(&self) -> ServerKeys {
        ServerKeys {
            max_connections: self.max_connections,
            max_header_bytes: self.max_header_bytes,
            header_read_timeout: self.header_read_timeout,
            idle_timeout: self.idle_timeout,
            http2_max_concurrent_streams: self.http2_max_concurrent_streams,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OutboundConfig {
    /// Where the local application sends plain HTTP.
    #[serde(
        default = "defaults::outbound_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub(crate) listen: SocketAddr,
    #[serde(default)]
    pub(crate) routes: Vec<RouteConfig>,
    /// How long to wait for a peer's TCP connection and TLS handshake.
    #[serde(
        default = "defaults::connect_timeout",
        deserialize_with = "de::duration"
    )]
    pub(crate) connect_timeout: Duration,
    /// `Upgrade` protocols the app may ask for; `h2c` never is.
    #[serde(
        default = "hardening::default_upgrades",
        deserialize_with = "hardening::upgrades"
    )]
    pub(crate) upgrades: Vec<String>,
    /// A second outbound listener for the app's IPv6 connections that
    /// `usher init-net` redirects (to `[::1]`), e.g. `"[::1]:15001"`.
    #[serde(default, deserialize_with = "de::opt_socket_addr")]
    pub(crate) listen_ipv6: Option<SocketAddr>,
    /// Redirected connections whose destination no route covers.
    #[serde(default)]
    pub(crate) unknown: UnknownDestinations,
    /// Redirected connections: how long the app's first bytes may take
    /// before the protocol is taken to be one where the server speaks
    /// first (opaque).
    #[serde(
        default = "transparent::outbound_detect_timeout",
        deserialize_with = "de::duration"
    )]
    pub(crate) detect_timeout: Duration,
    /// HTTP/1 requests to peer sidecars share multiplexed HTTP/2
    /// connections (ALPN `usher-mux/h1`, restored to HTTP/1.1 by the
    /// callee); a peer that does not offer it is spoken to in HTTP/1.1.
    #[serde(default = "defaults::yes")]
    pub(crate) multiplex: bool,
}

impl Default for OutboundConfig {
    fn default() -> Self {
        OutboundConfig {
            listen: defaults::outbound_listen(),
            routes: Vec::new(),
            connect_timeout: defaults::connect_timeout(),
            upgrades: hardening::default_upgrades(),
            listen_ipv6: None,
            unknown: UnknownDestinations::default(),
            detect_timeout: transparent::outbound_detect_timeout(),
            multiplex: true,
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
pub(crate) struct AdminConfig {
    /// `/live`, `/ready` and read-only views; keep it on loopback.
    #[serde(
        default = "defaults::admin_listen",
        deserialize_with = "de::socket_addr"
    )]
    pub(crate) listen: SocketAddr,
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
    pub(crate) min_version: TlsVersion,
    /// Offer the hybrid post-quantum key exchange X25519MLKEM768 first
    /// (default true; costs ~2.3 KB and some CPU per full handshake).
    #[serde(default = "defaults::yes")]
    pub(crate) post_quantum: bool,
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
pub(crate) enum TlsVersion {
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

mod de;
mod defaults;

/// Largest `usher.yaml` accepted.
pub(crate) const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// A configuration error: which file, which key, what was expected.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    /// Dotted path of the key (`inbound.listen`, `outbound.routes[0].identity`),
    /// or empty when the problem is the file as a whole.
    pub(crate) key: String,
    pub(crate) message: String,
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
        let mut config = Config::parse(&text, path, base)?;
        config.app_probes =
            crate::admin::app_probe::AppProbes::from_env().map_err(|message| ConfigError {
                file: path.to_path_buf(),
                key: format!("(environment) {}", crate::admin::app_probe::ENV),
                message,
            })?;
        Ok(config)
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
            let (key, message) = validate::tidy_error(path, e.into_inner().to_string());
            ConfigError {
                file: file.to_path_buf(),
                key,
                message,
            }
        })?;
        let mut warnings = Vec::new();
        config.server = config
            .server_keys
            .resolve(&config.inbound.old_server_keys(), &mut warnings)
            .map_err(|(key, message)| ConfigError {
                file: file.to_path_buf(),
                key,
                message,
            })?;
        config.warnings = warnings;
        config.validate(file)?;
        match &mut config.identity {
            IdentitySource::Files(files) => {
                for path in [&mut files.cert, &mut files.key, &mut files.bundle] {
                    *path = base.join(&*path);
                }
            }
            IdentitySource::Ca(ca) => {
                ca.bundle = base.join(&ca.bundle);
                ca.token_file = base.join(&ca.token_file);
            }
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
}

#[cfg(test)]
mod tests;
