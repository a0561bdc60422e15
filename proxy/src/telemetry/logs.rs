//! Operational logs: JSON lines on stdout through `tracing`, filtered by
//! `RUST_LOG`-style directives that can be changed while usher runs
//! (`PUT /logging` on the admin listener).
//!
//! The subscriber is process-wide, so its reload handle is too: it is set
//! once by `usher run`; a sidecar started another way (tests, the demo)
//! reports that its log level is not adjustable.

use std::sync::OnceLock;

use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{reload, EnvFilter, Registry};

type Handle = reload::Handle<EnvFilter, Registry>;

static HANDLE: OnceLock<Handle> = OnceLock::new();

/// The filter used when `RUST_LOG` is unset.
pub const DEFAULT_FILTER: &str = "info";

/// Installs the JSON subscriber on stdout. `access_log` lines are ordinary
/// events with target `usher::access`.
pub fn init_json() {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let (filter, handle) = reload::Layer::new(filter);
    let fmt = tracing_subscriber::fmt::layer()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_span_list(false)
        .with_writer(std::io::stdout);
    if tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .try_init()
        .is_ok()
    {
        let _ = HANDLE.set(handle);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LogLevelError {
    #[error("the log level cannot be changed in this process (no usher log subscriber)")]
    Unavailable,
    #[error("invalid log filter {0:?}: expected a level (error, warn, info, debug, trace) or directives such as info,usher=debug")]
    Invalid(String),
}

/// The filter in force.
pub fn current() -> Result<String, LogLevelError> {
    let handle = HANDLE.get().ok_or(LogLevelError::Unavailable)?;
    handle
        .with_current(|f| f.to_string())
        .map_err(|_| LogLevelError::Unavailable)
}

/// Replaces the filter; returns the new one as parsed.
pub fn set(directives: &str) -> Result<String, LogLevelError> {
    let directives = directives.trim();
    if directives.is_empty() || directives.len() > 1024 {
        return Err(LogLevelError::Invalid(
            directives.chars().take(64).collect(),
        ));
    }
    let filter = EnvFilter::builder()
        .parse(directives)
        .map_err(|_| LogLevelError::Invalid(directives.chars().take(64).collect()))?;
    let shown = filter.to_string();
    let handle = HANDLE.get().ok_or(LogLevelError::Unavailable)?;
    handle
        .reload(filter)
        .map_err(|_| LogLevelError::Unavailable)?;
    tracing::info!(filter = %shown, "log filter changed");
    Ok(shown)
}
