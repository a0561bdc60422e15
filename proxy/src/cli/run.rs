//! `usher run --config FILE`.

use std::path::Path;

use std::sync::Arc;

use tracing_subscriber::EnvFilter;

use super::{runtime, CliError};
use crate::authz::{PolicyStore, ReloadOutcome};
use crate::config::Config;
use crate::sidecar::{DrainOutcome, Sidecar};

pub fn run(path: &Path) -> Result<(), CliError> {
    // Validate everything before binding anything.
    let config = Config::load(path)?;
    init_json_logs();
    let rt = runtime(config.runtime.workers)?;
    rt.block_on(async {
        let sidecar = Sidecar::start(&config).await?;
        tracing::info!(
            service = %config.service,
            spiffe_id = %sidecar.admin.spiffe_id,
            inbound = %sidecar.addrs.inbound,
            outbound = %sidecar.addrs.outbound,
            admin = %sidecar.addrs.admin,
            "usher ready"
        );
        let signal = wait_for_signal(sidecar.policy.clone()).await?;
        tracing::info!(signal, drain_timeout = ?config.shutdown.drain_timeout, "draining");
        match sidecar.shutdown(config.shutdown.drain_timeout).await {
            DrainOutcome::Complete => tracing::info!("drained; exiting"),
            DrainOutcome::TimedOut => {
                tracing::warn!("drain timeout reached with requests still in flight; exiting")
            }
        }
        Ok(())
    })
}

fn init_json_logs() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_current_span(false)
        .with_env_filter(filter)
        .with_writer(std::io::stdout)
        .try_init();
}

/// Waits for SIGTERM or SIGINT; SIGHUP reloads the policy meanwhile.
async fn wait_for_signal(policy: Option<Arc<PolicyStore>>) -> Result<&'static str, CliError> {
    use tokio::signal::unix::{signal, SignalKind};
    let err = |e: std::io::Error| CliError::Runtime(format!("cannot install signal handlers: {e}"));
    let mut term = signal(SignalKind::terminate()).map_err(err)?;
    let mut int = signal(SignalKind::interrupt()).map_err(err)?;
    let mut hup = signal(SignalKind::hangup()).map_err(err)?;
    loop {
        tokio::select! {
            _ = term.recv() => return Ok("SIGTERM"),
            _ = int.recv() => return Ok("SIGINT"),
            _ = hup.recv() => match &policy {
                Some(store) => {
                    let store = store.clone();
                    let outcome = tokio::task::spawn_blocking(move || store.reload("SIGHUP")).await;
                    if let Ok(ReloadOutcome::Unchanged) = outcome {
                        tracing::info!("SIGHUP: policy unchanged");
                    }
                }
                None => tracing::info!("SIGHUP: no policy configured, nothing to reload"),
            },
        }
    }
}
