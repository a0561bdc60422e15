//! Authorization: `usher_policy_decisions_total`, by decision (allow,
//! deny) and policy mode (enforce, audit).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::Metrics;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    decision: &'static str,
    mode: &'static str,
}

/// The policy families, their four series resolved once.
pub(super) struct Policy {
    /// [enforce, audit] × [allow, deny]
    decisions: [[Counter; 2]; 2],
}

impl Policy {
    pub(super) fn register(registry: &mut Registry) -> Policy {
        let policy_family = Family::<PolicyLabels, Counter>::default();
        registry.register(
            "policy_decisions",
            "Authorization decisions, by decision and policy mode",
            policy_family.clone(),
        );
        let policy = |mode| {
            let get =
                |decision| policy_family.get_or_create_owned(&PolicyLabels { decision, mode });
            [get("allow"), get("deny")]
        };
        Policy {
            decisions: [policy("enforce"), policy("audit")],
        }
    }
}

impl Metrics {
    pub fn policy_decision(&self, audit: bool, allowed: bool) {
        self.policy.decisions[usize::from(audit)][usize::from(!allowed)].inc();
    }
}
