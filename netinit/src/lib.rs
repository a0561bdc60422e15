//! `usher init-net`: programs a pod's network namespace so that the sidecar
//! sees its traffic without the app being told, as linkerd2-proxy-init and
//! istio-iptables do.
//!
//! - TCP arriving at the pod is redirected to the inbound listener, except
//!   the admin port and the ports to skip;
//! - TCP the app opens is redirected to the outbound listener, except
//!   traffic of the sidecar's own UID (or it would loop), loopback, and the
//!   destinations (ports, CIDRs) to skip.
//!
//! The listeners read the original destination (`SO_ORIGINAL_DST`) of each
//! connection. IPv4 and IPv6 alike. nftables (one `inet` table, replaced
//! atomically) by default; iptables (`iptables-restore` and
//! `ip6tables-restore`, own chains) as an option. Both are driven through
//! their command-line tools, which the init container image carries; usher
//! links no netfilter library. Running it again replaces what it installed;
//! [`remove`] takes it away.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod iptables;
mod nft;
mod plan;
mod run;

pub use plan::DEFAULT_PROXY_UID;
pub use plan::{Backend, Cidr, Plan, PlanError};
pub use run::{apply, describe, installed, remove, NetInitError};
