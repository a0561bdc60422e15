//! Whether every call of a policy is pure: its value a function of its
//! arguments alone (no clock, randomness, network, environment or output),
//! so that the decision depends only on `input` and `data`. Decided by an
//! allow-list: a builtin not named here — regorus' or usher's, known or
//! added later — counts as impure. User-defined functions are pure when
//! their own calls are (their bodies are walked like any rule).

use super::Scan;
use crate::builtins::{BOUNDED_BUILTINS, JWT_BUILTINS};

/// Builtins whose result depends only on their arguments.
///
/// Left out on purpose: `time.now_ns`, `rand.intn`, `uuid.rfc4122`,
/// `opa.runtime`, `http.send`, `net.lookup_ip_addr`, `test.sleep`, `trace`
/// and `print` (output), `io.jwt.*` (`decode_verify` reads the clock;
/// `encode_sign` may be randomised), `crypto.x509.*` (verification reads
/// the clock), `azure.*`.
#[rustfmt::skip]
const PURE_BUILTINS: &[&str] = &[
    // numbers and aggregates
    "abs", "ceil", "floor", "round", "numbers.range", "numbers.range_step",
    "count", "sum", "product", "max", "min", "sort", "to_number", "format_int",
    "bits.and", "bits.lsh", "bits.negate", "bits.or", "bits.rsh", "bits.xor",
    // arrays, sets, objects, types
    "array.concat", "array.reverse", "array.slice", "array.flatten",
    "intersection", "union", "__builtin_sets.intersection", "__builtin_sets.union",
    "object.filter", "object.get", "object.keys", "object.remove", "object.subset",
    "object.union", "object.union_n",
    "is_array", "is_boolean", "is_null", "is_number", "is_object", "is_set",
    "is_string", "type_name", "walk",
    // strings
    "concat", "contains", "endswith", "startswith", "indexof", "indexof_n", "lower",
    "upper", "replace", "split", "sprintf", "substring", "trim", "trim_left",
    "trim_prefix", "trim_right", "trim_space", "trim_suffix",
    "strings.any_prefix_match", "strings.any_suffix_match", "strings.count",
    "strings.replace_n", "strings.reverse",
    "regex.find_n", "regex.globs_match", "regex.is_valid", "regex.match",
    "regex.replace", "regex.split", "regex.template_match",
    "glob.match", "glob.quote_meta",
    // encodings
    "json.filter", "json.is_valid", "json.marshal", "json.marshal_with_options",
    "json.patch", "json.remove", "json.unmarshal", "json.match_schema",
    "json.verify_schema", "yaml.is_valid", "yaml.marshal", "yaml.unmarshal",
    "base64.decode", "base64.encode", "base64.is_valid", "base64url.decode",
    "base64url.encode", "base64url.encode_no_pad", "hex.decode", "hex.encode",
    "urlquery.decode", "urlquery.decode_object", "urlquery.encode",
    "urlquery.encode_object",
    // versions, units, identifiers, networks, graphs, digests
    "semver.compare", "semver.is_valid", "units.parse", "units.parse_bytes",
    "uuid.parse", "net.cidr_contains", "net.cidr_expand", "net.cidr_is_valid",
    "net.cidr_intersects", "net.cidr_merge", "net.cidr_contains_matches",
    "graph.reachable", "graph.reachable_paths",
    "crypto.sha256", "crypto.sha1", "crypto.md5", "crypto.hmac.sha256",
    "crypto.hmac.sha1", "crypto.hmac.sha512", "crypto.hmac.md5", "crypto.hmac.equal",
    // time from given values (never the clock)
    "time.parse_ns", "time.parse_rfc3339_ns", "time.parse_duration_ns", "time.date",
    "time.clock", "time.weekday", "time.add_date", "time.diff", "time.format",
];

/// A builtin regorus or usher provides under this name.
fn is_builtin(name: &str) -> bool {
    regorus::unstable::BUILTINS.contains_key(name)
        || JWT_BUILTINS
            .iter()
            .chain(BOUNDED_BUILTINS)
            .any(|(n, _)| *n == name)
        || matches!(name, "print" | "trace")
}

/// The first call that is not known to be pure, if any. A name that is a
/// builtin's is judged as that builtin even when a user function has the
/// same last segment (which one a call reaches is not worked out here).
pub(crate) fn first_impure_call(scan: &Scan) -> Option<&str> {
    scan.calls.iter().map(|c| c.name.as_str()).find(|name| {
        let pure = if is_builtin(name) {
            PURE_BUILTINS.contains(name)
        } else {
            let last = name.rsplit('.').next().unwrap_or_default();
            scan.functions.contains(last)
        };
        !pure
    })
}
