//! What to install: ports, the sidecar's UID, what to leave alone.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// The sidecar's UID when none is given (also the UID of usher's image).
pub const DEFAULT_PROXY_UID: u32 = 2020;

/// Which netfilter front end installs the rules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `nft -f -`: one `inet usher` table for IPv4 and IPv6.
    Nft,
    /// `iptables-restore` / `ip6tables-restore`: `USHER_*` chains in the
    /// `nat` table, jumped to from `PREROUTING` and `OUTPUT`.
    Iptables,
}

impl FromStr for Backend {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "nft" | "nftables" => Ok(Backend::Nft),
            "iptables" => Ok(Backend::Iptables),
            other => Err(format!("expected nft or iptables, got {other:?}")),
        }
    }
}

/// An IPv4 or IPv6 network, `10.0.0.0/8` or `fd00::/8` (a bare address is
/// a /32 or /128).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn is_ipv4(&self) -> bool {
        self.addr.is_ipv4()
    }
}

impl FromStr for Cidr {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr.parse().map_err(|_| {
            format!("expected an IP network such as 10.0.0.0/8 or fd00::/8, got {s:?}")
        })?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("the prefix length of {s:?} must be 0..={max}"))?,
        };
        // The network address itself, as nft and iptables print it.
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u32::from(a) & mask).to_be_bytes())
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
                IpAddr::from((u128::from(a) & mask).to_be_bytes())
            }
        };
        Ok(Cidr { addr, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// The rules to install.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub backend: Backend,
    /// Where inbound TCP goes (usher's `inbound.listen` port).
    pub inbound_port: u16,
    /// Where the app's outbound TCP goes (`outbound.listen` port).
    pub outbound_port: u16,
    /// usher's admin port: never redirected (probes reach it directly).
    pub admin_port: u16,
    /// usher's UID: its own connections are never redirected.
    pub proxy_uid: u32,
    /// Inbound destination ports left alone (e.g. 22, a metrics port).
    pub skip_inbound_ports: Vec<u16>,
    /// Outbound destination ports left alone.
    pub skip_outbound_ports: Vec<u16>,
    /// Outbound destinations left alone (e.g. the cloud metadata service).
    pub skip_outbound_cidrs: Vec<Cidr>,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            backend: Backend::Nft,
            inbound_port: 15006,
            outbound_port: 15001,
            admin_port: 15000,
            proxy_uid: DEFAULT_PROXY_UID,
            skip_inbound_ports: Vec::new(),
            skip_outbound_ports: Vec::new(),
            skip_outbound_cidrs: Vec::new(),
        }
    }
}

/// A plan that would not work.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("{what} is 0: a port must be 1..=65535")]
    ZeroPort { what: &'static str },
    #[error("{a} and {b} are both {port}: each listener needs its own port")]
    SamePort {
        a: &'static str,
        b: &'static str,
        port: u16,
    },
    #[error("the proxy UID is 0: root's own traffic would escape the mesh (and usher must not run as root)")]
    RootUid,
}

impl Plan {
    /// Checks the plan before anything is installed.
    pub fn validate(&self) -> Result<(), PlanError> {
        let ports = [
            ("the inbound port", self.inbound_port),
            ("the outbound port", self.outbound_port),
            ("the admin port", self.admin_port),
        ];
        for (i, (what, port)) in ports.iter().enumerate() {
            if *port == 0 {
                return Err(PlanError::ZeroPort { what });
            }
            if let Some((other, _)) = ports[..i].iter().find(|(_, p)| p == port) {
                return Err(PlanError::SamePort {
                    a: other,
                    b: what,
                    port: *port,
                });
            }
        }
        if self.skip_inbound_ports.contains(&0) {
            return Err(PlanError::ZeroPort {
                what: "a port to skip inbound",
            });
        }
        if self.skip_outbound_ports.contains(&0) {
            return Err(PlanError::ZeroPort {
                what: "a port to skip outbound",
            });
        }
        if self.proxy_uid == 0 {
            return Err(PlanError::RootUid);
        }
        Ok(())
    }

    /// Inbound ports never redirected: usher's own and the ones to skip,
    /// sorted, each once.
    pub(crate) fn inbound_exempt_ports(&self) -> Vec<u16> {
        let mut ports = vec![self.admin_port, self.inbound_port, self.outbound_port];
        ports.extend(&self.skip_inbound_ports);
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub(crate) fn outbound_exempt_ports(&self) -> Vec<u16> {
        let mut ports = self.skip_outbound_ports.clone();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    pub(crate) fn outbound_exempt_cidrs(&self, v4: bool) -> Vec<Cidr> {
        let mut cidrs: Vec<Cidr> = self
            .skip_outbound_cidrs
            .iter()
            .filter(|c| c.is_ipv4() == v4)
            .copied()
            .collect();
        cidrs.sort_by_key(|c| (c.addr, c.prefix));
        cidrs.dedup();
        cidrs
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidrs_parse_to_their_network() {
        let c: Cidr = "10.1.2.3/8".parse().unwrap();
        assert_eq!(c.to_string(), "10.0.0.0/8");
        assert_eq!(
            "169.254.169.254".parse::<Cidr>().unwrap().to_string(),
            "169.254.169.254/32"
        );
        assert_eq!("fd00::1/8".parse::<Cidr>().unwrap().to_string(), "fd00::/8");
        assert_eq!(
            "0.0.0.0/0".parse::<Cidr>().unwrap().to_string(),
            "0.0.0.0/0"
        );
        assert_eq!("::/0".parse::<Cidr>().unwrap().to_string(), "::/0");
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0/8",
            "",
            "x/8",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn plans_that_would_not_work_are_refused() {
        assert_eq!(Plan::default().validate(), Ok(()));
        let same = Plan {
            admin_port: 15006,
            ..Plan::default()
        };
        assert!(matches!(
            same.validate(),
            Err(PlanError::SamePort { port: 15006, .. })
        ));
        let root = Plan {
            proxy_uid: 0,
            ..Plan::default()
        };
        assert_eq!(root.validate(), Err(PlanError::RootUid));
        let zero = Plan {
            skip_outbound_ports: vec![0],
            ..Plan::default()
        };
        assert!(matches!(zero.validate(), Err(PlanError::ZeroPort { .. })));
    }
}
