//! The workload certificate: when the one in use expires, when it was
//! installed, and renewals by result.

use std::sync::atomic::AtomicU64;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// The identity families.
pub(super) struct Identity {
    cert_expiry: Gauge<f64, AtomicU64>,
    /// [success, failure]
    renewals: [Counter; 2],
    last_renewal: Gauge<f64, AtomicU64>,
}

impl Identity {
    pub(super) fn register(registry: &mut Registry) -> Identity {
        let cert_expiry = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "identity_cert_expiry_timestamp_seconds",
            "When the workload certificate in use expires (Unix time)",
            cert_expiry.clone(),
        );
        let renewal_family = Family::<ResultLabels, Counter>::default();
        registry.register(
            "identity_renewals",
            "Certificate renewals (CA enrolment and renewal, or new files on disk), by result",
            renewal_family.clone(),
        );
        let last_renewal = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "identity_last_renewal_timestamp_seconds",
            "When the certificate in use was installed (Unix time)",
            last_renewal.clone(),
        );
        Identity {
            cert_expiry,
            renewals: [
                renewal_family.get_or_create_owned(&ResultLabels { result: "success" }),
                renewal_family.get_or_create_owned(&ResultLabels { result: "failure" }),
            ],
            last_renewal,
        }
    }
}

impl Metrics {
    pub fn set_cert_expiry(&self, not_after: SystemTime) {
        let secs = not_after
            .duration_since(UNIX_EPOCH)
            .unwrap_or(Duration::ZERO)
            .as_secs_f64();
        self.identity.cert_expiry.set(secs);
    }

    /// A certificate was installed (`Ok`) or could not be obtained.
    pub fn renewal(&self, ok: bool) {
        self.identity.renewals[usize::from(!ok)].inc();
        if ok {
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64();
            self.identity.last_renewal.set(now);
        }
    }
}
