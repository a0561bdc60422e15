//! Mutual TLS: `usher_tls_handshake_failures_total`, by direction and
//! reason.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::{Direction, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HandshakeLabels {
    direction: Direction,
    reason: &'static str,
}

/// The TLS families.
pub(super) struct Tls {
    handshake_failures: Family<HandshakeLabels, Counter>,
}

impl Tls {
    pub(super) fn register(registry: &mut Registry) -> Tls {
        let handshake_failures = Family::<HandshakeLabels, Counter>::default();
        registry.register(
            "tls_handshake_failures",
            "Mutual TLS handshakes that failed, by direction and reason",
            handshake_failures.clone(),
        );
        Tls { handshake_failures }
    }
}

impl Metrics {
    pub fn handshake_failed(&self, direction: Direction, reason: &'static str) {
        self.tls
            .handshake_failures
            .get_or_create(&HandshakeLabels { direction, reason })
            .inc();
    }
}
