//! `semver.is_valid(v)` and `semver.compare(a, b)` with OPA's parser
//! (`internal/semver`), which is more lenient than the SemVer 2.0 grammar
//! regorus' `semver` crate follows:
//!
//! - one leading `v` is dropped (`v1.2.3` is valid; `V1.2.3` is not);
//! - numbers may have leading zeros (`01.2.3`);
//! - the build metadata is cut at the first `+`, then the pre-release at
//!   the first `-`, and either may be empty (`1.2.3-`, `1.2.3+`);
//!   pre-release and metadata identifiers are `[0-9A-Za-z-]+` separated by
//!   dots, with leading zeros allowed.
//!
//! `compare` orders as OPA does (metadata ignored, numeric identifiers
//! before alphanumeric ones); an invalid version makes it undefined (OPA's
//! error), `is_valid` of a non-string is false.

use std::cmp::Ordering;

use regorus::Value;

use super::str_arg;

#[derive(Debug, PartialEq, Eq)]
struct Version<'a> {
    major: i64,
    minor: i64,
    patch: i64,
    pre_release: &'a str,
}

/// Go's `strings.Cut` on a byte, without the found flag.
fn cut(s: &str, sep: char) -> (&str, &str) {
    s.split_once(sep).unwrap_or((s, ""))
}

/// `^[0-9A-Za-z-]+(\.[0-9A-Za-z-]+)*$`
fn valid_identifiers(s: &str) -> bool {
    s.split('.')
        .all(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}

/// Go's `strconv.ParseInt(s, 10, 64)` after the cuts (no sign left).
fn parse_int(s: &str) -> Option<i64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn parse(version: &str) -> Option<Version<'_>> {
    let version = version.strip_prefix('v').unwrap_or(version);
    let (version, metadata) = cut(version, '+');
    if !metadata.is_empty() && !valid_identifiers(metadata) {
        return None;
    }
    let (version, pre_release) = cut(version, '-');
    if !pre_release.is_empty() && !valid_identifiers(pre_release) {
        return None;
    }
    if version.matches('.').count() != 2 {
        return None;
    }
    let (major, rest) = cut(version, '.');
    let (minor, patch) = cut(rest, '.');
    Some(Version {
        major: parse_int(major)?,
        minor: parse_int(minor)?,
        patch: parse_int(patch)?,
        pre_release,
    })
}

fn all_decimals(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())
}

/// OPA's `Version.Compare`.
fn compare(a: &Version, b: &Version) -> Ordering {
    let numbers = (a.major, a.minor, a.patch).cmp(&(b.major, b.minor, b.patch));
    if numbers != Ordering::Equal {
        return numbers;
    }
    if a.pre_release == b.pre_release {
        return Ordering::Equal;
    }
    if a.pre_release.is_empty() {
        return Ordering::Greater;
    }
    if b.pre_release.is_empty() {
        return Ordering::Less;
    }
    let (mut x, mut after_x) = cut(a.pre_release, '.');
    let (mut y, mut after_y) = cut(b.pre_release, '.');
    loop {
        match (x.is_empty(), y.is_empty()) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            (true, true) => return Ordering::Equal,
            _ => {}
        }
        let (x_int, y_int) = (all_decimals(x), all_decimals(y));
        let order = match (x_int, y_int) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            // Go's strconv.Atoi: the largest int64 when out of range.
            (true, true) => {
                let n = |s: &str| s.parse::<i64>().unwrap_or(i64::MAX);
                n(x).cmp(&n(y))
            }
            (false, false) => x.as_bytes().cmp(y.as_bytes()),
        };
        if order != Ordering::Equal {
            return order;
        }
        match (after_x.is_empty(), after_y.is_empty()) {
            (false, true) => return Ordering::Greater,
            (true, false) => return Ordering::Less,
            _ => {}
        }
        (x, after_x) = cut(after_x, '.');
        (y, after_y) = cut(after_y, '.');
    }
}

/// `semver.is_valid(v)`.
pub(super) fn semver_is_valid(args: &[Value]) -> Value {
    Value::from(str_arg(args, 0).and_then(parse).is_some())
}

/// `semver.compare(a, b)`: -1, 0 or 1.
pub(super) fn semver_compare(args: &[Value]) -> Value {
    let (Some(a), Some(b)) = (
        str_arg(args, 0).and_then(parse),
        str_arg(args, 1).and_then(parse),
    ) else {
        return Value::Undefined;
    };
    Value::from(match compare(&a, &b) {
        Ordering::Less => -1i64,
        Ordering::Equal => 0,
        Ordering::Greater => 1,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn valid(s: &str) -> bool {
        semver_is_valid(&[Value::from(s)]) == Value::from(true)
    }

    fn cmp(a: &str, b: &str) -> Value {
        semver_compare(&[Value::from(a), Value::from(b)])
    }

    #[test]
    fn validity_as_opa() {
        // OPA 1.20.2 (semver.is_valid through the bindings).
        for (s, want) in [
            ("v1.2.3", true),
            ("V1.2.3", false),
            ("1.2.3", true),
            ("1.+2.3", false),
            ("1.2.+3", false),
            ("+1.2.3", false),
            ("01.2.3", true),
            ("1.2.3-", true),
            ("1.2.3+", true),
            ("1.2.3-+", true),
            ("1.2.3-a..b", false),
            ("1.2.3-01", true),
            ("v1.2.3-beta+b.1", true),
            ("1.2", false),
            ("1.2.3.4", false),
            ("", false),
            ("v", false),
            ("1.2.3 ", false),
            ("1.2.-3", false),
            ("9223372036854775808.0.0", false),
            ("1.2.3-α", false),
            ("1.2.3+build-1", true),
            ("1.2.3-rc+", true),
            ("1.2.3-+b", true),
            ("1.2.3+a+b", false),
            ("1.2.3-a-b", true),
            ("vv1.2.3", false),
        ] {
            assert_eq!(valid(s), want, "{s:?}");
        }
        assert_eq!(semver_is_valid(&[Value::from(1)]), Value::from(false));
        assert_eq!(semver_is_valid(&[]), Value::from(false));
    }

    #[test]
    fn compare_as_opa() {
        // OPA 1.20.2 (semver.compare through the bindings).
        for (a, b, want) in [
            ("v1.2.3", "1.2.4", -1),
            ("1.2.3", "1.2.3", 0),
            ("1.10.0", "1.9.9", 1),
            ("1.0.0-rc.1", "1.0.0", -1),
            ("1.0.0-alpha", "1.0.0-alpha.1", -1),
            ("1.0.0-alpha.1", "1.0.0-alpha.beta", -1),
            ("1.0.0-alpha.beta", "1.0.0-beta", -1),
            ("1.0.0-beta.2", "1.0.0-beta.11", -1),
            ("1.0.0-rc.1", "1.0.0-rc.1+build", 0),
            ("1.0.0+a", "1.0.0+b", 0),
            ("01.2.3", "1.2.3", 0),
            ("1.2.3-", "1.2.3", 0),
            ("1.0.0-B", "1.0.0-a", -1),
            ("1.0.0-99999999999999999999", "1.0.0-1", 1),
        ] {
            assert_eq!(cmp(a, b), Value::from(want), "{a} vs {b}");
            assert_eq!(cmp(b, a), Value::from(-want), "{b} vs {a}");
        }
        assert_eq!(cmp("1.2", "1.2.3"), Value::Undefined);
        assert_eq!(cmp("1.2.3", "x"), Value::Undefined);
        assert_eq!(
            semver_compare(&[Value::from(1), Value::from("1.2.3")]),
            Value::Undefined
        );
    }
}
