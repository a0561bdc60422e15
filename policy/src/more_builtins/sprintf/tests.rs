use super::*;

fn j(s: &str) -> Value {
    Value::from_json_str(s).unwrap()
}

fn rego(expr: &str) -> Value {
    let mut engine = regorus::Engine::new();
    engine
        .add_policy("t.rego".into(), format!("package t\nx := {expr}\n"))
        .unwrap();
    engine.eval_rule("data.t.x".into()).unwrap()
}

/// `sprintf(format, values)` with the values written in Rego.
fn sp(format: &str, values: &str) -> Value {
    sprintf(&[Value::from(format), rego(values)])
}

fn s(x: &str) -> Value {
    Value::from(x)
}

#[test]
fn compat_case_strings_sprintf_width() {
    // OPA's recorded answers.
    assert_eq!(sp("[%-6s]", r#"["ab"]"#), s("[ab    ]"));
    assert_eq!(sp("[%6s]", r#"["ab"]"#), s("[    ab]"));
    assert_eq!(sp("[%4d]", "[7]"), s("[   7]"));
    assert_eq!(sp("[%8.3f]", "[3.14159]"), s("[   3.142]"));
    assert_eq!(sp("%-8s %5d", r#"["orders", 12]"#), s("orders      12"));
}

#[test]
fn compat_case_strings_sprintf_verbs() {
    // The compat case strings_sprintf (regorus gave these already).
    assert_eq!(
        sp("%s has %d items", r#"["cart", 3]"#),
        s("cart has 3 items")
    );
    assert_eq!(sp("%v", r#"[["a", 1, true]]"#), s(r#"["a", 1, true]"#));
    assert_eq!(
        sp("%v", r#"[{"b": 2, "a": "x"}]"#),
        s(r#"{"a": "x", "b": 2}"#)
    );
    assert_eq!(sp("%v", "[{3, 1, 2}]"), s("{1, 2, 3}"));
    assert_eq!(sp("%v", "[null]"), s("null"));
    assert_eq!(sp("[%v]", r#"["str"]"#), s("[str]"));
    assert_eq!(sp("%q", r#"["quo\"ted"]"#), s(r#""quo\"ted""#));
    assert_eq!(sp("%.2f", "[3.14159]"), s("3.14"));
    assert_eq!(sp("%05d", "[42]"), s("00042"));
    assert_eq!(sp("%x", "[255]"), s("ff"));
    assert_eq!(sp("100%%", "[]"), s("100%"));
    assert_eq!(sp("%v %v", "[1.5, 10]"), s("1.5 10"));
}

/// Each line: format, values, OPA 1.20.2's answer (through the bindings).
#[test]
fn go_fmt_as_opa() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "%06s|%-06s|%6.2s|%.1s|%x|%X|% x|%#x|%q|%+q|%#q|%10q",
            r#"["ab","ab","abc","日本","hi","hi","hi","hi","a\"b\u0001é","é","`x","ab"]"#,
            "0000ab|ab    |    ab|日|6869|6869|68 69|0x6869|\"a\\\"b\\x01é\"|\"\\u00e9\"|\"`x\"|      \"ab\"",
        ),
        (
            "%v|%v|%v|%v|%v|%v|%v",
            r#"[[1,"a",true,null], {"b": 2, "a": "x"}, {3,1,2}, set(), null, true, {"k": [1, {"z": set()}]}]"#,
            r#"[1, "a", true, null]|{"a": "x", "b": 2}|{1, 2, 3}|set()|null|true|{"k": [1, {"z": set()}]}"#,
        ),
        (
            "%t|%d|%s|%v|%5v|%-5v|",
            "[true, 1.5, 7, 1.5, true, 12]",
            "%!t(string=true)|%!d(float64=1.5)|%!s(int64=7)|1.5| true|12   |",
        ),
        ("%d %d", "[1]", "1 %!d(MISSING)"),
        ("%d", r#"[1, 2, "x"]"#, "1%!(EXTRA int64=2, string=x)"),
        ("%z|%!|%", "[1]", "%!z(int64=1)|%!!(MISSING)|%!(NOVERB)"),
        (
            "%e|%E|%.3e|%10.3g|%f|%.0f|%+.2f|% .2f|%08.3f|%-8.2f|",
            "[123456.789, 0.000123, 2.5, 3.14159, 1.5, 2.5, 3.14159, 3.14159, -3.14159, 3.14159]",
            "1.234568e+05|1.230000E-04|2.500e+00|      3.14|1.500000|2|+3.14| 3.14|-003.142|3.14    |",
        ),
        (
            "%v|%v|%v|%v|%v",
            "[123456.5, 1234567.5, 0.0001, 0.00001, 100.0]",
            "123456.5|1.2345675e+06|0.0001|1e-05|100",
        ),
        (
            "%d|%5d|%-5d|%05d|%+d|% d|%x|%X|%o|%O|%b|%#o|%#b|%c|%U|%#U|%q|%.3d|%8.3d|%-08d|%+05d",
            "[42, 42, 42, -42, 42, 42, 255, 255, 8, 8, 5, 8, 5, 65, 65, 65, 65, 7, 7, 3, 3]",
            "42|   42|42   |-0042|+42| 42|ff|FF|10|0o10|101|010|0b101|A|U+0041|U+0041 'A'|'A'|007|     007|3       |+0003",
        ),
        (
            "%d|%x|%v|%s|%08d",
            "[123456789012345678901234567890, 123456789012345678901234567890, \
             123456789012345678901234567890, 123456789012345678901234567890, 12345678901234567890]",
            "123456789012345678901234567890|18ee90ff6c373e0ee4e3f0ad2|123456789012345678901234567890|\
             123456789012345678901234567890|12345678901234567890",
        ),
        (
            "%[2]d %[1]d|%*d|%-*d|%.*f",
            "[1, 2, 5, 42, 5, 42, 2, 3.14159]",
            "2 1| 5|5                                         |%!f(int64=000000000000000000000000000000000000000002)",
        ),
        (
            "%.2f|%.1f|%.0f|%.0f|%.2f|%.3f",
            "[0.125, 0.25, 0.5, 1.5, 1.005, 2.0005]",
            "0.12|0.2|0|2|1.00|2.001",
        ),
    ];
    for (format, values, want) in cases {
        assert_eq!(sp(format, values), s(want), "{format}");
    }
}

#[test]
fn hostile_inputs() {
    // Wrong types: undefined.
    assert_eq!(sprintf(&[s("%d"), j("1")]), Value::Undefined);
    assert_eq!(sprintf(&[j("1"), j("[1]")]), Value::Undefined);
    assert_eq!(sprintf(&[s("%d")]), Value::Undefined);
    assert_eq!(sprintf(&[]), Value::Undefined);
    // Widths and precisions past usher's cap: undefined, nothing allocated.
    assert_eq!(sp("%1001d", "[1]"), Value::Undefined);
    assert_eq!(sp("%.1001f", "[1.5]"), Value::Undefined);
    assert_eq!(sp("%99999999999999999999999999d", "[1]"), Value::Undefined);
    assert_eq!(sp("%*d", "[1001, 1]"), Value::Undefined);
    assert_eq!(sp("%.*d", "[-1001, 1]"), Value::Undefined);
    assert_eq!(sp("%[99999999999999999999]d", "[1]"), Value::Undefined);
    assert_eq!(sp("%1000d", "[1]"), Value::from(format!("{:>1000}", 1)));
    // Padding summed over a call is capped too.
    let n = MAX_PADDING / 999 + 1;
    let values = Value::from(vec![Value::from(1); n]);
    assert_eq!(
        sprintf(&[Value::from("%1000d".repeat(n)), values]),
        Value::Undefined
    );
    // So is what precisions add up to.
    let n = 2 * MAX_GROWTH / 1000;
    let values = Value::from(vec![Value::from(1.5); n]);
    assert_eq!(
        sprintf(&[Value::from("%.1000f".repeat(n)), values]),
        Value::Undefined
    );
    let values = Value::from(vec![Value::from(1); n]);
    assert_eq!(
        sprintf(&[Value::from("%.1000U".repeat(n)), values]),
        Value::Undefined
    );
    // A long value is no growth.
    let long = "x".repeat(3 * MAX_GROWTH);
    assert_eq!(
        sprintf(&[
            Value::from("%s%s"),
            Value::from(vec![Value::from(long.as_str()); 2])
        ]),
        Value::from(long.repeat(2))
    );
    // Unsupported float forms: undefined rather than wrong.
    assert_eq!(sp("%x", "[1.5]"), Value::Undefined);
    // Odd formats Go accepts.
    assert_eq!(sp("%", "[]"), s("%!(NOVERB)"));
    assert_eq!(sp("%-", "[]"), s("%!(NOVERB)"));
    assert_eq!(sp("%[0]d", "[1]"), s("%!d(BADINDEX)"));
    assert_eq!(sp("%[x]d", "[1]"), s("%!d(BADINDEX)"));
    assert_eq!(sp("%*d", r#"["a", 1]"#), s("%!(BADWIDTH)1"));
    assert_eq!(sp("%.*d", "[-1, 1]"), s("%!(BADPREC)1"));
    assert_eq!(sp("%é", "[1]"), s("%!é(int64=1)"));
    assert_eq!(sp("x", "[]"), s("x"));
    assert_eq!(sp("", "[1]"), s("%!(EXTRA int64=1)"));
}
