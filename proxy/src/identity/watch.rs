//! File mode: when the certificate, key or bundle files change on disk
//! (renewed by SPIRE, cert-manager or `usher ca issue`), load them again
//! and install them, with no restart.
//!
//! As with policies, the folders are watched, not the files (Kubernetes
//! Secrets and most tools replace files by renaming). A half-written set
//! (a new certificate with the old key) fails the cross-checks and is not
//! installed; the next event, when the key lands, installs the pair.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use tokio_util::sync::CancellationToken;

use super::{load_identity, Identity, IdentityError};
use crate::config::IdentityFiles;
use crate::telemetry::Metrics;
use crate::watch::DirWatch;

pub(crate) fn spawn_file_watcher(
    identity: Arc<Identity>,
    config: IdentityFiles,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) -> Result<(), notify::Error> {
    let mut watch = DirWatch::new([
        config.cert.as_path(),
        config.key.as_path(),
        config.bundle.as_path(),
    ])?;
    tokio::spawn(async move {
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
                changed = watch.changed() => {
                    if changed.is_none() {
                        break;
                    }
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
    config: &IdentityFiles,
    provider: &CryptoProvider,
    metrics: &Metrics,
) {
    let loaded = match load_identity(config, provider) {
        Ok(loaded) => loaded,
        Err(e @ IdentityError::InsecureKeyPermissions { .. }) => {
            // Not a half-written set that the next event completes: the
            // operator has to act.
            metrics.renewal(false);
            tracing::error!(error = %e, "identity files changed but the key file is not protected; keeping the current certificate");
            return;
        }
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
