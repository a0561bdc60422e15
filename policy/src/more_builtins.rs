//! OPA builtins regorus 0.14 lacks, besides `io.jwt.*` and `crypto.x509.*`,
//! and OPA's versions of regorus builtins that answer otherwise, supplied
//! as extensions (registered by [`crate::builtins::register_one`]; an
//! extension under a regorus builtin's name replaces it). The behaviour is
//! the one OPA documents in its policy reference, and where the reference
//! is silent, the one real OPA gives (the `policy/compat` cases, OPA's own
//! test cases, and answers recorded from OPA 1.20.2):
//!
//! | builtin | result |
//! |---|---|
//! | `crypto.sha256(x)`, `crypto.sha1(x)`, `crypto.md5(x)` | lower-case hex digest of the UTF-8 bytes of `x` |
//! | `crypto.hmac.sha256(x, key)`, `.sha1`, `.sha512`, `.md5` | lower-case hex HMAC of `x` with `key` |
//! | `crypto.hmac.equal(mac1, mac2)` | `mac1 == mac2`, compared in constant time |
//! | `net.cidr_intersects(cidr1, cidr2)` | whether the two CIDRs share an address |
//! | `net.cidr_merge(addrs)` | the set of the fewest CIDRs covering `addrs` (an array or set of CIDRs and IPs) |
//! | `net.cidr_contains_matches(cidrs, cidrs_or_ips)` | the set of `[key1, key2]` pairs where `cidrs_or_ips[key2]` is in `cidrs[key1]` |
//! | `array.flatten(arr)` | `arr` with its array items unpacked, one level deep |
//!
//! Replacing regorus' own (listed in [`crate::builtins::BOUNDED_BUILTINS`]):
//!
//! | builtin | as OPA (regorus did otherwise) | module |
//! |---|---|---|
//! | `sprintf(format, values)` | Go's `fmt`: flags, width, precision, `%[n]` indexes, every verb OPA policies use, Go's `%!d(string=x)` texts; values other than numbers and strings as their Rego text | [`sprintf`] |
//! | `json.marshal(x)`, `json.marshal_with_options(x, opts)` | Go's `encoding/json`: `<>&` escaped, keys sorted (non-string keys as their JSON), sets in OPA's order, `1.0` kept, `MarshalIndent`'s layout | [`json`] |
//! | `time.add_date(ns, y, m, d)` | Go's `AddDate`: Jan 31 + 1 month = Mar 3, in the zone of `[ns, tz]` | [`time`] |
//! | `semver.is_valid(v)`, `semver.compare(a, b)` | OPA's lenient parser: `v1.2.3`, leading zeros, empty pre-release | [`semver`] |
//! | `yaml.unmarshal(s)`, `yaml.is_valid(s)` | YAML 1.1 scalars as go-yaml v2 reads them (`yes`/`off` booleans, `017` octal, `1_000`), merge keys, first document | [`yaml`] |
//! | `regex.template_match(t, v, start, end)` | one expression for the whole template (regorus panicked on a value shorter than the template's prefix) | [`regex`] |
//!
//! Each module says where it still differs from OPA. A policy that calls
//! any of these runs on the interpreter (as with every extension).
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
        "crypto.md5" => crypto_md5,
        "crypto.hmac.md5" => crypto_hmac_md5,
        "net.cidr_intersects" => net_cidr_intersects,
        "net.cidr_merge" => net_cidr_merge,
        "net.cidr_contains_matches" => net_cidr_contains_matches,
        "array.flatten" => array_flatten,
        // Overrides of regorus' own (BOUNDED_BUILTINS).
        "sprintf" => sprintf::sprintf,
        "json.marshal" => json::json_marshal,
        "json.marshal_with_options" => json::json_marshal_with_options,
        "time.add_date" => time::time_add_date,
        "semver.is_valid" => semver::semver_is_valid,
        "semver.compare" => semver::semver_compare,
        "yaml.unmarshal" => yaml::yaml_unmarshal,
        "yaml.is_valid" => yaml::yaml_is_valid,
        "regex.template_match" => regex::regex_template_match,
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

fn md5(data: &[u8]) -> [u8; 16] {
    use md5::Digest as _;
    md5::Md5::digest(data).into()
}

fn crypto_md5(args: &[Value]) -> Value {
    match str_arg(args, 0) {
        Some(x) => Value::from(hex(&md5(x.as_bytes()))),
        None => Value::Undefined,
    }
}

/// HMAC-MD5 (RFC 2104; 64-byte blocks).
fn hmac_md5(key: &[u8], message: &[u8]) -> [u8; 16] {
    let mut block = [0u8; 64];
    if key.len() > block.len() {
        block[..16].copy_from_slice(&md5(key));
    } else {
        block[..key.len()].copy_from_slice(key);
    }
    let pad = |byte: u8| block.iter().map(|b| b ^ byte).collect::<Vec<u8>>();
    let mut inner = pad(0x36);
    inner.extend_from_slice(message);
    let mut outer = pad(0x5c);
    outer.extend_from_slice(&md5(&inner));
    md5(&outer)
}

fn crypto_hmac_md5(args: &[Value]) -> Value {
    match (str_arg(args, 0), str_arg(args, 1)) {
        (Some(x), Some(key)) => Value::from(hex(&hmac_md5(key.as_bytes(), x.as_bytes()))),
        _ => Value::Undefined,
    }
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

mod json;
mod net;
mod regex;
mod semver;
mod sprintf;
mod time;
mod yaml;
use net::{net_cidr_contains_matches, net_cidr_intersects, net_cidr_merge};

pub(crate) use json::to_json;

#[cfg(test)]
mod tests;
