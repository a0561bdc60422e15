//! Connections: `usher_open_connections` and `usher_connections_total`
//! by direction, and what became of connections that were not simply
//! proxied: refused at `max_connections`, upgraded (101) into a tunnel,
//! or redirected to a destination no route covers.

use std::borrow::Cow;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::{Direction, DirectionLabels, Metrics};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UpgradeLabels {
    direction: Direction,
    protocol: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct UnknownLabels {
    /// `http` or `tcp`.
    protocol: &'static str,
    /// `passthrough` or `refused`.
    action: &'static str,
}

/// Open and accepted connections, by direction.
pub(super) struct Connections {
    open: [Gauge; 2],
    accepted: [Counter; 2],
}

impl Connections {
    pub(super) fn register(registry: &mut Registry) -> Connections {
        let open_family = Family::<DirectionLabels, Gauge>::default();
        registry.register(
            "open_connections",
            "Connections open now, by direction",
            open_family.clone(),
        );
        let accepted_family = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "connections",
            "Connections accepted (inbound: after a successful mTLS handshake)",
            accepted_family.clone(),
        );
        let dir = |d| DirectionLabels { direction: d };
        Connections {
            open: [
                open_family.get_or_create_owned(&dir(Direction::Inbound)),
                open_family.get_or_create_owned(&dir(Direction::Outbound)),
            ],
            accepted: [
                accepted_family.get_or_create_owned(&dir(Direction::Inbound)),
                accepted_family.get_or_create_owned(&dir(Direction::Outbound)),
            ],
        }
    }
}

/// Connections refused at accept, upgraded, or to unknown destinations.
pub(super) struct Outcomes {
    connections_refused: Family<DirectionLabels, Counter>,
    upgrades: Family<UpgradeLabels, Counter>,
    unknown_destinations: Family<UnknownLabels, Counter>,
}

impl Outcomes {
    pub(super) fn register(registry: &mut Registry) -> Outcomes {
        let connections_refused = Family::<DirectionLabels, Counter>::default();
        registry.register(
            "connections_refused",
            "Connections closed at accept because the listener was at max_connections",
            connections_refused.clone(),
        );
        let upgrades = Family::<UpgradeLabels, Counter>::default();
        registry.register(
            "upgrades",
            "Connections switched to another protocol (101) and spliced as opaque tunnels, by direction and protocol",
            upgrades.clone(),
        );
        let unknown_destinations = Family::<UnknownLabels, Counter>::default();
        registry.register(
            "outbound_unknown_destinations",
            "Redirected outbound connections (tcp) and requests (http) no route covers, passed through to their original destination or refused (outbound.unknown)",
            unknown_destinations.clone(),
        );
        Outcomes {
            connections_refused,
            upgrades,
            unknown_destinations,
        }
    }
}

impl Metrics {
    /// A connection opened; the returned guard marks it closed when dropped.
    pub fn connection_opened(self: &Arc<Self>, direction: Direction) -> OpenConnection {
        let i = direction as usize;
        self.connections.accepted[i].inc();
        self.connections.open[i].inc();
        OpenConnection {
            metrics: self.clone(),
            direction,
        }
    }

    pub fn connection_refused(&self, direction: Direction) {
        self.outcomes
            .connections_refused
            .get_or_create(&DirectionLabels { direction })
            .inc();
    }

    /// A connection was upgraded (101) to `switched`, the response's
    /// `Upgrade`, after the request offered `offered` (see
    /// [`upgrade_protocol`] for the label).
    pub fn upgraded(&self, direction: Direction, offered: &str, switched: &str) {
        self.outcomes
            .upgrades
            .get_or_create(&UpgradeLabels {
                direction,
                protocol: upgrade_protocol(offered, switched),
            })
            .inc();
    }

    /// A redirected connection or request no route covers: `protocol`
    /// `http` or `tcp`, passed through or refused.
    pub fn unknown_destination(&self, protocol: &'static str, passed: bool) {
        self.outcomes
            .unknown_destinations
            .get_or_create(&UnknownLabels {
                protocol,
                action: if passed { "passthrough" } else { "refused" },
            })
            .inc();
    }
}

/// Closes a connection in the gauge when dropped.
pub struct OpenConnection {
    metrics: Arc<Metrics>,
    direction: Direction,
}

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.metrics.connections.open[self.direction as usize].dec();
    }
}

/// Longest protocol name kept as an `usher_upgrades_total` label.
const MAX_PROTOCOL_LABEL: usize = 32;

/// The `protocol` label of an upgrade: the name (without `/version`) of
/// the first protocol the 101 response switched to, lower-cased, when it
/// is an RFC 9110 token of at most 32 bytes *and* one of the protocols the
/// request offered; anything else is `other`. Offers pass the sanitizer
/// only for configured protocols, so the label set is bounded by the
/// config even when an app answers a 101 with a name of its own.
pub fn upgrade_protocol(offered: &str, switched: &str) -> Cow<'static, str> {
    let switched = protocol_name(switched.split(',').next().unwrap_or(""));
    let valid = !switched.is_empty()
        && switched.len() <= MAX_PROTOCOL_LABEL
        && switched.bytes().all(is_tchar);
    let was_offered = || {
        offered
            .split(',')
            .any(|o| protocol_name(o).eq_ignore_ascii_case(switched))
    };
    if valid && was_offered() {
        Cow::Owned(switched.to_ascii_lowercase())
    } else {
        Cow::Borrowed("other")
    }
}

/// `websocket/13` → `websocket` (RFC 9110 §7.8: `name[/version]`).
fn protocol_name(protocol: &str) -> &str {
    let p = protocol.trim();
    p.split_once('/').map_or(p, |(n, _)| n).trim()
}

/// `tchar` of RFC 9110 §5.6.2.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}
