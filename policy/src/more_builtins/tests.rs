use std::collections::BTreeSet;

use super::net::*;
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
        ("crypto.md5", 1),
        ("crypto.hmac.md5", 2),
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
    // Overrides of regorus' builtins, with OPA's arities.
    let overrides = [
        ("sprintf", 2),
        ("json.marshal", 1),
        ("json.marshal_with_options", 2),
        ("time.add_date", 4),
        ("semver.is_valid", 1),
        ("semver.compare", 2),
        ("yaml.unmarshal", 1),
        ("yaml.is_valid", 1),
        ("regex.template_match", 4),
    ];
    for (name, n) in overrides {
        assert!(function(name).is_some(), "{name}");
        assert!(
            crate::builtins::BOUNDED_BUILTINS.contains(&(name, n)),
            "{name}/{n} not in BOUNDED_BUILTINS"
        );
    }
    assert!(function("crypto.sha384").is_none());
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

#[test]
fn md5_digests_and_hmacs() {
    // The compat case crypto_hashes (OPA's recorded digest of "usher"),
    // RFC 1321's vectors.
    assert_eq!(
        call("crypto.md5", &[s("usher")]),
        s("0d5e410c96a560d494fe2b3485f5f864")
    );
    assert_eq!(
        call("crypto.md5", &[s("")]),
        s("d41d8cd98f00b204e9800998ecf8427e")
    );
    assert_eq!(
        call("crypto.md5", &[s("abc")]),
        s("900150983cd24fb0d6963f7d28e17f72")
    );
    assert_eq!(call("crypto.md5", &[json("1")]), Value::Undefined);
    assert_eq!(call("crypto.md5", &[]), Value::Undefined);
    // OPA 1.20.2, and RFC 2202's HMAC-MD5 vectors (a key longer than a
    // block is hashed first).
    assert_eq!(
        call("crypto.hmac.md5", &[s("usher"), s("whsec")]),
        s("293e023c09df37c8ad8e6b81012961d5")
    );
    assert_eq!(
        call(
            "crypto.hmac.md5",
            &[s("what do ya want for nothing?"), s("Jefe")]
        ),
        s("750c783e6ab0b503eaa86e310a5db738")
    );
    let key = "\u{b}".repeat(16);
    assert_eq!(
        call("crypto.hmac.md5", &[s("Hi There"), s(&key)]),
        s("9294727a3638bb1c13f48ef8158bfc9d")
    );
    assert_eq!(
        hex(&hmac_md5(
            &[0xaa; 80],
            b"Test Using Larger Than Block-Size Key - Hash Key First"
        )),
        "6b1ab7fe4bd7bf8f0b62e6ce61b9d0cd"
    );
    assert_eq!(
        call("crypto.hmac.md5", &[s("x"), json("1")]),
        Value::Undefined
    );
}
