//! `json.marshal` and `json.marshal_with_options` writing what OPA writes:
//! OPA turns the value into Go data (`ast.JSON`) and serialises it with Go's
//! `encoding/json`, so
//!
//! - `<`, `>` and `&` are written `\u003c`, `\u003e`, `\u0026`, U+2028 and
//!   U+2029 `\u2028`, `\u2029`; control characters `\b \f \n \r \t` or
//!   `\u00XX`; everything else as it is (UTF-8);
//! - object keys are sorted (as strings); a key that is not a string is
//!   written as its own JSON text (`{1: "a"}` gives `{"1":"a"}`);
//! - sets are arrays, in OPA's order of values;
//! - `json.marshal_with_options` indents as Go's `json.MarshalIndent`, and
//!   puts the prefix before the first line too.
//!
//! Numbers: OPA writes a number with the text it was written with (in the
//! policy, or in the input JSON) and computes with decimals. regorus keeps
//! an integer or a binary float, not the text, so usher writes an integer
//! with its digits and a float as the text that most often matches: a
//! whole float (the literal `100.0`, or `1.0` in the input) with `.0`
//! (`100.0`; regorus turns whole *results* of arithmetic into integers, as
//! OPA writes them), any other float in its shortest form as Go writes
//! floats (`1.5`, `0.000001`, `1e-7`, `1e+21`). What cannot match: a
//! literal written with an exponent (`1e21`, which regorus reads as an
//! integer, OPA keeps `"1e21"`), trailing zeros (`1.50`), and decimal
//! arithmetic (`1 / 3`; see the compat case `numbers_decimal_precision`).

use std::cmp::Ordering;
use std::fmt::Write as _;

use regorus::Value;

/// `json.marshal(x)`: compact JSON.
pub(super) fn json_marshal(args: &[Value]) -> Value {
    match args.first().and_then(to_json) {
        Some(s) => Value::from(s),
        None => Value::Undefined,
    }
}

/// `json.marshal_with_options(x, {"pretty": bool, "indent": str, "prefix": str})`:
/// pretty when `pretty` is true, or when absent and `indent` or `prefix` is
/// given (OPA's rules); an unknown option or one of the wrong type makes the
/// call undefined (an error in OPA).
pub(super) fn json_marshal_with_options(args: &[Value]) -> Value {
    let (Some(x), Some(Value::Object(opts))) = (args.first(), args.get(1)) else {
        return Value::Undefined;
    };
    let (mut indent, mut prefix) = ("\t".to_string(), String::new());
    let (mut implicit, mut explicit) = (false, None);
    for (k, v) in opts.iter() {
        match (k, v) {
            (Value::String(k), Value::String(s)) if k.as_ref() == "prefix" => {
                prefix = s.to_string();
                implicit = true;
            }
            (Value::String(k), Value::String(s)) if k.as_ref() == "indent" => {
                indent = s.to_string();
                implicit = true;
            }
            (Value::String(k), Value::Bool(b)) if k.as_ref() == "pretty" => explicit = Some(*b),
            _ => return Value::Undefined,
        }
    }
    if !explicit.unwrap_or(implicit) {
        return json_marshal(&args[..1]);
    }
    let mut out = prefix.clone();
    write_value(&mut out, x, Some((&prefix, &indent)), 0);
    Value::from(out)
}

/// `v` as compact JSON the way OPA writes it (`None` for undefined).
pub(crate) fn to_json(v: &Value) -> Option<String> {
    if contains_undefined(v) {
        return None;
    }
    let mut out = String::new();
    write_value(&mut out, v, None, 0);
    Some(out)
}

fn contains_undefined(v: &Value) -> bool {
    match v {
        Value::Undefined => true,
        Value::Array(a) => a.iter().any(contains_undefined),
        Value::Set(s) => s.iter().any(contains_undefined),
        Value::Object(o) => o
            .iter()
            .any(|(k, v)| contains_undefined(k) || contains_undefined(v)),
        _ => false,
    }
}

fn newline(out: &mut String, pretty: Option<(&str, &str)>, depth: usize) {
    if let Some((prefix, indent)) = pretty {
        out.push('\n');
        out.push_str(prefix);
        for _ in 0..depth {
            out.push_str(indent);
        }
    }
}

fn write_value(out: &mut String, v: &Value, pretty: Option<(&str, &str)>, depth: usize) {
    match v {
        Value::Null | Value::Undefined => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(_) => write_number(out, v),
        Value::String(s) => write_string(out, s),
        Value::Array(_) | Value::Set(_) => {
            let items: Vec<&Value> = match v {
                Value::Array(a) => a.iter().collect(),
                _ => sorted_set(v),
            };
            if items.is_empty() {
                out.push_str("[]");
                return;
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, pretty, depth + 1);
                write_value(out, item, pretty, depth + 1);
            }
            newline(out, pretty, depth);
            out.push(']');
        }
        Value::Object(o) => {
            // Keys as Go map keys: strings, others as their JSON text; sorted
            // as strings, the last of equal keys (in OPA's order) winning.
            let mut entries: Vec<(&Value, &Value)> = o.iter().collect();
            entries.sort_by(|a, b| opa_cmp(a.0, b.0));
            let mut keyed: Vec<(String, &Value)> = Vec::with_capacity(entries.len());
            for (k, val) in entries {
                let key = match k {
                    Value::String(s) => s.to_string(),
                    other => {
                        let mut t = String::new();
                        write_value(&mut t, other, None, 0);
                        t
                    }
                };
                match keyed.iter_mut().find(|(existing, _)| *existing == key) {
                    Some(slot) => slot.1 = val,
                    None => keyed.push((key, val)),
                }
            }
            keyed.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            if keyed.is_empty() {
                out.push_str("{}");
                return;
            }
            out.push('{');
            for (i, (k, val)) in keyed.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                newline(out, pretty, depth + 1);
                write_string(out, k);
                out.push(':');
                if pretty.is_some() {
                    out.push(' ');
                }
                write_value(out, val, pretty, depth + 1);
            }
            newline(out, pretty, depth);
            out.push('}');
        }
    }
}

/// A string as Go's `encoding/json` writes it (HTML-safe).
pub(super) fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A number as seen by Go's `fmt` and `encoding/json` in OPA.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Num {
    /// Fits Go's `int64`.
    Int(i64),
    /// An integer beyond `int64` (OPA: `*big.Int`), as decimal digits with
    /// an optional `-`.
    Big(String),
    /// A number written with a fraction or exponent (OPA: `float64`).
    Float(f64),
}

/// The kind of number `v` holds (`None` when it is not a number).
pub(super) fn classify(v: &Value) -> Option<Num> {
    let Value::Number(n) = v else { return None };
    // regorus does not say whether a number is a float; a float is printed
    // with a decimal point (or as inf/NaN) at one decimal, an integer with
    // digits only.
    let probe = n.format_decimal_with_width(1);
    if probe.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
        return Some(match n.as_i64() {
            Some(i) => Num::Int(i),
            None => Num::Big(n.format_decimal()),
        });
    }
    let f = n
        .as_f64()
        .or_else(|| n.format_decimal().parse::<f64>().ok())?;
    Some(Num::Float(f))
}

/// A number's text (see the module doc): digits for an integer; for a
/// float `x.0` when whole and below 1e21, else Go's `encoding/json` form.
pub(super) fn write_number(out: &mut String, v: &Value) {
    match classify(v) {
        Some(Num::Int(i)) => {
            let _ = write!(out, "{i}");
        }
        Some(Num::Big(digits)) => out.push_str(&digits),
        Some(Num::Float(f)) => write_float(out, f),
        None => out.push_str("null"),
    }
}

fn write_float(out: &mut String, f: f64) {
    if !f.is_finite() {
        // Not a Rego number; never produced by regorus.
        out.push_str("null");
        return;
    }
    let abs = f.abs();
    if f.fract() == 0.0 && abs < 1e21 {
        let _ = write!(out, "{f:.1}");
    } else if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        // Go: strconv 'e' format, shortest, exponent "e+21" / "e-7".
        let text = format!("{f:e}");
        let (mantissa, exp) = text.split_once('e').unwrap_or((&text, "0"));
        out.push_str(mantissa);
        out.push('e');
        match exp.strip_prefix('-') {
            Some(e) => {
                out.push('-');
                out.push_str(e);
            }
            None => {
                out.push('+');
                if exp.len() < 2 {
                    out.push('0');
                }
                out.push_str(exp);
            }
        }
    } else {
        let _ = write!(out, "{f}");
    }
}

/// OPA's order of values (`ast.Compare`): null < booleans < numbers <
/// strings < arrays < objects < sets; regorus orders sets before objects.
pub(super) fn opa_cmp(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) => 4,
            Value::Object(_) => 5,
            Value::Set(_) => 6,
            Value::Undefined => 7,
        }
    }
    fn seq<'a>(a: impl Iterator<Item = &'a Value>, b: impl Iterator<Item = &'a Value>) -> Ordering {
        let (a, b): (Vec<&Value>, Vec<&Value>) = (a.collect(), b.collect());
        for (x, y) in a.iter().zip(&b) {
            match opa_cmp(x, y) {
                Ordering::Equal => {}
                other => return other,
            }
        }
        a.len().cmp(&b.len())
    }
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => seq(x.iter(), y.iter()),
        (Value::Set(_), Value::Set(_)) => seq(sorted_set(a).into_iter(), sorted_set(b).into_iter()),
        (Value::Object(x), Value::Object(y)) => {
            let mut xs: Vec<(&Value, &Value)> = x.iter().collect();
            let mut ys: Vec<(&Value, &Value)> = y.iter().collect();
            xs.sort_by(|p, q| opa_cmp(p.0, q.0));
            ys.sort_by(|p, q| opa_cmp(p.0, q.0));
            for ((kx, vx), (ky, vy)) in xs.iter().zip(&ys) {
                match opa_cmp(kx, ky).then_with(|| opa_cmp(vx, vy)) {
                    Ordering::Equal => {}
                    other => return other,
                }
            }
            xs.len().cmp(&ys.len())
        }
        _ if rank(a) == rank(b) => a.cmp(b),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A set's elements in OPA's order.
pub(super) fn sorted_set(v: &Value) -> Vec<&Value> {
    let Value::Set(s) = v else {
        return Vec::new();
    };
    let mut items: Vec<&Value> = s.iter().collect();
    items.sort_by(|a, b| opa_cmp(a, b));
    items
}

#[cfg(test)]
mod tests {
    use super::*;

    fn j(s: &str) -> Value {
        Value::from_json_str(s).unwrap()
    }

    fn marshal(v: &Value) -> String {
        match json_marshal(std::slice::from_ref(v)) {
            Value::String(s) => s.to_string(),
            other => panic!("{other:?}"),
        }
    }

    fn rego(expr: &str) -> Value {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("t.rego".into(), format!("package t\nx := {expr}\n"))
            .unwrap();
        engine.eval_rule("data.t.x".into()).unwrap()
    }

    #[test]
    fn numbers_as_opa_writes_them() {
        // The compat case json_marshal_numbers (OPA's recorded answers), but
        // 1e21, which regorus reads as the integer 10^21.
        assert_eq!(
            marshal(&rego("[1.5, 0.000001, 100.0]")),
            "[1.5,0.000001,100.0]"
        );
        assert_eq!(
            marshal(&rego("[0, -1, 12345678901234]")),
            "[0,-1,12345678901234]"
        );
        assert_eq!(
            marshal(&rego(r#"{"n": 1.0, "s": {"b", "a"}, "u": "é<>&"}"#)),
            r#"{"n":1.0,"s":["a","b"],"u":"é\u003c\u003e\u0026"}"#
        );
        // OPA (recorded with the bindings): whole results of arithmetic are
        // integers, 1e-7 and 5e-324 keep their exponent, -0.0 its sign.
        assert_eq!(
            marshal(&rego(
                "[2.5 * 2, 10 / 2, 1.0 * 1, 3 / 2, 1e-7, 5e-324, -0.0]"
            )),
            "[5,5,1,1.5,1e-7,5e-324,-0.0]"
        );
        // Big integers keep their digits.
        assert_eq!(
            marshal(&rego("123456789012345678901234567890")),
            "123456789012345678901234567890"
        );
        // Floats from JSON (input documents).
        assert_eq!(
            marshal(&j("[1e21, 1.5e300, 0.1, 1e-6]")),
            "[1e+21,1.5e+300,0.1,0.000001]"
        );
    }

    #[test]
    fn strings_are_html_safe_like_go() {
        // OPA: "\"\\b\\f\\n\\r\\t\\u0001\u{7f}\\u2028\\u2029\\u003c\\u003e\\u0026\\\"\\\\é\""
        let s = Value::from("\u{8}\u{c}\n\r\t\u{1}\u{7f}\u{2028}\u{2029}<>&\"\\é");
        assert_eq!(
            marshal(&s),
            "\"\\b\\f\\n\\r\\t\\u0001\u{7f}\\u2028\\u2029\\u003c\\u003e\\u0026\\\"\\\\é\""
        );
    }

    #[test]
    fn keys_and_sets_in_opa_order() {
        // OPA: {"1":"a","1.5":7,"[1,2]":5,"b":2,"null":4,"true":3,"{\"k\":1}":6}
        assert_eq!(
            marshal(&rego(
                r#"{1: "a", "b": 2, true: 3, null: 4, [1,2]: 5, {"k": 1}: 6, 1.5: 7}"#
            )),
            r#"{"1":"a","1.5":7,"[1,2]":5,"b":2,"null":4,"true":3,"{\"k\":1}":6}"#
        );
        // OPA: [null,true,1,"a","b",[1],{"x":1}] (objects before sets).
        assert_eq!(
            marshal(&rego(r#"{"a", "b", 1, true, null, [1], {"x": 1}, {2}}"#)),
            r#"[null,true,1,"a","b",[1],{"x":1},[2]]"#
        );
        assert_eq!(marshal(&rego("[[], {}, set()]")), "[[],{},[]]");
    }

    #[test]
    fn with_options_indents_like_go() {
        let call = |v: &str, opts: &str| json_marshal_with_options(&[rego(v), rego(opts)]);
        // OPA: "{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": 1\n}"
        assert_eq!(
            call(
                r#"{"b": 1, "a": [1, 2]}"#,
                r#"{"indent": "  ", "pretty": true}"#
            ),
            Value::from("{\n  \"a\": [\n    1,\n    2\n  ],\n  \"b\": 1\n}")
        );
        // Prefix on every line (the first too), tab indent by default.
        assert_eq!(
            call(r#"{"a": [], "b": {}}"#, r#"{"prefix": "> "}"#),
            Value::from("> {\n> \t\"a\": [],\n> \t\"b\": {}\n> }")
        );
        // pretty: false wins over indent; {} is compact.
        assert_eq!(
            call(r#"{"a": 1}"#, r#"{"indent": "  ", "pretty": false}"#),
            Value::from(r#"{"a":1}"#)
        );
        assert_eq!(call(r#"{"a": 1}"#, "{}"), Value::from(r#"{"a":1}"#));
        // Unknown options, wrong types: undefined.
        assert_eq!(call("1", r#"{"colour": true}"#), Value::Undefined);
        assert_eq!(call("1", r#"{"pretty": "yes"}"#), Value::Undefined);
        assert_eq!(call("1", "[1]"), Value::Undefined);
    }

    #[test]
    fn hostile_inputs() {
        assert_eq!(json_marshal(&[]), Value::Undefined);
        assert_eq!(json_marshal(&[Value::Undefined]), Value::Undefined);
        assert_eq!(json_marshal_with_options(&[Value::Null]), Value::Undefined);
    }
}
