//! `net.cidr_intersects`, `net.cidr_merge` and `net.cidr_contains_matches`,
//! reading addresses as Go's `net` package does (see the parent module).

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use regorus::Value;

use super::str_arg;
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Family {
    V4,
    V6,
}

impl Family {
    fn bits(self) -> u32 {
        match self {
            Family::V4 => 32,
            Family::V6 => 128,
        }
    }
}

/// An address: IPv4 ones in the low 32 bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Addr {
    pub(super) family: Family,
    pub(super) bits: u128,
}

/// A network: `base` has no host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Net {
    pub(super) family: Family,
    pub(super) base: u128,
    pub(super) prefix: u32,
}

/// The host part of a `prefix`-long network of `family`.
pub(super) fn host_mask(family: Family, prefix: u32) -> u128 {
    let host_bits = family.bits() - prefix;
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

pub(super) const V4_MAPPED: u128 = 0xffff_0000_0000;

/// `::ffff:a.b.c.d` as the IPv4 address `a.b.c.d`, as Go's `To4` has it.
pub(super) fn ipv4_mapped(bits: u128) -> Option<u128> {
    (bits >> 32 == V4_MAPPED >> 32).then_some(bits & 0xffff_ffff)
}

pub(super) fn addr_of(ip: IpAddr) -> Addr {
    match ip {
        IpAddr::V4(v4) => Addr {
            family: Family::V4,
            bits: u128::from(u32::from(v4)),
        },
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            match ipv4_mapped(bits) {
                Some(v4) => Addr {
                    family: Family::V4,
                    bits: v4,
                },
                None => Addr {
                    family: Family::V6,
                    bits,
                },
            }
        }
    }
}

/// An IP address, as Go's `net.ParseIP` reads it (no zone).
pub(super) fn parse_ip(s: &str) -> Option<Addr> {
    s.parse::<IpAddr>().ok().map(addr_of)
}

/// A CIDR, as Go's `net.ParseCIDR` reads it: the host bits are dropped
/// (`10.1.2.3/8` is `10.0.0.0/8`).
pub(super) fn parse_cidr(s: &str) -> Option<Net> {
    let (ip, prefix) = s.split_once('/')?;
    let ip = ip.parse::<IpAddr>().ok()?;
    if prefix.is_empty() || !prefix.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let (family, bits) = match ip {
        IpAddr::V4(v4) => (Family::V4, u128::from(u32::from(v4))),
        IpAddr::V6(v6) => (Family::V6, u128::from(v6)),
    };
    let prefix = prefix.parse::<u32>().ok().filter(|p| *p <= family.bits())?;
    let base = bits & !host_mask(family, prefix);
    // An IPv4-mapped IPv6 network is the IPv4 network (Go's `Contains`
    // and `String` read it so).
    if family == Family::V6 {
        if let Some(v4) = ipv4_mapped(base) {
            return Some(Net {
                family: Family::V4,
                base: v4,
                prefix: prefix.saturating_sub(96),
            });
        }
    }
    Some(Net {
        family,
        base,
        prefix,
    })
}

impl Net {
    fn last(&self) -> u128 {
        self.base | host_mask(self.family, self.prefix)
    }

    fn contains_addr(&self, a: Addr) -> bool {
        a.family == self.family && a.bits & !host_mask(self.family, self.prefix) == self.base
    }

    fn contains_net(&self, other: &Net) -> bool {
        other.family == self.family
            && other.prefix >= self.prefix
            && other.base & !host_mask(self.family, self.prefix) == self.base
    }

    fn intersects(&self, other: &Net) -> bool {
        self.contains_net(other) || other.contains_net(self)
    }
}

pub(super) fn format_addr(family: Family, bits: u128) -> String {
    match family {
        // Lossless: IPv4 bits fit in 32.
        Family::V4 => Ipv4Addr::from(u32::try_from(bits).unwrap_or_default()).to_string(),
        Family::V6 => Ipv6Addr::from(bits).to_string(),
    }
}

/// `net.cidr_intersects(cidr1, cidr2)`: two CIDRs (a bare IP is refused).
pub(super) fn net_cidr_intersects(args: &[Value]) -> Value {
    let (Some(a), Some(b)) = (str_arg(args, 0), str_arg(args, 1)) else {
        return Value::Undefined;
    };
    match (parse_cidr(a), parse_cidr(b)) {
        (Some(a), Some(b)) => Value::from(a.intersects(&b)),
        _ => Value::Undefined,
    }
}

/// A run of addresses `first..=last` of one family, and what it was made
/// of: `alone` when a single input gave it (its text is then kept as the
/// input had it, as OPA does).
pub(super) struct Range {
    pub(super) family: Family,
    pub(super) first: u128,
    pub(super) last: u128,
    pub(super) alone: Option<String>,
}

/// One element of `net.cidr_merge`'s argument. A bare IPv4 address is a
/// network with its classful mask (`10.x` /8, `172.16.x` /16, `192.168.x`
/// /24: Go's `DefaultMask`), printed with the address unmasked
/// (`192.168.1.7/24`) unless merged; a bare IPv6 address is refused ("IPv6
/// inputs need a prefix length").
pub(super) fn merge_input(v: &Value) -> Option<Range> {
    let Value::String(s) = v else {
        return None;
    };
    if let Some(ip) = parse_ip(s) {
        if ip.family != Family::V4 {
            return None;
        }
        let prefix = match ip.bits >> 24 {
            0..=0x7f => 8,
            0x80..=0xbf => 16,
            _ => 24,
        };
        let net = Net {
            family: Family::V4,
            base: ip.bits & !host_mask(Family::V4, prefix),
            prefix,
        };
        return Some(Range {
            family: Family::V4,
            first: net.base,
            last: net.last(),
            alone: Some(format!("{}/{prefix}", format_addr(Family::V4, ip.bits))),
        });
    }
    let net = parse_cidr(s)?;
    Some(Range {
        family: net.family,
        first: net.base,
        last: net.last(),
        alone: Some(format!(
            "{}/{}",
            format_addr(net.family, net.base),
            net.prefix
        )),
    })
}

/// The fewest CIDRs covering exactly `first..=last`.
pub(super) fn range_to_cidrs(
    family: Family,
    mut first: u128,
    last: u128,
    out: &mut BTreeSet<Value>,
) {
    let width = family.bits();
    loop {
        let span = last - first;
        // log2 of the number of addresses left, rounded down.
        let fits = if span == u128::MAX {
            128
        } else {
            127 - (span + 1).leading_zeros()
        };
        let aligned = first.trailing_zeros().min(width);
        let host_bits = fits.min(aligned);
        let prefix = width - host_bits;
        out.insert(Value::from(format!(
            "{}/{prefix}",
            format_addr(family, first)
        )));
        let end = first | host_mask(family, prefix);
        if end >= last {
            return;
        }
        first = end + 1;
    }
}

/// `net.cidr_merge(addrs)`: an array or a set of CIDRs and IPv4 addresses;
/// overlapping and adjacent networks are merged, IPv4 and IPv6 apart.
pub(super) fn net_cidr_merge(args: &[Value]) -> Value {
    let items: Vec<&Value> = match args.first() {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(Value::Set(s)) => s.iter().collect(),
        _ => return Value::Undefined,
    };
    let mut ranges = Vec::with_capacity(items.len());
    for item in items {
        match merge_input(item) {
            Some(r) => ranges.push(r),
            None => return Value::Undefined,
        }
    }
    ranges.sort_by(|a, b| {
        (a.family, a.first)
            .cmp(&(b.family, b.first))
            .then(b.last.cmp(&a.last))
    });
    let mut merged: Vec<Range> = Vec::new();
    for r in ranges {
        if let Some(cur) = merged.last_mut() {
            if cur.family == r.family && (cur.last == u128::MAX || r.first <= cur.last + 1) {
                cur.last = cur.last.max(r.last);
                cur.alone = None;
                continue;
            }
        }
        merged.push(r);
    }
    let mut out = BTreeSet::new();
    for r in merged {
        match r.alone {
            Some(text) => {
                out.insert(Value::from(text));
            }
            None => range_to_cidrs(r.family, r.first, r.last, &mut out),
        }
    }
    Value::from(out)
}

/// The CIDR of an element of a `net.cidr_contains_matches` collection: a
/// string, or an array whose first item is one (the rest is the caller's).
pub(super) fn match_term(v: &Value) -> Option<&Value> {
    match v {
        Value::String(_) => Some(v),
        Value::Array(a) => a.iter().next(),
        _ => None,
    }
}

/// The `(cidr, key)` pairs of a `net.cidr_contains_matches` operand: a
/// string is its own key, an array's keys are indexes, a set's the
/// elements, an object's its keys. Another type has no pairs (OPA's type
/// checker refuses one written in the policy).
pub(super) fn match_operand(v: &Value) -> Option<Vec<(&Value, Value)>> {
    Some(match v {
        Value::String(_) => vec![(v, v.clone())],
        Value::Array(a) => a
            .iter()
            .enumerate()
            .map(|(i, x)| Some((match_term(x)?, Value::from(i))))
            .collect::<Option<_>>()?,
        Value::Set(s) => s
            .iter()
            .map(|x| Some((match_term(x)?, x.clone())))
            .collect::<Option<_>>()?,
        Value::Object(o) => o
            .iter()
            .map(|(k, x)| Some((match_term(x)?, k.clone())))
            .collect::<Option<_>>()?,
        _ => Vec::new(),
    })
}

/// `net.cidr_contains(cidr, cidr_or_ip)` as OPA computes it; `None` for a
/// malformed argument.
pub(super) fn cidr_contains(cidr: &Value, cidr_or_ip: &Value) -> Option<bool> {
    let (Value::String(cidr), Value::String(other)) = (cidr, cidr_or_ip) else {
        return None;
    };
    let net = parse_cidr(cidr)?;
    if let Some(ip) = parse_ip(other) {
        return Some(net.contains_addr(ip));
    }
    Some(net.contains_net(&parse_cidr(other)?))
}

/// `net.cidr_contains_matches(cidrs, cidrs_or_ips)`: every `[k1, k2]` where
/// the CIDR at `k1` of `cidrs` contains the CIDR or IP at `k2` of
/// `cidrs_or_ips`.
pub(super) fn net_cidr_contains_matches(args: &[Value]) -> Value {
    let (Some(cidrs), Some(candidates)) = (args.first(), args.get(1)) else {
        return Value::Undefined;
    };
    let Some(cidrs) = match_operand(cidrs) else {
        return Value::Undefined;
    };
    // OPA walks the second collection for each element of the first: with
    // an empty first one, the second is never looked at.
    if cidrs.is_empty() {
        return Value::new_set();
    }
    let Some(candidates) = match_operand(candidates) else {
        return Value::Undefined;
    };
    let mut out = BTreeSet::new();
    for (cidr, k1) in &cidrs {
        for (candidate, k2) in &candidates {
            match cidr_contains(cidr, candidate) {
                Some(true) => {
                    out.insert(Value::from(vec![k1.clone(), k2.clone()]));
                }
                Some(false) => {}
                None => return Value::Undefined,
            }
        }
    }
    Value::from(out)
}
