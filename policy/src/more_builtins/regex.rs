//! `regex.template_match(template, value, delimiter_start, delimiter_end)`
//! as OPA has it (gorilla/mux's template compiler): the template becomes
//! one regular expression, `^literal(pattern)literal(pattern)...$`, the
//! literals quoted, each delimited pattern a group; delimiters nest, so
//! `{[0-9]{2}}` is one pattern. The delimiters must be one byte each; an
//! unbalanced template, a pattern that does not compile on its own, or a
//! delimiter that is not one byte make the call undefined (OPA's errors).
//!
//! regorus matched pattern by pattern, without backtracking across them,
//! and sliced the value by the template's byte offsets: a value shorter
//! than the template's leading literal panicked.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::{Regex, RegexBuilder};
use regorus::Value;

use super::str_arg;

/// As regorus bounds `regex.match` patterns: the compiled size.
const REGEX_SIZE_LIMIT: usize = 100 * 1024;

/// Compiled templates kept (the cache is emptied when full).
const CACHE_ENTRIES: usize = 64;

type Cache = HashMap<(String, u8, u8), Option<Regex>>;

fn cache() -> &'static Mutex<Cache> {
    static CACHE: OnceLock<Mutex<Cache>> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

fn build(pattern: &str) -> Option<Regex> {
    RegexBuilder::new(pattern)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .ok()
}

/// gorilla/mux's `delimiterIndices`: the start and end (exclusive) of each
/// top-level delimited part; `None` when unbalanced.
fn delimiter_indices(s: &[u8], start: u8, end: u8) -> Option<Vec<(usize, usize)>> {
    let mut level = 0usize;
    let mut idx = 0usize;
    let mut out = Vec::new();
    for (i, &c) in s.iter().enumerate() {
        if c == start {
            level += 1;
            if level == 1 {
                idx = i;
            }
        } else if c == end {
            level = level.checked_sub(1)?;
            if level == 0 {
                out.push((idx, i + 1));
            }
        }
    }
    (level == 0).then_some(out)
}

/// OPA's `compileRegexTemplate`.
fn compile(template: &str, start: u8, end: u8) -> Option<Regex> {
    let parts = delimiter_indices(template.as_bytes(), start, end)?;
    let mut pattern = String::from("^");
    let mut last = 0;
    for (open, close) in parts {
        // Delimiters are ASCII, so these are character boundaries.
        let raw = template.get(last..open)?;
        let inner = template.get(open + 1..close - 1)?;
        build(&format!("^{inner}$"))?;
        pattern.push_str(&regex::escape(raw));
        pattern.push('(');
        pattern.push_str(inner);
        pattern.push(')');
        last = close;
    }
    pattern.push_str(&regex::escape(template.get(last..)?));
    pattern.push('$');
    build(&pattern)
}

fn one_byte(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [b] => Some(*b),
        _ => None,
    }
}

/// `regex.template_match(template, value, delimiter_start, delimiter_end)`.
pub(super) fn regex_template_match(args: &[Value]) -> Value {
    let (Some(template), Some(value), Some(start), Some(end)) = (
        str_arg(args, 0),
        str_arg(args, 1),
        str_arg(args, 2).and_then(one_byte),
        str_arg(args, 3).and_then(one_byte),
    ) else {
        return Value::Undefined;
    };
    let key = (template.to_string(), start, end);
    let cached = cache().lock().ok().and_then(|c| c.get(&key).cloned());
    let re = match cached {
        Some(re) => re,
        None => {
            let re = compile(template, start, end);
            if let Ok(mut c) = cache().lock() {
                if c.len() >= CACHE_ENTRIES {
                    c.clear();
                }
                c.insert(key, re.clone());
            }
            re
        }
    };
    match re {
        Some(re) => Value::from(re.is_match(value)),
        None => Value::Undefined,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tm(t: &str, v: &str, s: &str, e: &str) -> Value {
        regex_template_match(&[
            Value::from(t),
            Value::from(v),
            Value::from(s),
            Value::from(e),
        ])
    }

    #[test]
    fn matches_as_opa() {
        // The compat cases regex_template_match and
        // regex_template_match_short_input, and OPA's own test cases.
        let t = "/api/{[a-z0-9]+}/orders/{[0-9]+}";
        assert_eq!(tm(t, "/api/v1/orders/42", "{", "}"), Value::from(true));
        assert_eq!(tm(t, "/api/v1/orders/x", "{", "}"), Value::from(false));
        assert_eq!(
            tm("/api/{[a-z0-9]+}/orders", "/", "{", "}"),
            Value::from(false)
        );
        assert_eq!(
            tm("/api/{[a-z0-9]+}/orders", "", "{", "}"),
            Value::from(false)
        );
        assert_eq!(
            tm("urn:foo:{.*}", "urn:foo:bar:baz", "{", "}"),
            Value::from(true)
        );
        assert_eq!(
            tm("urn:foo:{.*}", "urn:foo.bar.com:bar:baz", "{", "}"),
            Value::from(false)
        );
        assert_eq!(
            tm("urn:foo:<.*>", "urn:foo:bar:baz", "<", ">"),
            Value::from(true)
        );
        assert_eq!(
            tm("urn:foo.bar.com:{.*}", "urn:foo.bar.com:bar:baz", "{", "}"),
            Value::from(true)
        );
        assert_eq!(
            tm("urn:foo.bar.com:{.*}", "urn:foo.com:bar:baz", "{", "}"),
            Value::from(false)
        );
        assert_eq!(
            tm("urn:foo.bar.com:{.*}", "foobar", "{", "}"),
            Value::from(false)
        );
        assert_eq!(
            tm("urn:foo.bar.com:{.{1,2}}", "urn:foo.bar.com:aa", "{", "}"),
            Value::from(true)
        );
        // Backtracking across patterns, which regorus did not do.
        assert_eq!(tm("{.*}-{[0-9]+}", "a-b-12", "{", "}"), Value::from(true));
        // No pattern at all: the whole string literally.
        assert_eq!(tm("a.b", "a.b", "{", "}"), Value::from(true));
        assert_eq!(tm("a.b", "axb", "{", "}"), Value::from(false));
        // Multi-byte text around the patterns.
        assert_eq!(tm("é/{[a-z]+}/ü", "é/abc/ü", "{", "}"), Value::from(true));
    }

    #[test]
    fn errors_are_undefined() {
        assert_eq!(tm("a{b", "ab", "{", "}"), Value::Undefined);
        assert_eq!(tm("a}b{", "ab", "{", "}"), Value::Undefined);
        assert_eq!(tm("a{(}", "a(", "{", "}"), Value::Undefined);
        assert_eq!(tm("a{x}", "ax", "{{", "}"), Value::Undefined);
        assert_eq!(tm("a{x}", "ax", "", "}"), Value::Undefined);
        assert_eq!(tm("a{x}", "ax", "é", "}"), Value::Undefined);
        // The same byte for both: never balanced.
        assert_eq!(tm("a|x|", "ax", "|", "|"), Value::Undefined);
        assert_eq!(
            regex_template_match(&[
                Value::from(1),
                Value::from("a"),
                Value::from("{"),
                Value::from("}")
            ]),
            Value::Undefined
        );
        // A pattern too big to compile.
        assert_eq!(tm("{(a{1000}){1000}}", "a", "{", "}"), Value::Undefined);
    }
}
