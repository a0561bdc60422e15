//! File mode: when the certificate, key or bundle files change on disk
//! (renewed by SPIRE, cert-manager or `usher ca issue`), load them again
//! and install them, with no restart.
//!
//! As with policies, the folders are watched, not the files (Kubernetes
//! Secrets and most tools replace files by renaming). A half-written set
//! (a new certificate with the old key) fails the cross-checks and is not
//! installed; the next event, when the key lands, installs the pair.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use notify::{RecursiveMode, Watcher};
use rustls::crypto::CryptoProvider;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{load_identity, Identity};
use crate::config::IdentityConfig;
use crate::telemetry::Metrics;

/// Events closer together than this are one change.
const QUIET: Duration = Duration::from_millis(100);

pub fn spawn_file_watcher(
    identity: Arc<Identity>,
    config: IdentityConfig,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), notify::Error> {
    let dirs: BTreeSet<PathBuf> = [&config.cert, &config.key, &config.bundle]
        .iter()
        .map(|f| match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        })
        .collect();
    let (tx, mut rx) = mpsc::channel::<()>(1);
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event {
            if !event.kind.is_access() {
                let _ = tx.try_send(());
            }
        }
    })?;
    for dir in &dirs {
        watcher.watch(dir, RecursiveMode::NonRecursive)?;
    }
    tokio::spawn(async move {
        let _watcher = watcher;
        loop {
            let expiry = until(identity.info().not_after);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(expiry), if identity.is_valid() => {
                    if identity.mark_expired() {
                        tracing::error!(
                        serial = %identity.info().serial_hex,
                        "the workload certificate has expired and no new files arrived; not ready"
                        );
                    }
                }
                got = rx.recv() => {
                    if got.is_none() {
                        break;
                    }
                    tokio::time::sleep(QUIET).await;
                    while rx.try_recv().is_ok() {}
                    reload(&identity, &config, &provider, &metrics);
                }
            }
        }
    });
    Ok(())
}

fn until(t: SystemTime) -> Duration {
    t.duration_since(SystemTime::now())
        .unwrap_or(Duration::ZERO)
}

fn reload(
    identity: &Identity,
    config: &IdentityConfig,
    provider: &CryptoProvider,
    metrics: &Metrics,
) {
    let loaded = match load_identity(config, provider) {
        Ok(loaded) => loaded,
        Err(e) => {
            metrics.renewal(false);
            tracing::warn!(error = %e, "identity files changed but are not usable (yet); keeping the current certificate");
            return;
        }
    };
    let info = identity.info();
    if loaded.serial_hex == info.serial_hex && loaded.bundle_pem == info.bundle_pem() {
        return; // touched, not changed
    }
    let (serial, not_after) = (loaded.serial_hex.clone(), loaded.not_after);
    match identity.install(loaded) {
        Ok(()) => {
            metrics.renewal(true);
            tracing::info!(
                serial = %serial,
                not_after = %humantime::format_rfc3339_seconds(not_after),
                source = "files",
                "certificate renewed"
            );
        }
        Err(e) => {
            metrics.renewal(false);
            tracing::warn!(error = %e, "new identity files refused; keeping the current certificate");
        }
    }
}
