//! `yaml.unmarshal(s)` and `yaml.is_valid(s)` reading YAML as OPA does:
//! sigs.k8s.io/yaml over go-yaml v2, that is YAML 1.1 scalars, then JSON.
//!
//! - Unquoted `y Y yes Yes YES on On ON` are true, `n N no No NO off Off
//!   OFF` false (besides `true` / `false` in three spellings); quoted,
//!   tagged (`!!str yes`) or block scalars stay strings.
//! - Integers as Go's `strconv.ParseInt(s, 0, 64)` reads them once every
//!   `_` is removed: `017` is 15 (octal), `0X1F`, `0o17`, `0b101`,
//!   `1_000`; beyond 64 bits, or written as a float, a float.
//! - Floats that are whole become integers (JSON `1` for `1.0`, as Go
//!   writes them); `.nan` and `.inf` are errors (JSON has no such number),
//!   so the call is undefined and `yaml.is_valid` false.
//! - Timestamps stay strings; `<<` merges mappings (later keys win, and of
//!   a list of merged mappings the first); keys that are not strings
//!   become their text (`1`, `true` — so `on:` is the key `"true"` —,
//!   floats as Go prints a float32); a null key is an error.
//! - Only the first document of several is read.
//!
//! regorus reads YAML 1.2 (`yes` is a string). usher parses with the same
//! YAML parser (yaml_serde) and applies the YAML 1.1 rules to the plain
//! scalars it hands over as text; that a scalar was plain is told by where
//! its text lies in the document (not after a quote or a tag).

use std::collections::BTreeMap;
use std::fmt;

use regorus::Value;
use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::str_arg;

/// `yaml.unmarshal(s)`.
pub(super) fn yaml_unmarshal(args: &[Value]) -> Value {
    str_arg(args, 0)
        .and_then(unmarshal)
        .unwrap_or(Value::Undefined)
}

/// `yaml.is_valid(s)`: false for a non-string.
pub(super) fn yaml_is_valid(args: &[Value]) -> Value {
    Value::from(str_arg(args, 0).and_then(unmarshal).is_some())
}

fn unmarshal(text: &str) -> Option<Value> {
    let first = yaml_serde::Deserializer::from_str(text).next()?;
    (Node { input: text }).deserialize(first).ok()?.into_value()
}

/// What a node deserialises to: a value, a float (kept apart: as a key it
/// is printed as Go prints a float32), or the merge key `<<`.
enum Out {
    Value(Value),
    Float(f64),
    Merge,
}

impl Out {
    fn into_value(self) -> Option<Value> {
        match self {
            Out::Value(v) => Some(v),
            Out::Float(f) => float_value(f),
            Out::Merge => Some(Value::from("<<")),
        }
    }
}

/// A seed carrying the document, to tell plain scalars from others.
#[derive(Clone, Copy)]
struct Node<'a> {
    input: &'a str,
}

impl<'de> DeserializeSeed<'de> for Node<'_> {
    type Value = Out;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        d.deserialize_any(self)
    }
}

fn err<E: de::Error>(msg: &str) -> E {
    E::custom(msg)
}

/// A float node; `.nan` and `.inf` are errors (JSON has no such number).
fn float<E: de::Error>(f: f64) -> Result<Out, E> {
    if f.is_finite() {
        Ok(Out::Float(f))
    } else {
        Err(err("json: unsupported value"))
    }
}

/// A float as JSON would carry it to OPA: whole ones (below 1e21, where Go
/// writes digits) as integers.
fn float_value(f: f64) -> Option<Value> {
    if f.fract() == 0.0 && f.abs() < 1e21 {
        if f.abs() < 9.0e18 {
            return Some(Value::from(f as i64));
        }
        return Value::from_json_str(&format!("{f:.0}")).ok();
    }
    Some(Value::from(f))
}

impl<'de> Visitor<'de> for Node<'_> {
    type Value = Out;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML node")
    }

    fn visit_unit<E: de::Error>(self) -> Result<Out, E> {
        Ok(Out::Value(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Out, E> {
        Ok(Out::Value(Value::Null))
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Out, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_bool<E: de::Error>(self, b: bool) -> Result<Out, E> {
        Ok(Out::Value(Value::Bool(b)))
    }

    fn visit_i64<E: de::Error>(self, i: i64) -> Result<Out, E> {
        Ok(Out::Value(Value::from(i)))
    }

    fn visit_u64<E: de::Error>(self, u: u64) -> Result<Out, E> {
        Ok(Out::Value(Value::from(u)))
    }

    // Beyond 64 bits go-yaml reads a float.
    fn visit_i128<E: de::Error>(self, i: i128) -> Result<Out, E> {
        float(i as f64)
    }

    fn visit_u128<E: de::Error>(self, u: u128) -> Result<Out, E> {
        float(u as f64)
    }

    fn visit_f64<E: de::Error>(self, f: f64) -> Result<Out, E> {
        float(f)
    }

    fn visit_borrowed_str<E: de::Error>(self, s: &'de str) -> Result<Out, E> {
        if plain_untagged(self.input, s) {
            resolve_plain(s)
        } else {
            Ok(Out::Value(Value::from(s)))
        }
    }

    fn visit_str<E: de::Error>(self, s: &str) -> Result<Out, E> {
        // Not a single-line plain scalar (quoted with escapes, block, or
        // folded over lines): a string.
        Ok(Out::Value(Value::from(s)))
    }

    // A node with a tag of its own (`!foo bar`): go-yaml keeps the content.
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Out, A::Error> {
        use de::VariantAccess as _;
        let (_tag, variant): (de::IgnoredAny, _) = data.variant()?;
        variant.newtype_variant_seed(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Out, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item.into_value().ok_or_else(|| err("bad number"))?);
        }
        Ok(Out::Value(Value::from(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Out, A::Error> {
        let mut out: BTreeMap<Value, Value> = BTreeMap::new();
        while let Some(key) = map.next_key_seed(self)? {
            let value = map
                .next_value_seed(self)?
                .into_value()
                .ok_or_else(|| err("bad number"))?;
            match key {
                Out::Merge => merge(&mut out, &value)?,
                Out::Float(f) => {
                    out.insert(Value::from(float32_text(f)), value);
                }
                Out::Value(k) => {
                    out.insert(Value::from(key_text(&k)?), value);
                }
            }
        }
        Ok(Out::Value(Value::from(out)))
    }
}

/// go-yaml's merge: a mapping, or a list of mappings of which the earlier
/// win; merged keys replace those before them.
fn merge<E: de::Error>(out: &mut BTreeMap<Value, Value>, v: &Value) -> Result<(), E> {
    match v {
        Value::Object(o) => {
            for (k, val) in o.iter() {
                out.insert(k.clone(), val.clone());
            }
            Ok(())
        }
        Value::Array(items) => {
            for item in items.iter().rev() {
                let Value::Object(_) = item else {
                    return Err(err(
                        "map merge requires map or sequence of maps as the value",
                    ));
                };
                merge(out, item)?;
            }
            Ok(())
        }
        _ => Err(err(
            "map merge requires map or sequence of maps as the value",
        )),
    }
}

/// sigs.k8s.io/yaml's key conversion.
fn key_text<E: de::Error>(k: &Value) -> Result<String, E> {
    Ok(match k {
        Value::String(s) => s.to_string(),
        Value::Bool(b) => b.to_string(),
        // Integers only: floats come as Out::Float.
        Value::Number(n) => n.format_decimal(),
        _ => return Err(err("unsupported map key")),
    })
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 32)`.
fn float32_text(f: f64) -> String {
    let f = f as f32;
    let text = format!("{f:e}");
    let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = digits.trim_end_matches('0');
    let sign = if negative { "-" } else { "" };
    if digits.is_empty() {
        return format!("{sign}0");
    }
    // Go's shortest 'g': an exponent below -4 or from 6 on.
    if !(-4..6).contains(&exp) {
        let (first, rest) = digits.split_at(1);
        let point = if rest.is_empty() { "" } else { "." };
        let (esign, e) = if exp < 0 { ('-', -exp) } else { ('+', exp) };
        return format!("{sign}{first}{point}{rest}e{esign}{e:02}");
    }
    let dp = exp + 1;
    let n = digits.len() as i32;
    let s = if dp <= 0 {
        format!("0.{}{digits}", "0".repeat((-dp) as usize))
    } else if dp >= n {
        format!("{digits}{}", "0".repeat((dp - n) as usize))
    } else {
        let (a, b) = digits.split_at(dp as usize);
        format!("{a}.{b}")
    };
    format!("{sign}{s}")
}

/// Whether the text `s`, which lies inside `input`, was written as a plain
/// scalar without a tag: not right after a quote, and not after a `!tag`.
fn plain_untagged(input: &str, s: &str) -> bool {
    let base = input.as_ptr().addr();
    let at = s.as_ptr().addr();
    if at < base || at > base + input.len() {
        return false;
    }
    let before = &input.as_bytes()[..at - base];
    if matches!(before.last(), Some(b'\'' | b'"')) {
        return false;
    }
    // The node's properties (anchor, tag) precede it.
    let mut rest = before;
    for _ in 0..2 {
        let trimmed = rest.trim_ascii_end();
        let start = trimmed
            .iter()
            .rposition(|b| b.is_ascii_whitespace() || matches!(b, b'[' | b'{' | b','))
            .map_or(0, |i| i + 1);
        let token = &trimmed[start..];
        match token.first() {
            Some(b'!') => return false,
            Some(b'&') => rest = &trimmed[..start],
            _ => break,
        }
    }
    true
}

/// go-yaml v2's `resolve` for a plain scalar.
fn resolve_plain<E: de::Error>(s: &str) -> Result<Out, E> {
    let v = match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Value::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Value::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Value::Null,
        ".nan" | ".NaN" | ".NAN" | ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF"
        | "-.inf" | "-.Inf" | "-.INF" => return Err(err("json: unsupported value")),
        "<<" => return Ok(Out::Merge),
        _ => match s.as_bytes()[0] {
            b'.' => match s.parse::<f64>() {
                Ok(f) if f.is_finite() && yaml_float(s) => return float(f),
                _ => Value::from(s),
            },
            b'0'..=b'9' | b'+' | b'-' => {
                let plain: String = s.chars().filter(|&c| c != '_').collect();
                if let Some(i) = go_parse_int(&plain) {
                    Value::from(i)
                } else if let Some(u) = go_parse_uint(&plain) {
                    Value::from(u)
                } else if yaml_float(&plain) {
                    match plain.parse::<f64>() {
                        Ok(f) if f.is_finite() => return float(f),
                        _ => Value::from(s),
                    }
                } else {
                    Value::from(s)
                }
            }
            _ => Value::from(s),
        },
    };
    Ok(Out::Value(v))
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
fn yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'+' | b'-')));
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if b.get(i) == Some(&b'.') {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if b.get(i) == Some(&b'.') {
            i += 1;
            digits(&mut i);
        }
    }
    if matches!(b.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(b.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Go's `strconv.ParseUint(s, 0, 64)` without underscores: the base from
/// the prefix (`0x`, `0o`, `0b`, a leading `0` for octal).
fn go_parse_uint(s: &str) -> Option<u64> {
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r, 2)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    u64::from_str_radix(digits, radix).ok()
}

/// Go's `strconv.ParseInt(s, 0, 64)` without underscores.
fn go_parse_int(s: &str) -> Option<i64> {
    let (negative, unsigned) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let u = go_parse_uint(unsigned)?;
    if negative {
        0i64.checked_sub_unsigned(u)
            .or((u == 1 << 63).then_some(i64::MIN))
    } else {
        i64::try_from(u).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn y(s: &str) -> Value {
        yaml_unmarshal(&[Value::from(s)])
    }

    fn j(s: &str) -> Value {
        Value::from_json_str(s).unwrap()
    }

    #[test]
    fn yaml11_scalars_as_opa() {
        // The compat case yaml_yaml11_booleans.
        assert_eq!(
            y("enabled: yes\ndebug: off\nname: on-call\nquoted: 'yes'\n"),
            j(r#"{"debug": false, "enabled": true, "name": "on-call", "quoted": "yes"}"#)
        );
        // OPA 1.20.2 through the bindings (keys y and n are booleans too).
        let doc = "a: yes\nb: No\nc: ON\nd: y\ne: N\nf: off\ng: True\nh: ~\ni: \nj: 017\n\
                   k: 0o17\nl: 0x1F\nm: 1_000\nn: +12\no: .5\np: 1.\nq: 1e3\nr: 2001-12-14\n\
                   s: 0b101\nt: -0b101\nu: 1.0\nv: 12345678901234567890123\nw: \"yes\"\n\
                   x: !!str yes\ny: 0X1F\nz: 1:20";
        assert_eq!(
            y(doc),
            j(
                r#"{"a": true, "b": false, "c": true, "d": true, "e": false, "f": false,
                 "false": 12, "g": true, "h": null, "i": null, "j": 15, "k": 15, "l": 31,
                 "m": 1000, "o": 0.5, "p": 1, "q": 1000, "r": "2001-12-14", "s": 5, "t": -5,
                 "true": 31, "u": 1, "v": 1.2345678901234568e+22, "w": "yes", "x": "yes",
                 "z": "1:20"}"#
            )
        );
        assert_eq!(
            y("yes: 1\n1: a\n1.5: b\non: c\n0.1: d\n123456789.0: e"),
            j(r#"{"0.1": "d", "1": "a", "1.2345679e+08": "e", "1.5": "b", "true": "c"}"#)
        );
        assert_eq!(
            y("- 1\n- [a, yes, 'no']\n- {c: off}\n- |\n  block yes\n- plain\n  multi\n- &x on\n- *x"),
            j(r#"[1, ["a", true, "no"], {"c": false}, "block yes\n", "plain multi", true, true]"#)
        );
        assert_eq!(y("08"), j("8"));
        assert_eq!(y("-9223372036854775808"), Value::from(i64::MIN));
        assert_eq!(y("18446744073709551615"), Value::from(u64::MAX));
    }

    #[test]
    fn merges_documents_and_errors_as_opa() {
        assert_eq!(
            y("base: &b {a: 1, b: 2}\nx:\n  a: 0\n  <<: *b\n  c: 3\ny:\n  <<: [{a: 1}, {a: 2, z: 9}]\n  \"<<\": q"),
            j(r#"{"base": {"a": 1, "b": 2}, "true": {"<<": "q", "a": 1, "z": 9}, "x": {"a": 1, "b": 2, "c": 3}}"#)
        );
        assert_eq!(y("a: 1\n---\nb: 2"), j(r#"{"a": 1}"#));
        assert_eq!(y("a: 1\na: 2"), j(r#"{"a": 2}"#));
        assert_eq!(y(""), Value::Null);
        assert_eq!(y("!foo bar"), Value::from("bar"));
        assert_eq!(
            y("a: !foo yes\nb: !foo {c: on}"),
            j(r#"{"a": "yes", "b": {"c": true}}"#)
        );
        assert_eq!(y("k: !!int \"12\""), j(r#"{"k": 12}"#));
        for bad in [
            ".nan",
            "a: .inf",
            "~: 1",
            "a: [1",
            "<<: 1",
            "a: {b: 1}\nc:\n  <<: [1]",
        ] {
            assert_eq!(y(bad), Value::Undefined, "{bad:?}");
            assert_eq!(
                yaml_is_valid(&[Value::from(bad)]),
                Value::from(false),
                "{bad:?}"
            );
        }
        assert_eq!(yaml_is_valid(&[Value::from("a: yes")]), Value::from(true));
        assert_eq!(yaml_is_valid(&[Value::from(1)]), Value::from(false));
        assert_eq!(yaml_unmarshal(&[Value::Null]), Value::Undefined);
        // A billion laughs is refused by the parser's repetition limit.
        let mut doc = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let p = i - 1;
            doc.push_str(&format!(
                "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
            ));
        }
        assert_eq!(y(&doc), Value::Undefined);
    }

    #[test]
    fn go_integer_syntax() {
        assert_eq!(go_parse_int("017"), Some(15));
        assert_eq!(go_parse_int("-0x10"), Some(-16));
        assert_eq!(go_parse_int("0"), Some(0));
        assert_eq!(go_parse_int("08"), None);
        assert_eq!(go_parse_int("0x"), None);
        assert_eq!(go_parse_int("-9223372036854775808"), Some(i64::MIN));
        assert_eq!(go_parse_int("9223372036854775808"), None);
        assert_eq!(go_parse_uint("9223372036854775808"), Some(1 << 63));
        assert!(yaml_float("1.") && yaml_float(".5") && yaml_float("-1e+3") && yaml_float("08"));
        assert!(!yaml_float("1e") && !yaml_float(".") && !yaml_float("e5") && !yaml_float("1.2.3"));
        assert_eq!(float32_text(1.5), "1.5");
        assert_eq!(float32_text(0.1), "0.1");
        assert_eq!(float32_text(123_456_789.0), "1.2345679e+08");
        assert_eq!(float32_text(1e-5), "1e-05");
        assert_eq!(float32_text(0.0001), "0.0001");
        assert_eq!(float32_text(100.0), "100");
    }
}
