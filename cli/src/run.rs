//! `usher run --config FILE`.

use std::path::Path;
use std::sync::Arc;

use tokio::signal::unix::{signal, Signal, SignalKind};

use crate::{runtime, CliError};
use usher_proxy::authz::{PolicyStore, ReloadOutcome};
use usher_proxy::config::Config;
use usher_proxy::sidecar::{DrainOutcome, Sidecar};

pub(crate) fn run(path: &Path) -> Result<(), CliError> {
    // Validate everything before binding anything.
    let config = Config::load(path)?;
    usher_proxy::telemetry::logs::init_json();
    let rt = runtime(config.runtime.workers)?;
    rt.block_on(async {
        // Handlers first: a signal that arrives once "usher ready" is logged
        // must drain, not kill the process with the default action.
        let mut signals = Signals::install()?;
        // Start-up can wait (CA mode retries enrolment until the CA
        // answers); a stop signal meanwhile ends it.
        let sidecar = tokio::select! {
            started = Sidecar::start(&config) => started?,
            signal = signals.stop() => {
                tracing::info!(signal, "stopped before becoming ready");
                return Ok(());
            }
        };
        tracing::info!(
            service = %config.service,
            spiffe_id = %sidecar.admin.spiffe_id,
            inbound = %sidecar.addrs.inbound,
            outbound = %sidecar.addrs.outbound,
            admin = %sidecar.addrs.admin,
            "usher ready"
        );
        let signal = signals.wait(sidecar.policy.clone()).await;
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

/// The signals usher acts on.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

impl Signals {
    fn install() -> Result<Signals, CliError> {
        let err =
            |e: std::io::Error| CliError::Runtime(format!("cannot install signal handlers: {e}"));
        Ok(Signals {
            term: signal(SignalKind::terminate()).map_err(err)?,
            int: signal(SignalKind::interrupt()).map_err(err)?,
            hup: signal(SignalKind::hangup()).map_err(err)?,
        })
    }

    /// Waits for SIGTERM or SIGINT.
    async fn stop(&mut self) -> &'static str {
        tokio::select! {
            _ = self.term.recv() => "SIGTERM",
            _ = self.int.recv() => "SIGINT",
        }
    }

    /// Waits for SIGTERM or SIGINT; SIGHUP reloads the policy meanwhile.
    async fn wait(mut self, policy: Option<Arc<PolicyStore>>) -> &'static str {
        loop {
            tokio::select! {
                _ = self.term.recv() => return "SIGTERM",
                _ = self.int.recv() => return "SIGINT",
                _ = self.hup.recv() => match &policy {
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
}
