//! The nftables ruleset: one `inet usher` table (IPv4 and IPv6 together).

use std::fmt::Write;

use crate::plan::{Cidr, Plan};

pub(crate) const TABLE: &str = "usher";

/// A script for `nft -f -` that replaces the `inet usher` table in one
/// transaction: the empty declaration makes the delete valid when no table
/// exists yet, so a first run and a re-run are the same script.
pub(crate) fn script(plan: &Plan) -> String {
    let mut s = format!("table inet {TABLE} {{\n}}\ndelete table inet {TABLE}\n");
    s.push_str(&ruleset(plan));
    s
}

/// The table itself.
pub(crate) fn ruleset(plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "table inet {TABLE} {{");
    // Inbound: TCP that arrives for the pod, except usher's own ports and
    // the ones to skip. Loopback is the pod talking to itself.
    s.push_str("\tchain prerouting {\n");
    s.push_str("\t\ttype nat hook prerouting priority -100; policy accept;\n");
    s.push_str("\t\tiifname \"lo\" return\n");
    // Only what is addressed to the pod: a neighbour on the link can send
    // a packet for any IP to this pod's MAC, and a redirected connection
    // would make usher reach that IP from inside the pod.
    s.push_str("\t\tfib daddr type != local return\n");
    let _ = writeln!(
        s,
        "\t\ttcp dport {{ {} }} return",
        join(&plan.inbound_exempt_ports())
    );
    let _ = writeln!(s, "\t\tmeta l4proto tcp redirect to :{}", plan.inbound_port);
    s.push_str("\t}\n");
    // Outbound: TCP the app opens. usher's own connections (by UID) would
    // loop; loopback is the app talking to itself or to usher directly.
    s.push_str("\tchain output {\n");
    s.push_str("\t\ttype nat hook output priority -100; policy accept;\n");
    let _ = writeln!(s, "\t\tmeta skuid {} return", plan.proxy_uid);
    s.push_str("\t\toifname \"lo\" return\n");
    let ports = plan.outbound_exempt_ports();
    if !ports.is_empty() {
        let _ = writeln!(s, "\t\ttcp dport {{ {} }} return", join(&ports));
    }
    for (family, v4) in [("ip", true), ("ip6", false)] {
        let cidrs = plan.outbound_exempt_cidrs(v4);
        if !cidrs.is_empty() {
            let _ = writeln!(s, "\t\t{family} daddr {{ {} }} return", join_cidrs(&cidrs));
        }
    }
    let _ = writeln!(
        s,
        "\t\tmeta l4proto tcp redirect to :{}",
        plan.outbound_port
    );
    s.push_str("\t}\n}\n");
    s
}

fn join(ports: &[u16]) -> String {
    ports
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn join_cidrs(cidrs: &[Cidr]) -> String {
    cidrs
        .iter()
        .map(Cidr::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_plan() {
        assert_eq!(
            ruleset(&Plan::default()),
            "table inet usher {\n\
             \tchain prerouting {\n\
             \t\ttype nat hook prerouting priority -100; policy accept;\n\
             \t\tiifname \"lo\" return\n\
             \t\tfib daddr type != local return\n\
             \t\ttcp dport { 15000, 15001, 15006 } return\n\
             \t\tmeta l4proto tcp redirect to :15006\n\
             \t}\n\
             \tchain output {\n\
             \t\ttype nat hook output priority -100; policy accept;\n\
             \t\tmeta skuid 2020 return\n\
             \t\toifname \"lo\" return\n\
             \t\tmeta l4proto tcp redirect to :15001\n\
             \t}\n\
             }\n"
        );
    }

    #[test]
    fn skips_by_port_and_family() {
        let plan = Plan {
            skip_inbound_ports: vec![22, 9090, 22],
            skip_outbound_ports: vec![5432],
            skip_outbound_cidrs: vec![
                "169.254.169.254".parse().unwrap(),
                "fd00::/8".parse().unwrap(),
                "10.0.0.0/8".parse().unwrap(),
            ],
            ..Plan::default()
        };
        let r = ruleset(&plan);
        assert!(
            r.contains("tcp dport { 22, 9090, 15000, 15001, 15006 } return"),
            "{r}"
        );
        assert!(r.contains("tcp dport { 5432 } return"), "{r}");
        assert!(
            r.contains("ip daddr { 10.0.0.0/8, 169.254.169.254/32 } return"),
            "{r}"
        );
        assert!(r.contains("ip6 daddr { fd00::/8 } return"), "{r}");
        assert!(script(&plan).starts_with("table inet usher {\n}\ndelete table inet usher\n"));
    }
}
