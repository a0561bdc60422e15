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

mod net;
use net::{net_cidr_contains_matches, net_cidr_intersects, net_cidr_merge};

#[cfg(test)]
mod tests;
