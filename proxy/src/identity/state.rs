//! The identity in force: certificate and key ([`CertStore`]), trusted
//! roots ([`TrustStore`]) and what `/identity`, `/ready` and the metrics
//! report about them. Renewal (CA mode) and file watching (file mode)
//! install new material here; handshakes started after an install use it,
//! connections already open carry on.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use usher_ca::SpiffeId;

use super::{CertStore, LoadedIdentity, TlsError, TrustStore};
use crate::telemetry::Metrics;

/// Facts about the certificate in use.
#[derive(Clone, Debug)]
pub struct CertInfo {
    /// When this sidecar installed it: renewal is timed from here, not
    /// from `not_before`, which the CA backdates for clock skew.
    pub(crate) obtained: SystemTime,
    pub(crate) not_before: SystemTime,
    pub not_after: SystemTime,
    pub serial_hex: String,
    /// Roots in the trust bundle.
    pub roots: usize,
    bundle_pem: Vec<u8>,
}

impl CertInfo {
    /// The trust bundle in force, as PEM.
    pub(crate) fn bundle_pem(&self) -> &[u8] {
        &self.bundle_pem
    }
}

pub struct Identity {
    pub(crate) spiffe_id: SpiffeId,
    pub(crate) certs: Arc<CertStore>,
    pub(crate) trust: Arc<TrustStore>,
    info: ArcSwap<CertInfo>,
    /// Cleared when the certificate expired without a replacement.
    valid: AtomicBool,
    metrics: Arc<Metrics>,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum InstallError {
    #[error("the new certificate is for {got}, not {expected}")]
    WrongIdentity { expected: SpiffeId, got: SpiffeId },
    #[error("the new certificate has already expired")]
    Expired,
    #[error("the new trust bundle is unusable: {0}")]
    Bundle(#[from] TlsError),
}

impl Identity {
    pub(crate) fn new(
        loaded: LoadedIdentity,
        trust: Arc<TrustStore>,
        metrics: Arc<Metrics>,
    ) -> Arc<Identity> {
        metrics.set_cert_expiry(loaded.not_after);
        Arc::new(Identity {
            spiffe_id: loaded.spiffe_id,
            certs: CertStore::new(loaded.certified_key),
            trust,
            info: ArcSwap::from_pointee(CertInfo {
                obtained: SystemTime::now(),
                not_before: loaded.not_before,
                not_after: loaded.not_after,
                serial_hex: loaded.serial_hex,
                roots: loaded.roots.len(),
                bundle_pem: loaded.bundle_pem,
            }),
            valid: AtomicBool::new(true),
            metrics,
        })
    }

    pub fn info(&self) -> Arc<CertInfo> {
        self.info.load_full()
    }

    /// Holds a certificate that has not expired.
    pub(crate) fn is_valid(&self) -> bool {
        self.valid.load(Ordering::SeqCst) && SystemTime::now() < self.info.load().not_after
    }

    /// Marks the certificate expired (readiness turns false); returns
    /// whether it was still counted valid (to log the change once).
    pub(crate) fn mark_expired(&self) -> bool {
        self.valid.swap(false, Ordering::SeqCst)
    }

    /// Swaps in renewed material: the bundle first (so peers with the new
    /// root are trusted before we present a certificate from it), then the
    /// certificate. Material for another identity is refused.
    pub(crate) fn install(&self, new: LoadedIdentity) -> Result<(), InstallError> {
        if new.spiffe_id != self.spiffe_id {
            return Err(InstallError::WrongIdentity {
                expected: self.spiffe_id.clone(),
                got: new.spiffe_id,
            });
        }
        if new.not_after <= SystemTime::now() {
            return Err(InstallError::Expired);
        }
        let old = self.info.load_full();
        if old.bundle_pem != new.bundle_pem {
            self.trust.replace(new.roots.clone())?;
            tracing::info!(roots = new.roots.len(), "trust bundle replaced");
        }
        self.certs.replace(new.certified_key);
        self.info.store(Arc::new(CertInfo {
            obtained: SystemTime::now(),
            not_before: new.not_before,
            not_after: new.not_after,
            serial_hex: new.serial_hex,
            roots: new.roots.len(),
            bundle_pem: new.bundle_pem,
        }));
        self.valid.store(true, Ordering::SeqCst);
        self.metrics.set_cert_expiry(new.not_after);
        Ok(())
    }
}
