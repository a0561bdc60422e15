//! The inbound guards before the policy: requests refused by JWT
//! authentication (by reason) and by a rate limit (by bucket scope).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabels {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

/// The guard families.
pub(super) struct Guard {
    authn_failures: Family<ReasonLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
}

impl Guard {
    pub(super) fn register(registry: &mut Registry) -> Guard {
        let authn_failures = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "authn_failures",
            "Requests refused by JWT authentication, by reason",
            authn_failures.clone(),
        );
        let rate_limited = Family::<ScopeLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Requests refused by a rate limit (429), by bucket scope (caller, route)",
            rate_limited.clone(),
        );
        Guard {
            authn_failures,
            rate_limited,
        }
    }
}

impl Metrics {
    pub fn authn_failure(&self, reason: &'static str) {
        self.guard
            .authn_failures
            .get_or_create(&ReasonLabels { reason })
            .inc();
    }

    pub fn rate_limited(&self, scope: &'static str) {
        self.guard
            .rate_limited
            .get_or_create(&ScopeLabels { scope })
            .inc();
    }
}
