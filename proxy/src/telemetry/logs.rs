//! Operational logs: JSON lines on stdout through `tracing`, filtered by
//! `RUST_LOG`-style directives that can be changed while usher runs
//! (`PUT /logging` on the admin listener).
//!
//! Security audit records (policy decisions, authentication failures,
//! refused TLS handshakes, CA refusals, changes of the log filter) are
//! events with target [`AUDIT_TARGET`]. They cannot be switched off at run
//! time nor by `RUST_LOG`: [`AUDIT_DIRECTIVE`] is added to whatever
//! directives are set (so `GET /logging` shows it), and the subscriber lets
//! audit events at info and above through whatever the filter says (so no
//! more specific directive, such as one on a field, can hide them either).
//!
//! The subscriber is process-wide, so its reload handle is too: it is set
//! once by `usher run`; a sidecar started another way (tests, the demo)
//! reports that its log level is not adjustable.

use std::sync::OnceLock;

use tracing::Subscriber;
use tracing_subscriber::filter::{Directive, FilterExt as _, LevelFilter, Targets};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Layer as _, Registry};

type Handle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// The filter used when `RUST_LOG` is unset.
pub(crate) const DEFAULT_FILTER: &str = "info";

/// The target of security audit records.
pub(crate) const AUDIT_TARGET: &str = "usher::audit";

/// Added to every filter: audit records at info and above are always kept.
pub(crate) const AUDIT_DIRECTIVE: &str = "usher::audit=info";

/// Installs the JSON subscriber on stdout. `access_log` lines are ordinary
/// events with target `usher::access`.
pub fn init_json() {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| parse(&directives).ok())
        .unwrap_or_else(|| with_audit(EnvFilter::new(DEFAULT_FILTER)));
    let (subscriber, handle) = json_subscriber(filter, std::io::stdout);
    if subscriber.try_init().is_ok() {
        let _ = HANDLE.set(handle);
    }
}

/// Whether usher's JSON log subscriber writes this process's log to
/// stdout (set by [`init_json`]): then lines usher formats itself (the
/// decision log) go to stdout through the buffered writer too.
pub(crate) fn json_on_stdout() -> bool {
    HANDLE.get().is_some()
}

/// The JSON subscriber writing to `writer`: `filter` (reloadable through
/// the handle) or, whatever it says, an audit record.
pub(crate) fn json_subscriber<W>(
    filter: EnvFilter,
    writer: W,
) -> (impl Subscriber + Send + Sync, Handle)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (filter, handle) = reload::Layer::new(filter);
    let audit = Targets::new().with_target(AUDIT_TARGET, LevelFilter::INFO);
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(writer)
        .with_filter(filter.or(audit));
    (tracing_subscriber::registry().with(fmt), handle)
}

/// `filter` with [`AUDIT_DIRECTIVE`] added last, replacing any directive
/// for the same target.
fn with_audit(filter: EnvFilter) -> EnvFilter {
    match AUDIT_DIRECTIVE.parse::<Directive>() {
        Ok(audit) => filter.add_directive(audit),
        // A constant that parses (checked by a test).
        Err(_) => filter,
    }
}

/// Parses operator directives (`RUST_LOG`, `PUT /logging`) and adds the
/// audit directive.
fn parse(directives: &str) -> Result<EnvFilter, LogLevelError> {
    let directives = directives.trim();
    if directives.is_empty() || directives.len() > 1024 {
        return Err(LogLevelError::Invalid(
            directives.chars().take(64).collect(),
        ));
    }
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|_| LogLevelError::Invalid(directives.chars().take(64).collect()))?;
    Ok(with_audit(filter))
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum LogLevelError {
    #[error("the log level cannot be changed in this process (no usher log subscriber)")]
    Unavailable,
    #[error("invalid log filter {0:?}: expected a level (error, warn, info, debug, trace) or directives such as info,usher=debug")]
    Invalid(String),
}

/// The filter in force (with the audit directive).
pub(crate) fn current() -> Result<String, LogLevelError> {
    let handle = HANDLE.get().ok_or(LogLevelError::Unavailable)?;
    handle
        .with_current(|f| f.to_string())
        .map_err(|_| LogLevelError::Unavailable)
}

/// Replaces the filter; returns the new one as parsed, with the audit
/// directive added.
pub(crate) fn set(directives: &str) -> Result<String, LogLevelError> {
    let handle = HANDLE.get();
    set_on(handle, directives)
}

fn set_on(handle: Option<&Handle>, directives: &str) -> Result<String, LogLevelError> {
    let filter = parse(directives)?;
    let shown = filter.to_string();
    let handle = handle.ok_or(LogLevelError::Unavailable)?;
    handle
        .reload(filter)
        .map_err(|_| LogLevelError::Unavailable)?;
    // What is logged is itself security-relevant: always recorded.
    tracing::info!(target: "usher::audit", filter = %shown, "log filter changed");
    Ok(shown)
}

#[cfg(test)]
mod tests;
