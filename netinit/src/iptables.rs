//! The iptables rules: `USHER_INBOUND` and `USHER_OUTBOUND` chains in the
//! `nat` table of each family, jumped to from `PREROUTING` and `OUTPUT`.

use std::fmt::Write;

use crate::plan::Plan;

pub(crate) const INBOUND: &str = "USHER_INBOUND";
pub(crate) const OUTBOUND: &str = "USHER_OUTBOUND";

/// The jumps into usher's chains: `(built-in chain, rule)`.
pub(crate) const JUMPS: [(&str, &str); 2] = [("PREROUTING", INBOUND), ("OUTPUT", OUTBOUND)];

/// Input for `iptables-restore --noflush` (or `ip6tables-restore`): the
/// chains declared are created or emptied, then filled, in one commit.
pub(crate) fn restore(plan: &Plan, v4: bool) -> String {
    let mut s = String::from("*nat\n");
    let _ = writeln!(s, ":{INBOUND} - [0:0]");
    let _ = writeln!(s, ":{OUTBOUND} - [0:0]");
    let _ = writeln!(s, "-A {INBOUND} -i lo -j RETURN");
    // Only what is addressed to the pod (see nft.rs).
    let _ = writeln!(s, "-A {INBOUND} -m addrtype ! --dst-type LOCAL -j RETURN");
    // multiport takes at most 15 ports.
    for chunk in plan.inbound_exempt_ports().chunks(15) {
        let _ = writeln!(
            s,
            "-A {INBOUND} -p tcp -m multiport --dports {} -j RETURN",
            join(chunk)
        );
    }
    let _ = writeln!(
        s,
        "-A {INBOUND} -p tcp -j REDIRECT --to-ports {}",
        plan.inbound_port
    );
    let _ = writeln!(
        s,
        "-A {OUTBOUND} -m owner --uid-owner {} -j RETURN",
        plan.proxy_uid
    );
    let _ = writeln!(s, "-A {OUTBOUND} -o lo -j RETURN");
    for chunk in plan.outbound_exempt_ports().chunks(15) {
        let _ = writeln!(
            s,
            "-A {OUTBOUND} -p tcp -m multiport --dports {} -j RETURN",
            join(chunk)
        );
    }
    for cidr in plan.outbound_exempt_cidrs(v4) {
        let _ = writeln!(s, "-A {OUTBOUND} -d {cidr} -j RETURN");
    }
    let _ = writeln!(
        s,
        "-A {OUTBOUND} -p tcp -j REDIRECT --to-ports {}",
        plan.outbound_port
    );
    s.push_str("COMMIT\n");
    s
}

/// The arguments of a jump rule (for `-C`, `-A`, `-D`).
pub(crate) fn jump_args(builtin: &str, chain: &str, op: &str) -> Vec<String> {
    [
        "-w", "5", "-t", "nat", op, builtin, "-p", "tcp", "-j", chain,
    ]
    .iter()
    .map(|s| (*s).to_string())
    .collect()
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restore_input_per_family() {
        let plan = Plan {
            skip_outbound_cidrs: vec![
                "169.254.169.254".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
            ],
            skip_inbound_ports: (1..=20).collect(),
            ..Plan::default()
        };
        let v4 = restore(&plan, true);
        assert!(v4.starts_with("*nat\n:USHER_INBOUND - [0:0]\n:USHER_OUTBOUND - [0:0]\n"));
        assert!(v4.ends_with("-A USHER_OUTBOUND -p tcp -j REDIRECT --to-ports 15001\nCOMMIT\n"));
        assert!(v4.contains("-A USHER_OUTBOUND -d 169.254.169.254/32 -j RETURN\n"));
        assert!(!v4.contains("fd00"));
        // 23 exempt ports: two multiport rules.
        assert_eq!(v4.matches("--dports").count(), 2, "{v4}");
        assert!(v4.contains("-A USHER_OUTBOUND -m owner --uid-owner 2020 -j RETURN\n"));
        let v6 = restore(&plan, false);
        assert!(v6.contains("-A USHER_OUTBOUND -d fd00::/8 -j RETURN\n"));
        assert!(!v6.contains("169.254"));
    }
}
