//! Keys for transparent interception (`usher init-net`): whether plain-text
//! callers are accepted inbound (`inbound.mode`, `inbound.port_modes`), and
//! what happens to outbound connections no route covers
//! (`outbound.unknown`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use serde::de::{self, Deserializer};
use serde::Deserialize;
use usher_netinit::Cidr;

/// Inbound: whether callers without mTLS are served.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InboundMode {
    /// Only mesh peers (mTLS with a SPIFFE ID); plain text is refused.
    #[default]
    Strict,
    /// mesh peers, and plain-text callers without an identity (their
    /// requests reach the policy with no principal): for a migration.
    Permissive,
}

/// `inbound.mode` and its per-port exceptions (the port the caller dialled).
#[derive(Clone, Debug, Default)]
pub(crate) struct InboundModes {
    pub(crate) default: InboundMode,
    pub(crate) ports: BTreeMap<u16, InboundMode>,
}

impl InboundModes {
    /// The mode for a connection to `port` (the original destination's
    /// port; `None` when the connection was not redirected).
    pub(crate) fn for_port(&self, port: Option<u16>) -> InboundMode {
        port.and_then(|p| self.ports.get(&p).copied())
            .unwrap_or(self.default)
    }

    /// Whether any connection may be plain text (then the first bytes of
    /// each connection are read to tell).
    pub(crate) fn any_permissive(&self) -> bool {
        self.default == InboundMode::Permissive
            || self.ports.values().any(|m| *m == InboundMode::Permissive)
    }
}

/// What to do with a connection (or HTTP request) whose destination no
/// route covers.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub(crate) enum UnknownAction {
    /// Closed (an HTTP request gets 404 naming its host), and logged.
    #[default]
    Refuse,
    /// Sent on to the original destination as it was, counted and logged.
    Passthrough,
}

/// A destination: a network and/or a port. `10.0.0.0/8`, `10.1.2.3`,
/// `10.0.0.0/8:443`, `[fd00::/8]:443`, `*:53`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Destination {
    pub(crate) net: Option<Cidr>,
    pub(crate) port: Option<u16>,
}

impl Destination {
    pub(crate) fn matches(&self, addr: SocketAddr) -> bool {
        self.port.is_none_or(|p| p == addr.port())
            && self.net.is_none_or(|n| contains(&n, addr.ip()))
    }
}

/// Whether `net` holds `ip` (an IPv4-mapped IPv6 address counts as IPv4).
fn contains(net: &Cidr, ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (net.addr, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(net.prefix))
                .unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(net.prefix))
                .unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

impl std::str::FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "expected a network, a network and port, or *:port, such as 10.0.0.0/8, \
                 10.0.0.0/8:443, [fd00::/8]:443 or *:53; got {s:?}"
            )
        };
        let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad);
        if let Some(p) = s.strip_prefix("*:") {
            return Ok(Destination {
                net: None,
                port: Some(port(p)?),
            });
        }
        if let Some(rest) = s.strip_prefix('[') {
            let (net, p) = rest.split_once("]:").ok_or_else(bad)?;
            return Ok(Destination {
                net: Some(net.parse().map_err(|_| bad())?),
                port: Some(port(p)?),
            });
        }
        // IPv4 with a port: one colon; IPv6 without brackets: no port.
        match s.matches(':').count() {
            1 => {
                let (net, p) = s.split_once(':').ok_or_else(bad)?;
                Ok(Destination {
                    net: Some(net.parse().map_err(|_| bad())?),
                    port: Some(port(p)?),
                })
            }
            _ => Ok(Destination {
                net: Some(s.parse().map_err(|_| bad())?),
                port: None,
            }),
        }
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.net, self.port) {
            (None, Some(p)) => write!(f, "*:{p}"),
            (Some(n), Some(p)) if n.is_ipv4() => write!(f, "{n}:{p}"),
            (Some(n), Some(p)) => write!(f, "[{n}]:{p}"),
            (Some(n), None) => write!(f, "{n}"),
            (None, None) => write!(f, "*"),
        }
    }
}

/// `outbound.unknown`: `refuse`, `passthrough`, or
/// `{default: refuse, passthrough: [dest...], refuse: [dest...]}`.
#[derive(Clone, Debug, Default)]
pub(crate) struct UnknownDestinations {
    pub(crate) default: UnknownAction,
    /// Passed through even when the default refuses.
    pub(crate) passthrough: Vec<Destination>,
    /// Refused even when the default passes through (wins over
    /// `passthrough`).
    pub(crate) refuse: Vec<Destination>,
}

impl UnknownDestinations {
    pub(crate) fn action(&self, dest: SocketAddr) -> UnknownAction {
        if self.refuse.iter().any(|d| d.matches(dest)) {
            UnknownAction::Refuse
        } else if self.passthrough.iter().any(|d| d.matches(dest)) {
            UnknownAction::Passthrough
        } else {
            self.default
        }
    }
}

impl<'de> Deserialize<'de> for UnknownDestinations {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Action(UnknownAction),
            Full(Full),
        }
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Full {
            #[serde(default)]
            default: UnknownAction,
            #[serde(default)]
            passthrough: Vec<String>,
            #[serde(default)]
            refuse: Vec<String>,
        }
        let parse = |list: Vec<String>| -> Result<Vec<Destination>, D::Error> {
            list.iter()
                .map(|s| s.parse().map_err(de::Error::custom))
                .collect()
        };
        match Raw::deserialize(d).map_err(|_| {
            de::Error::custom(
                "expected refuse, passthrough, or {default: refuse|passthrough, passthrough: [destinations], refuse: [destinations]}",
            )
        })? {
            Raw::Action(default) => Ok(UnknownDestinations {
                default,
                ..Default::default()
            }),
            Raw::Full(f) => Ok(UnknownDestinations {
                default: f.default,
                passthrough: parse(f.passthrough)?,
                refuse: parse(f.refuse)?,
            }),
        }
    }
}

/// How long a connection's first bytes may take to arrive inbound in
/// permissive mode (a peer's ClientHello or a request line).
pub(crate) fn inbound_detect_timeout() -> Duration {
    Duration::from_secs(10)
}

/// How long the app's first bytes may take outbound before the connection
/// is taken for a protocol where the server speaks first.
pub(crate) fn outbound_detect_timeout() -> Duration {
    Duration::from_secs(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn destinations_parse_and_match() {
        let d: Destination = "10.0.0.0/8:443".parse().unwrap();
        assert!(d.matches(addr("10.1.2.3:443")));
        assert!(!d.matches(addr("10.1.2.3:80")));
        assert!(!d.matches(addr("11.1.2.3:443")));
        assert!(d.matches(addr("[::ffff:10.1.2.3]:443")), "IPv4-mapped");
        let any53: Destination = "*:53".parse().unwrap();
        assert!(any53.matches(addr("[fd00::1]:53")) && any53.matches(addr("1.1.1.1:53")));
        let v6: Destination = "[fd00::/8]:443".parse().unwrap();
        assert!(v6.matches(addr("[fd12::1]:443")) && !v6.matches(addr("10.0.0.1:443")));
        let host: Destination = "169.254.169.254".parse().unwrap();
        assert!(
            host.matches(addr("169.254.169.254:80")) && !host.matches(addr("169.254.169.253:80"))
        );
        let bare6: Destination = "fd00::/8".parse().unwrap();
        assert_eq!(bare6.port, None);
        for (s, shown) in [
            ("10.0.0.0/8:443", "10.0.0.0/8:443"),
            ("[fd00::/8]:443", "[fd00::/8]:443"),
            ("*:53", "*:53"),
        ] {
            assert_eq!(s.parse::<Destination>().unwrap().to_string(), shown);
        }
        for bad in [
            "",
            "*:0",
            "*:x",
            "10.0.0.0/33",
            "[fd00::/8]",
            "[fd00::/8]:",
            "host.example:443",
            "10.0.0.0/8:70000",
        ] {
            assert!(bad.parse::<Destination>().is_err(), "{bad}");
        }
    }

    #[test]
    fn refuse_wins_then_passthrough_then_the_default() {
        let u: UnknownDestinations = yaml_serde::from_str(
            "{default: refuse, passthrough: ['0.0.0.0/0:443', '*:53'], refuse: ['169.254.169.254']}",
        )
        .unwrap();
        assert_eq!(
            u.action(addr("93.184.216.34:443")),
            UnknownAction::Passthrough
        );
        assert_eq!(u.action(addr("93.184.216.34:80")), UnknownAction::Refuse);
        assert_eq!(u.action(addr("169.254.169.254:443")), UnknownAction::Refuse);
        let all: UnknownDestinations = yaml_serde::from_str("passthrough").unwrap();
        assert_eq!(
            all.action(addr("10.0.0.1:5432")),
            UnknownAction::Passthrough
        );
        assert!(yaml_serde::from_str::<UnknownDestinations>("allow").is_err());
        let err =
            yaml_serde::from_str::<UnknownDestinations>("{passthrough: ['nope']}").unwrap_err();
        assert!(err.to_string().contains("expected"), "{err}");
    }

    #[test]
    fn per_port_modes() {
        let m = InboundModes {
            default: InboundMode::Strict,
            ports: BTreeMap::from([(8080, InboundMode::Permissive)]),
        };
        assert_eq!(m.for_port(Some(8080)), InboundMode::Permissive);
        assert_eq!(m.for_port(Some(9090)), InboundMode::Strict);
        assert_eq!(m.for_port(None), InboundMode::Strict);
        assert!(m.any_permissive());
        assert!(!InboundModes::default().any_permissive());
    }
}
