//! OPA builtins regorus 0.14 lacks, besides `io.jwt.*` and `crypto.x509.*`,
//! supplied as extensions (registered by [`crate::builtins::register_one`]).
//! The behaviour is the one OPA documents in its policy reference, and where
//! the reference is silent, the one real OPA gives (the `policy/compat`
//! cases and OPA's own test cases):
//!
//! | builtin | result |
//! |---|---|
//! | `crypto.sha256(x)`, `crypto.sha1(x)` | lower-case hex digest of the UTF-8 bytes of `x` |
//! | `crypto.hmac.sha256(x, key)`, `.sha1`, `.sha512` | lower-case hex HMAC of `x` with `key` |
//! | `crypto.hmac.equal(mac1, mac2)` | `mac1 == mac2`, compared in constant time |
//! | `net.cidr_intersects(cidr1, cidr2)` | whether the two CIDRs share an address |
//! | `net.cidr_merge(addrs)` | the set of the fewest CIDRs covering `addrs` (an array or set of CIDRs and IPs) |
//! | `net.cidr_contains_matches(cidrs, cidrs_or_ips)` | the set of `[key1, key2]` pairs where `cidrs_or_ips[key2]` is in `cidrs[key1]` |
//! | `array.flatten(arr)` | `arr` with its array items unpacked, one level deep |
//!
//! `crypto.md5` and `crypto.hmac.md5` are missing: neither aws-lc-rs nor a
//! crate already in the build has MD5.
//!
//! Arguments of the wrong type, or addresses that do not parse, make a call
//! *undefined*, as OPA's builtin errors are without `--strict-builtin-errors`.
//!
//! Addresses are read as Go's `net` package reads them (OPA is written in
//! Go): an IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) is an IPv4 address,
//! and an IPv4 network written as an IPv4-mapped IPv6 one
//! (`::ffff:10.0.0.0/104`) is that IPv4 network (`10.0.0.0/8`). An IPv4
//! network never contains an IPv6 address, nor the reverse.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use aws_lc_rs::{constant_time, digest, hmac};
use regorus::Value;

use crate::builtins::hex;

/// The implementation of one of usher's extra builtins, by name.
pub(crate) fn function(name: &str) -> Option<fn(&[Value]) -> Value> {
    Some(match name {
        "crypto.sha256" => crypto_sha256,
        "crypto.sha1" => crypto_sha1,
        "crypto.hmac.sha256" => crypto_hmac_sha256,
        "crypto.hmac.sha1" => crypto_hmac_sha1,
        "crypto.hmac.sha512" => crypto_hmac_sha512,
        "crypto.hmac.equal" => crypto_hmac_equal,
        "net.cidr_intersects" => net_cidr_intersects,
        "net.cidr_merge" => net_cidr_merge,
        "net.cidr_contains_matches" => net_cidr_contains_matches,
        "array.flatten" => array_flatten,
        _ => return None,
    })
}

fn str_arg(args: &[Value], i: usize) -> Option<&str> {
    match args.get(i) {
        Some(Value::String(s)) => Some(s),
        _ => None,
    }
}

// ------------------------------------------------------------------ crypto

fn digest_hex(args: &[Value], algorithm: &'static digest::Algorithm) -> Value {
    match str_arg(args, 0) {
        Some(x) => Value::from(hex(digest::digest(algorithm, x.as_bytes()).as_ref())),
        None => Value::Undefined,
    }
}

fn hmac_hex(args: &[Value], algorithm: hmac::Algorithm) -> Value {
    match (str_arg(args, 0), str_arg(args, 1)) {
        (Some(x), Some(key)) => {
            let key = hmac::Key::new(algorithm, key.as_bytes());
            Value::from(hex(hmac::sign(&key, x.as_bytes()).as_ref()))
        }
        _ => Value::Undefined,
    }
}

fn crypto_sha256(args: &[Value]) -> Value {
    digest_hex(args, &digest::SHA256)
}

fn crypto_sha1(args: &[Value]) -> Value {
    digest_hex(args, &digest::SHA1_FOR_LEGACY_USE_ONLY)
}

fn crypto_hmac_sha256(args: &[Value]) -> Value {
    hmac_hex(args, hmac::HMAC_SHA256)
}

fn crypto_hmac_sha1(args: &[Value]) -> Value {
    hmac_hex(args, hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY)
}

fn crypto_hmac_sha512(args: &[Value]) -> Value {
    hmac_hex(args, hmac::HMAC_SHA512)
}

/// `crypto.hmac.equal(mac1, mac2)`: in constant time for the contents (as
/// Go's `hmac.Equal`, strings of different lengths differ at once).
fn crypto_hmac_equal(args: &[Value]) -> Value {
    match (str_arg(args, 0), str_arg(args, 1)) {
        (Some(a), Some(b)) => {
            Value::from(constant_time::verify_slices_are_equal(a.as_bytes(), b.as_bytes()).is_ok())
        }
        _ => Value::Undefined,
    }
}

// ------------------------------------------------------------------ arrays

/// `array.flatten(arr)`: OPA unpacks the array items of `arr` one level
/// deep ("non-recursively"); other items are kept as they are.
fn array_flatten(args: &[Value]) -> Value {
    let Some(Value::Array(items)) = args.first() else {
        return Value::Undefined;
    };
    let mut out = Vec::new();
    for item in items.iter() {
        match item {
            Value::Array(inner) => out.extend(inner.iter().cloned()),
            other => out.push(other.clone()),
        }
    }
    Value::from(out)
}

// --------------------------------------------------------------------- net

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Family {
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
struct Addr {
    family: Family,
    bits: u128,
}

/// A network: `base` has no host bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Net {
    family: Family,
    base: u128,
    prefix: u32,
}

/// The host part of a `prefix`-long network of `family`.
fn host_mask(family: Family, prefix: u32) -> u128 {
    let host_bits = family.bits() - prefix;
    if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

const V4_MAPPED: u128 = 0xffff_0000_0000;

/// `::ffff:a.b.c.d` as the IPv4 address `a.b.c.d`, as Go's `To4` has it.
fn ipv4_mapped(bits: u128) -> Option<u128> {
    (bits >> 32 == V4_MAPPED >> 32).then_some(bits & 0xffff_ffff)
}

fn addr_of(ip: IpAddr) -> Addr {
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
fn parse_ip(s: &str) -> Option<Addr> {
    s.parse::<IpAddr>().ok().map(addr_of)
}

/// A CIDR, as Go's `net.ParseCIDR` reads it: the host bits are dropped
/// (`10.1.2.3/8` is `10.0.0.0/8`).
fn parse_cidr(s: &str) -> Option<Net> {
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

fn format_addr(family: Family, bits: u128) -> String {
    match family {
        // Lossless: IPv4 bits fit in 32.
        Family::V4 => Ipv4Addr::from(u32::try_from(bits).unwrap_or_default()).to_string(),
        Family::V6 => Ipv6Addr::from(bits).to_string(),
    }
}

/// `net.cidr_intersects(cidr1, cidr2)`: two CIDRs (a bare IP is refused).
fn net_cidr_intersects(args: &[Value]) -> Value {
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
struct Range {
    family: Family,
    first: u128,
    last: u128,
    alone: Option<String>,
}

/// One element of `net.cidr_merge`'s argument. A bare IPv4 address is a
/// network with its classful mask (`10.x` /8, `172.16.x` /16, `192.168.x`
/// /24: Go's `DefaultMask`), printed with the address unmasked
/// (`192.168.1.7/24`) unless merged; a bare IPv6 address is refused ("IPv6
/// inputs need a prefix length").
fn merge_input(v: &Value) -> Option<Range> {
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
fn range_to_cidrs(family: Family, mut first: u128, last: u128, out: &mut BTreeSet<Value>) {
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
fn net_cidr_merge(args: &[Value]) -> Value {
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
fn match_term(v: &Value) -> Option<&Value> {
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
fn match_operand(v: &Value) -> Option<Vec<(&Value, Value)>> {
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
fn cidr_contains(cidr: &Value, cidr_or_ip: &Value) -> Option<bool> {
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
fn net_cidr_contains_matches(args: &[Value]) -> Value {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn json(s: &str) -> Value {
        Value::from_json_str(s).unwrap()
    }

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    fn call(name: &str, args: &[Value]) -> Value {
        function(name).unwrap()(args)
    }

    fn set(items: &[&str]) -> Value {
        Value::from(items.iter().map(|x| s(x)).collect::<BTreeSet<_>>())
    }

    fn merge(items: &[&str]) -> Value {
        let arr = Value::from(items.iter().map(|x| s(x)).collect::<Vec<_>>());
        call("net.cidr_merge", &[arr])
    }

    fn matches(a: &str, b: &str) -> Value {
        call("net.cidr_contains_matches", &[json(a), json(b)])
    }

    fn pairs(text: &str) -> Value {
        let Value::Array(a) = json(text) else {
            panic!("not an array: {text}")
        };
        Value::from(a.iter().cloned().collect::<BTreeSet<_>>())
    }

    /// Every builtin usher lists is implemented here or in builtins.rs,
    /// with the arity OPA gives it.
    #[test]
    fn listed_with_opa_arities() {
        let arities = [
            ("crypto.sha256", 1),
            ("crypto.sha1", 1),
            ("crypto.hmac.sha256", 2),
            ("crypto.hmac.sha1", 2),
            ("crypto.hmac.sha512", 2),
            ("crypto.hmac.equal", 2),
            ("net.cidr_intersects", 2),
            ("net.cidr_merge", 1),
            ("net.cidr_contains_matches", 2),
            ("array.flatten", 1),
        ];
        for (name, n) in arities {
            assert!(function(name).is_some(), "{name}");
            assert!(
                crate::builtins::JWT_BUILTINS.contains(&(name, n)),
                "{name}/{n} not in JWT_BUILTINS"
            );
        }
        assert!(function("crypto.md5").is_none());
    }

    /// Registered as extensions, called from Rego (the webhook check of the
    /// compat case crypto_hmac_webhook_signature among them).
    #[test]
    fn in_rego() {
        let mut engine = regorus::Engine::new();
        crate::builtins::register(&mut engine).unwrap();
        let rego = r#"package t
import rego.v1
sig := crypto.hmac.sha256(`{"event":"paid"}`, "whsec-compat")
ok := crypto.hmac.equal(sig, "f27b575c473c7232e7cec7278b4fbc3761c57428b1a710dc10e1ec234d2087ed")
flat := array.flatten([[1], 2, [[3]]])
merged := net.cidr_merge({"10.0.0.0/24", "10.0.1.0/24"})
hits := net.cidr_contains_matches(["10.0.0.0/8"], {"a": "10.1.2.3", "b": "11.0.0.1"})
overlap := net.cidr_intersects("10.0.0.0/8", "10.1.0.0/16")
bad := crypto.sha256(1)
"#;
        engine.add_policy("t.rego".into(), rego.into()).unwrap();
        let mut eval = |q: &str| engine.eval_rule(q.into()).unwrap();
        assert_eq!(eval("data.t.ok"), Value::from(true));
        assert_eq!(eval("data.t.flat"), json("[1, 2, [3]]"));
        assert_eq!(eval("data.t.merged"), set(&["10.0.0.0/23"]));
        assert_eq!(eval("data.t.hits"), pairs(r#"[[0, "a"]]"#));
        assert_eq!(eval("data.t.overlap"), Value::from(true));
        assert_eq!(eval("data.t.bad"), Value::Undefined);
    }

    #[test]
    fn digests() {
        // The compat case crypto_hashes (OPA's recorded digests of "usher").
        assert_eq!(
            call("crypto.sha256", &[s("usher")]),
            s("f7bb6eff92853145d359e7c5e81c7debde1e1b78d7c33b7c62c045db6dec1c07")
        );
        assert_eq!(
            call("crypto.sha1", &[s("usher")]),
            s("58a7a5322b5d38ba50fe953e10bd1955000d1884")
        );
        // FIPS 180 "abc" vectors, and OPA's SDK test vectors ("message").
        assert_eq!(
            call("crypto.sha256", &[s("abc")]),
            s("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
        assert_eq!(
            call("crypto.sha1", &[s("abc")]),
            s("a9993e364706816aba3e25717850c26c9cd0d89d")
        );
        assert_eq!(
            call("crypto.sha256", &[s("message")]),
            s("ab530a13e45914982b79f9b7e3fba994cfd1f3fb22f71cea1afbf02b460c6d1d")
        );
        assert_eq!(
            call("crypto.sha1", &[s("message")]),
            s("6f9b9af3cd6e8b8a73c2cdced37fe9f59226e27d")
        );
        // The empty string, and UTF-8 bytes.
        assert_eq!(
            call("crypto.sha256", &[s("")]),
            s("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(
            call("crypto.sha1", &[s("é")]),
            call(
                "crypto.sha1",
                &[Value::from(String::from_utf8(vec![0xc3, 0xa9]).unwrap())]
            )
        );
        assert_eq!(call("crypto.sha256", &[Value::from(1)]), Value::Undefined);
        assert_eq!(call("crypto.sha1", &[Value::Null]), Value::Undefined);
    }

    #[test]
    fn hmacs() {
        // OPA's SDK test vectors: ("message", "key").
        let args = [s("message"), s("key")];
        assert_eq!(
            call("crypto.hmac.sha1", &args),
            s("2088df74d5f2146b48146caf4965377e9d0be3a4")
        );
        assert_eq!(
            call("crypto.hmac.sha256", &args),
            s("6e9ef29b75fffc5b7abae527d58fdadb2fe42e7219011976917343065f58ed4a")
        );
        assert_eq!(
            call("crypto.hmac.sha512", &args),
            s("e477384d7ca229dd1426e64b63ebf2d36ebd6d7e669a6735424e72ea6c01d3f8b56eb39c36d8232f5427999b8d1a3f9cd1128fc69f4d75b434216810fa367e98")
        );
        // RFC 4231 test case 2.
        assert_eq!(
            call(
                "crypto.hmac.sha256",
                &[s("what do ya want for nothing?"), s("Jefe")]
            ),
            s("5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
        assert_eq!(
            call("crypto.hmac.sha256", &[s("x"), Value::from(1)]),
            Value::Undefined
        );
        assert_eq!(
            call("crypto.hmac.sha512", &[Value::Null, s("k")]),
            Value::Undefined
        );
    }

    #[test]
    fn hmac_equal() {
        let mac = s("4e4748e62b463521f6775fbf921234b5");
        assert_eq!(
            call("crypto.hmac.equal", &[mac.clone(), mac.clone()]),
            Value::from(true)
        );
        assert_eq!(
            call(
                "crypto.hmac.equal",
                &[s("4e4748e62b463521f6775fbf921234bx"), mac.clone()]
            ),
            Value::from(false)
        );
        assert_eq!(
            call("crypto.hmac.equal", &[s("4e47"), mac.clone()]),
            Value::from(false)
        );
        assert_eq!(
            call("crypto.hmac.equal", &[s(""), s("")]),
            Value::from(true)
        );
        assert_eq!(
            call("crypto.hmac.equal", &[mac, Value::Null]),
            Value::Undefined
        );
    }

    #[test]
    fn flatten_one_level() {
        assert_eq!(
            call("array.flatten", &[json("[1, [2, [3, 4]], [], [[5]]]")]),
            json("[1, 2, [3, 4], [5]]")
        );
        // Other values, sets included, are kept as they are.
        let with_set = Value::from(vec![
            json("[\"a\"]"),
            Value::from(BTreeSet::from([s("b")])),
            json("{\"c\": [1]}"),
            Value::Null,
        ]);
        assert_eq!(
            call("array.flatten", &[with_set]),
            Value::from(vec![
                s("a"),
                Value::from(BTreeSet::from([s("b")])),
                json("{\"c\": [1]}"),
                Value::Null,
            ])
        );
        assert_eq!(call("array.flatten", &[json("[]")]), json("[]"));
        assert_eq!(call("array.flatten", &[json("{}")]), Value::Undefined);
        assert_eq!(call("array.flatten", &[s("[1]")]), Value::Undefined);
    }

    #[test]
    fn intersects() {
        let t = |a: &str, b: &str| call("net.cidr_intersects", &[s(a), s(b)]);
        assert_eq!(t("10.0.0.0/8", "10.255.0.0/16"), Value::from(true));
        assert_eq!(t("10.255.0.0/16", "10.0.0.0/8"), Value::from(true));
        assert_eq!(t("10.0.0.0/24", "10.0.1.0/24"), Value::from(false));
        assert_eq!(t("192.168.0.0/16", "192.168.1.0/24"), Value::from(true));
        assert_eq!(t("fd00::/8", "fd00:1::/32"), Value::from(true));
        // OPA's test case netcidrintersects "cidr ipv6 subnet overlaps".
        assert_eq!(
            t("fd1e:5bfe:8af3:9ddc::/64", "fd1e:5bfe:8af3:9ddc:1111::/72"),
            Value::from(true)
        );
        // Host bits are ignored; families never meet.
        assert_eq!(t("10.1.2.3/8", "10.200.0.0/16"), Value::from(true));
        assert_eq!(t("0.0.0.0/0", "::/0"), Value::from(false));
        assert_eq!(t("::ffff:10.0.0.0/104", "10.1.0.0/16"), Value::from(true));
        // Bare IPs and malformed CIDRs are errors.
        assert_eq!(t("192.168.1.0/28", "not-a-cidr"), Value::Undefined);
        assert_eq!(t("10.0.0.1", "10.0.0.0/8"), Value::Undefined);
        assert_eq!(t("10.0.0.0/33", "10.0.0.0/8"), Value::Undefined);
        assert_eq!(t("10.0.0.0/", "10.0.0.0/8"), Value::Undefined);
        assert_eq!(t("10.0.0.0/+8", "10.0.0.0/8"), Value::Undefined);
        assert_eq!(
            call("net.cidr_intersects", &[s("10.0.0.0/8"), Value::from(1)]),
            Value::Undefined
        );
    }

    /// OPA's test cases netcidrmerge (test-netcidrmerge0117 and
    /// test-ipv6-with-and-without-prefix).
    #[test]
    fn merge_opa_cases() {
        assert_eq!(merge(&["192.0.128.0/24"]), set(&["192.0.128.0/24"]));
        assert_eq!(
            merge(&["192.0.128.0/24", "192.0.128.0/24"]),
            set(&["192.0.128.0/24"])
        );
        assert_eq!(merge(&["192.0.128.0/24", "0.0.0.0/0"]), set(&["0.0.0.0/0"]));
        assert_eq!(
            merge(&["192.0.128.0/24", "192.0.129.0/24"]),
            set(&["192.0.128.0/23"])
        );
        assert_eq!(
            merge(&["192.0.2.112/30", "192.0.2.116/31", "192.0.2.118/31"]),
            set(&["192.0.2.112/29"])
        );
        assert_eq!(
            merge(&["192.0.129.0/24", "192.0.130.0/24"]),
            set(&["192.0.129.0/24", "192.0.130.0/24"])
        );
        assert_eq!(
            merge(&["192.0.2.112/30", "192.0.2.116/32", "192.0.2.118/31"]),
            set(&["192.0.2.112/30", "192.0.2.116/32", "192.0.2.118/31"])
        );
        assert_eq!(
            merge(&["192.0.2.112/31", "192.0.2.116/31", "192.0.2.118/31"]),
            set(&["192.0.2.112/31", "192.0.2.116/30"])
        );
        let mut many = vec!["192.0.1.254/31".to_string()];
        many.extend((0..16).map(|i| format!("192.0.2.{}/28", i * 16)));
        many.push("192.0.3.0/28".into());
        let many: Vec<&str> = many.iter().map(String::as_str).collect();
        assert_eq!(
            merge(&many),
            set(&["192.0.1.254/31", "192.0.2.0/24", "192.0.3.0/28"])
        );
        assert_eq!(merge(&["::/0", "fe80::1/128"]), set(&["::/0"]));
        assert_eq!(
            merge(&["::/0", "::192.0.2.0/124", "ff00::101/128"]),
            set(&["::/0"])
        );
        assert_eq!(
            merge(&[
                "fe80::/120",
                "192.0.2.0/24",
                "192.0.3.0/24",
                "192.0.4.0/25",
                "192.0.4.128/25"
            ]),
            set(&["192.0.2.0/23", "192.0.4.0/24", "fe80::/120"])
        );
        assert_eq!(merge(&[]), set(&[]));
        assert_eq!(
            merge(&["192.0.2.112", "192.0.2.116/31", "192.0.2.118/31"]),
            set(&["192.0.2.0/24"])
        );
        assert_eq!(
            merge(&["192.0.128.0", "192.0.129.0"]),
            set(&["192.0.128.0/23"])
        );
        let as_set = set(&["192.0.2.112/30", "192.0.2.116/31", "192.0.2.118/31"]);
        assert_eq!(call("net.cidr_merge", &[as_set]), set(&["192.0.2.112/29"]));
        assert_eq!(merge(&["foo"]), Value::Undefined);
        let v6 = "2601:600:8a80:207e:a57d:7567:e2c9:e7b3";
        let v6_128 = format!("{v6}/128");
        assert_eq!(merge(&[v6_128.as_str()]), set(&[v6_128.as_str()]));
        assert_eq!(
            merge(&[v6_128.as_str(), v6_128.as_str()]),
            set(&[v6_128.as_str()])
        );
        assert_eq!(
            merge(&[format!("{v6}/64").as_str(), v6_128.as_str()]),
            set(&["2601:600:8a80:207e::/64"])
        );
        assert_eq!(merge(&[v6]), Value::Undefined);
        assert_eq!(merge(&[v6, v6]), Value::Undefined);
    }

    #[test]
    fn merge_bare_ipv4_keeps_its_text_unless_merged() {
        // The compat case: the classful mask of 192.168.x is /24.
        assert_eq!(
            merge(&["10.0.0.0/24", "10.0.1.0/24", "192.168.1.7", "10.0.0.128/25"]),
            set(&["10.0.0.0/23", "192.168.1.7/24"])
        );
        assert_eq!(merge(&["10.1.2.3"]), set(&["10.1.2.3/8"]));
        assert_eq!(merge(&["172.16.5.4"]), set(&["172.16.5.4/16"]));
        assert_eq!(merge(&["::ffff:172.16.5.4"]), set(&["172.16.5.4/16"]));
        assert_eq!(
            merge(&["192.168.1.7", "192.168.1.7"]),
            set(&["192.168.1.0/24"])
        );
        assert_eq!(
            merge(&["192.168.1.7", "192.168.1.0/25"]),
            set(&["192.168.1.0/24"])
        );
        // Host bits of a CIDR are dropped, as Go's ParseCIDR does.
        assert_eq!(merge(&["10.1.2.3/16"]), set(&["10.1.0.0/16"]));
    }

    #[test]
    fn merge_edges() {
        // Adjacent at the top of the address space, and the whole of it.
        assert_eq!(
            merge(&["255.255.255.254/31", "255.255.255.252/31"]),
            set(&["255.255.255.252/30"])
        );
        assert_eq!(merge(&["0.0.0.0/1", "128.0.0.0/1"]), set(&["0.0.0.0/0"]));
        assert_eq!(merge(&["::/1", "8000::/1"]), set(&["::/0"]));
        assert_eq!(
            merge(&[
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"
            ]),
            set(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"])
        );
        // An odd range comes back as the fewest CIDRs covering it.
        assert_eq!(
            merge(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30"]),
            set(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30"])
        );
        assert_eq!(
            merge(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/29"]),
            set(&["10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/29"])
        );
        assert_eq!(
            merge(&["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30"]),
            set(&["10.0.0.0/29"])
        );
        // Wrong types.
        assert_eq!(call("net.cidr_merge", &[s("10.0.0.0/8")]), Value::Undefined);
        assert_eq!(call("net.cidr_merge", &[json("[1]")]), Value::Undefined);
        assert_eq!(call("net.cidr_merge", &[json("{}")]), Value::Undefined);
    }

    /// OPA's documented behaviour and its test cases (net.cidr_contains_matches).
    #[test]
    fn contains_matches_opa_cases() {
        assert_eq!(
            matches(
                r#"["127.0.0.64/24", "10.0.0.64/24"]"#,
                r#"["127.0.0.64/26", "127.0.0.1", "10.0.0.100", "1.0.0.1"]"#
            ),
            pairs("[[0, 0], [0, 1], [1, 2]]")
        );
        assert_eq!(
            matches(r#""1.1.1.0/24""#, r#""1.1.1.128""#),
            pairs(r#"[["1.1.1.0/24", "1.1.1.128"]]"#)
        );
        assert_eq!(
            matches(r#"["1.1.1.0/24", "1.1.2.0/24"]"#, r#""1.1.1.128""#),
            pairs(r#"[[0, "1.1.1.128"]]"#)
        );
        assert_eq!(
            matches(
                r#"[["1.1.0.0/16", "foo"], "1.1.2.0/24"]"#,
                r#"["1.1.1.128", ["1.1.254.254", "bar"]]"#
            ),
            pairs("[[0, 0], [0, 1]]")
        );
        assert_eq!(
            matches(
                r#"[["1.1.2.0/24", "foo", 1], "1.1.0.0/16"]"#,
                r#"{"x": "1.1.1.128", "y": ["1.1.254.254", "bar"]}"#
            ),
            pairs(r#"[[1, "x"], [1, "y"]]"#)
        );
        // A set: each element is its own key, arrays included.
        let cidrs = Value::from(BTreeSet::from([
            json(r#"["1.1.0.0/16", "foo", 1]"#),
            s("1.1.2.0/24"),
        ]));
        assert_eq!(
            call(
                "net.cidr_contains_matches",
                &[
                    cidrs,
                    json(r#"{"x": "1.1.1.128", "y": ["1.1.254.254", "bar"]}"#)
                ]
            ),
            pairs(r#"[[["1.1.0.0/16", "foo", 1], "x"], [["1.1.0.0/16", "foo", 1], "y"]]"#)
        );
        // The compat case: an object's keys.
        assert_eq!(
            matches(
                r#"{"office": "10.1.0.0/16", "vpn": "10.8.0.0/16", "lab": "172.16.0.0/12"}"#,
                r#""10.1.2.3""#
            ),
            pairs(r#"[["office", "10.1.2.3"]]"#)
        );
    }

    #[test]
    fn contains_matches_edges() {
        // No match: an empty set, not undefined.
        assert_eq!(matches(r#"["10.0.0.0/8"]"#, r#"["11.0.0.1"]"#), set(&[]));
        // A CIDR contains the networks inside it, not those overlapping it.
        assert_eq!(
            matches(
                r#"["10.0.0.0/8"]"#,
                r#"["10.2.0.0/16", "10.0.0.0/7", "10.0.0.0/8"]"#
            ),
            pairs("[[0, 0], [0, 2]]")
        );
        // IPv4-mapped addresses are IPv4 ones; IPv6 networks hold no IPv4.
        assert_eq!(
            matches(
                r#"["10.0.0.0/8", "::/0"]"#,
                r#"["::ffff:10.1.2.3", "fd00::1"]"#
            ),
            pairs("[[0, 0], [1, 1]]")
        );
        // Malformed CIDRs or members: undefined.
        assert_eq!(
            matches(r#"["10.0.0.1"]"#, r#"["10.0.0.1"]"#),
            Value::Undefined
        );
        assert_eq!(
            matches(r#"["10.0.0.0/8"]"#, r#"["nope"]"#),
            Value::Undefined
        );
        assert_eq!(matches(r#"[[]]"#, r#"["10.0.0.1"]"#), Value::Undefined);
        assert_eq!(matches(r#"[5]"#, r#"["10.0.0.1"]"#), Value::Undefined);
        assert_eq!(matches(r#"[[5]]"#, r#"["10.0.0.1"]"#), Value::Undefined);
        // Nothing to compare: nothing is parsed.
        assert_eq!(matches(r#"[]"#, r#"[5]"#), set(&[]));
        assert_eq!(matches(r#"["nope"]"#, r#"[]"#), set(&[]));
    }

    #[test]
    fn cidr_parsing_follows_go() {
        assert_eq!(
            parse_cidr("10.1.2.3/8"),
            Some(Net {
                family: Family::V4,
                base: 0x0a00_0000,
                prefix: 8
            })
        );
        assert_eq!(parse_cidr("10.0.0.0/08").map(|n| n.prefix), Some(8));
        assert!(parse_cidr("010.0.0.0/8").is_none());
        assert!(parse_cidr("10.0.0.0/-1").is_none());
        assert!(parse_cidr("10.0.0.0/129").is_none());
        assert!(parse_cidr("fe80::1%eth0/64").is_none());
        assert_eq!(
            parse_cidr("::/0").map(|n| (n.family, n.prefix)),
            Some((Family::V6, 0))
        );
        assert_eq!(
            parse_cidr("::ffff:10.0.0.0/104"),
            Some(Net {
                family: Family::V4,
                base: 0x0a00_0000,
                prefix: 8
            })
        );
        assert_eq!(
            parse_ip("::ffff:1.2.3.4").map(|a| a.family),
            Some(Family::V4)
        );
        assert_eq!(parse_ip("::1.2.3.4").map(|a| a.family), Some(Family::V6));
        assert!(parse_ip("1.2.3").is_none());
    }
}
