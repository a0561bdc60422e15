use std::time::Instant;

use super::*;
use crate::input::RequestInput;
use http::{HeaderMap, HeaderValue};
use serde_json::json;

fn src(rego: &str) -> PolicySource {
    PolicySource {
        policies: vec![("authz.rego".into(), rego.into())],
        data: vec![],
    }
}

fn compile(rego: &str) -> Result<Policy, PolicyError> {
    Policy::compile(
        &src(rego),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
}

fn request<'a>(
    headers: &'a HeaderMap,
    method: &'a str,
    path: &'a str,
    peer: Option<&'a str>,
) -> RequestInput<'a> {
    RequestInput {
        source_principal: peer,
        source_address: "10.0.0.1:5000".parse().unwrap(),
        destination_principal: "spiffe://mesh.local/ns/shop/sa/orders",
        destination_address: "10.0.0.2:15006".parse().unwrap(),
        method,
        path,
        host: "orders",
        scheme: "https",
        protocol: "HTTP/1.1",
        headers,
        request_id: "r1",
        body: None,
        jwt_claims: None,
    }
}

const FRONTEND: &str = "spiffe://mesh.local/ns/shop/sa/frontend";

const ROLES: &str = r#"package usher.authz

default allow := false

allow if {
    role := data.roles[input.attributes.source.principal]
    some prefix in data.prefixes[role]
    startswith(input.attributes.request.http.path, prefix)
}
"#;

fn roles_source() -> PolicySource {
    PolicySource {
        policies: vec![("roles.rego".into(), ROLES.into())],
        data: vec![(
            "roles.json".into(),
            json!({
                "roles": {FRONTEND: "reader", "spiffe://mesh.local/ns/ops/sa/admin": "admin"},
                "prefixes": {"reader": ["/api/"], "admin": ["/api/", "/admin/"]},
            }),
        )],
    }
}

#[test]
fn allow_and_deny_on_both_paths() {
    let rvm = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(
        rvm.eval_path(),
        EvalPath::Rvm,
        "{:?}",
        rvm.rvm_unavailable()
    );
    let interp = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap()
    .with_interpreter();
    assert_eq!(interp.eval_path(), EvalPath::Interpreter);
    let h = HeaderMap::new();
    let admin = Some("spiffe://mesh.local/ns/ops/sa/admin");
    for p in [&rvm, &interp] {
        // Repeated, so that the RVM path reuses its thread's VM.
        for _ in 0..3 {
            assert!(
                p.evaluate(&request(&h, "GET", "/api/orders", Some(FRONTEND)))
                    .allowed
            );
            let d = p.evaluate(&request(&h, "GET", "/admin/users", Some(FRONTEND)));
            assert!(!d.allowed);
            assert_eq!(d.http_status, 403);
            assert_eq!(d.reason.as_deref(), Some("policy denied"));
            assert!(
                p.evaluate(&request(&h, "GET", "/admin/users", admin))
                    .allowed
            );
            assert!(!p.evaluate(&request(&h, "GET", "/api/orders", None)).allowed);
        }
    }
}

#[test]
fn object_decisions() {
    let p = compile(
        r#"package usher.authz
default allow := {"allowed": false, "http_status": 401, "body": "who are you?", "headers": {"www-authenticate": "Bearer"}}
allow := {"allowed": true, "headers": {"x-checked-by": "usher"}, "request_headers_to_remove": ["x-internal"]} if {
    input.attributes.request.http.method == "GET"
}
"#,
    )
    .unwrap();
    let h = HeaderMap::new();
    let d = p.evaluate(&request(&h, "GET", "/", None));
    assert!(d.allowed);
    assert_eq!(d.headers[0].0.as_str(), "x-checked-by");
    assert_eq!(d.request_headers_to_remove[0].as_str(), "x-internal");
    let d = p.evaluate(&request(&h, "POST", "/", None));
    assert!(!d.allowed);
    assert_eq!(d.http_status, 401);
    assert_eq!(d.body.as_deref(), Some("who are you?"));
    assert_eq!(d.headers[0].1, HeaderValue::from_static("Bearer"));
}

#[test]
fn undefined_result_denies() {
    let p =
        compile("package usher.authz\nallow if input.attributes.request.http.method == \"GET\"\n")
            .unwrap();
    let h = HeaderMap::new();
    let d = p.evaluate(&request(&h, "POST", "/", None));
    assert!(!d.allowed);
    assert_eq!(d.reason.as_deref(), Some("undefined result"));
    assert!(p.evaluate(&request(&h, "GET", "/", None)).allowed);
}

#[test]
fn evaluation_error_denies() {
    // Two bodies giving different values for a complete rule: a conflict
    // regorus reports at evaluation time.
    let p = compile(
        r#"package usher.authz
allow := true if input.attributes.request.http.method == "GET"
allow := false if input.attributes.request.http.path == "/"
"#,
    )
    .unwrap();
    let h = HeaderMap::new();
    let d = p.evaluate(&request(&h, "GET", "/", None));
    assert!(!d.allowed);
    let reason = d.reason.unwrap();
    assert!(reason.starts_with("evaluation error: "), "{reason}");
    assert!(p.evaluate(&request(&h, "GET", "/x", None)).allowed);
}

#[test]
fn rego_v0_and_v1() {
    let v0 = "package usher.authz\ndefault allow = false\nallow { input.attributes.request.http.method == \"GET\" }\n";
    let h = HeaderMap::new();
    let p = Policy::compile(&src(v0), DEFAULT_QUERY, RegoVersion::V0, Limits::default()).unwrap();
    assert!(p.evaluate(&request(&h, "GET", "/", None)).allowed);
    assert!(!p.evaluate(&request(&h, "PUT", "/", None)).allowed);
    // The same text is not Rego v1.
    let e =
        Policy::compile(&src(v0), DEFAULT_QUERY, RegoVersion::V1, Limits::default()).unwrap_err();
    assert!(matches!(e, PolicyError::Located { line: 3, .. }), "{e}");
    assert!(e.to_string().starts_with("authz.rego:3:"), "{e}");
    // v1 syntax is the default.
    assert_eq!(RegoVersion::default(), RegoVersion::V1);
    let v1 = "package usher.authz\ndefault allow := false\nallow if input.attributes.request.http.method == \"GET\"\n";
    assert!(
        compile(v1)
            .unwrap()
            .evaluate(&request(&h, "GET", "/", None))
            .allowed
    );
}

#[test]
fn syntax_error_with_file_line_col() {
    let e = compile("package usher.authz\n\nallow if {\n    input.x ==\n}\n").unwrap_err();
    match &e {
        PolicyError::Located {
            file,
            line,
            col,
            message,
        } => {
            assert_eq!(file, "authz.rego");
            assert_eq!((*line, *col), (5, 1));
            assert!(!message.is_empty());
        }
        other => panic!("{other:?}"),
    }
    assert!(e.to_string().starts_with("authz.rego:5:1: "), "{e}");
}

#[test]
fn missing_builtin_reported_at_compile() {
    // Anywhere in the policy, even where the warm-up inputs never go.
    for call in [
        "net.lookup_ip_addr(input.host)",
        "not_a_function(1)",
        "crypto.parse_private_keys(input.host)",
    ] {
        let rego = format!(
            "package usher.authz\n\nallow if {{\n    input.attributes.request.http.method == \"NEVER\"\n    x := {call}\n    x\n}}\n"
        );
        let e = compile(&rego).unwrap_err();
        let text = e.to_string();
        assert!(
            text.starts_with("authz.rego:5:10: unknown function `"),
            "{text}"
        );
    }
    // A function the policy defines, and the io.jwt.* ones usher provides, are fine.
    compile("package usher.authz\nf(x) := x\nallow if { f(true); io.jwt.decode(\"a.b.c\") }\n")
        .unwrap();
}

#[test]
fn query_must_name_a_rule() {
    for q in [
        "data.usher.authz.nope",
        "data.other.allow",
        "data.usher.nothing",
    ] {
        let e =
            Policy::compile(&roles_source(), q, RegoVersion::V1, Limits::default()).unwrap_err();
        assert!(matches!(e, PolicyError::Query { .. }), "{q}: {e}");
    }
    for q in ["allow", "input.x", "data.", "data.a..b", "data.a; true"] {
        let e =
            Policy::compile(&roles_source(), q, RegoVersion::V1, Limits::default()).unwrap_err();
        assert!(matches!(e, PolicyError::Query { .. }), "{q}: {e}");
    }
}

#[test]
fn timeout_denies_on_both_paths() {
    let data: Vec<u64> = (0..3000).collect();
    let source = PolicySource {
        policies: vec![(
            "slow.rego".into(),
            "package usher.authz\nallow if {\n    some i, j, k\n    data.xs[i] + data.xs[j] + data.xs[k] == -1\n}\n".into(),
        )],
        data: vec![("xs.json".into(), json!({ "xs": data }))],
    };
    let limits = Limits {
        eval_timeout: Duration::from_millis(20),
    };
    let policy = Policy::compile(&source, DEFAULT_QUERY, RegoVersion::V1, limits).unwrap();
    let rvm_path = policy.eval_path();
    let h = HeaderMap::new();
    for p in [
        policy,
        Policy::compile(&source, DEFAULT_QUERY, RegoVersion::V1, limits)
            .unwrap()
            .with_interpreter(),
    ] {
        let start = Instant::now();
        let d = p.evaluate(&request(&h, "GET", "/", None));
        assert!(!d.allowed);
        assert_eq!(
            d.reason.as_deref(),
            Some("evaluation exceeded 20ms"),
            "{:?}",
            p.eval_path()
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        assert!(matches!(
            p.evaluate_json(&json!({})),
            Err(PolicyError::Timeout(_))
        ));
    }
    assert_eq!(rvm_path, EvalPath::Rvm);
}

#[test]
fn huge_values_are_refused_not_built() {
    let p = compile(
        "package usher.authz\nallow if count([x | some x in numbers.range(1, 100000000)]) > 0\n",
    )
    .unwrap();
    let h = HeaderMap::new();
    let start = Instant::now();
    let d = p.evaluate(&request(&h, "GET", "/", None));
    assert!(!d.allowed);
    let reason = d.reason.unwrap();
    assert!(
        reason.contains("numbers.range") && reason.contains("limit"),
        "{reason}"
    );
    assert!(start.elapsed() < Duration::from_secs(2));
    // A reasonable range still works, on the interpreter (the override is an extension).
    let p =
        compile("package usher.authz\nallow if count(numbers.range(1, 1000)) == 1000\n").unwrap();
    assert_eq!(p.eval_path(), EvalPath::Interpreter);
    assert!(p.evaluate(&request(&h, "GET", "/", None)).allowed);
}

#[test]
fn revision_follows_the_contents() {
    let rev = |s: &PolicySource, q: &str| {
        Policy::compile(s, q, RegoVersion::V1, Limits::default())
            .unwrap()
            .revision()
            .to_string()
    };
    let base = roles_source();
    let r = rev(&base, DEFAULT_QUERY);
    assert_eq!(r.len(), 16);
    assert!(r.chars().all(|c| c.is_ascii_hexdigit()));
    assert_eq!(
        r,
        rev(&roles_source(), DEFAULT_QUERY),
        "same files, same revision"
    );

    let mut changed = roles_source();
    changed.policies[0].1.push_str("\n# a comment\n");
    assert_ne!(r, rev(&changed, DEFAULT_QUERY), "policy text");

    let mut changed = roles_source();
    changed.data[0].1["prefixes"]["reader"] = json!(["/api/", "/docs/"]);
    assert_ne!(r, rev(&changed, DEFAULT_QUERY), "data");

    let mut changed = roles_source();
    changed.policies[0].0 = "renamed.rego".into();
    assert_ne!(r, rev(&changed, DEFAULT_QUERY), "path");

    let mut two = roles_source();
    two.policies
        .push(("extra.rego".into(), "package extra\nx := 1\n".into()));
    let mut swapped = two.clone();
    swapped.policies.reverse();
    assert_eq!(
        rev(&two, DEFAULT_QUERY),
        rev(&swapped, DEFAULT_QUERY),
        "order of files"
    );
    assert_ne!(rev(&two, DEFAULT_QUERY), rev(&two, "data.extra.x"), "query");
}

#[test]
fn source_from_files() {
    let dir = tempfile::tempdir().unwrap();
    let rego = dir.path().join("authz.rego");
    std::fs::write(&rego, ROLES).unwrap();
    let json_file = dir.path().join("roles.json");
    std::fs::write(&json_file, r#"{"roles": {}}"#).unwrap();
    let yaml_file = dir.path().join("prefixes.yaml");
    std::fs::write(&yaml_file, "prefixes:\n  reader: [\"/api/\"]\n").unwrap();
    let s = PolicySource::from_files(
        std::slice::from_ref(&rego),
        &[json_file.clone(), yaml_file.clone()],
    )
    .unwrap();
    assert_eq!(s.policies[0].1, ROLES);
    assert_eq!(s.data[1].1, json!({"prefixes": {"reader": ["/api/"]}}));
    let p = Policy::compile(&s, DEFAULT_QUERY, RegoVersion::V1, Limits::default()).unwrap();
    assert_eq!(
        p.files(),
        [
            rego.display().to_string(),
            json_file.display().to_string(),
            yaml_file.display().to_string()
        ]
    );
    assert_eq!(p.query(), DEFAULT_QUERY);

    // Errors name the file.
    let missing = dir.path().join("missing.rego");
    let e = PolicySource::from_files(std::slice::from_ref(&missing), &[]).unwrap_err();
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{not json").unwrap();
    let e = PolicySource::from_files(&[], std::slice::from_ref(&bad)).unwrap_err();
    assert!(
        e.to_string()
            .starts_with(&format!("{}: not valid JSON", bad.display())),
        "{e}"
    );
    let list = dir.path().join("list.yaml");
    std::fs::write(&list, "- a\n- b\n").unwrap();
    let e = PolicySource::from_files(&[], std::slice::from_ref(&list)).unwrap_err();
    assert!(e.to_string().contains("must be an object"), "{e}");
    let other = dir.path().join("data.toml");
    std::fs::write(&other, "a = 1").unwrap();
    assert!(PolicySource::from_files(&[], &[other]).is_err());
}

#[test]
fn conflicting_data_names_the_file() {
    let mut s = roles_source();
    s.data
        .push(("other.json".into(), json!({"roles": {FRONTEND: "admin"}})));
    let e = Policy::compile(&s, DEFAULT_QUERY, RegoVersion::V1, Limits::default()).unwrap_err();
    assert!(e.to_string().starts_with("other.json: "), "{e}");
}

#[test]
fn evaluate_json_and_decide_json() {
    let p = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap();
    let input = json!({"attributes": {"source": {"principal": FRONTEND}, "request": {"http": {"path": "/api/x"}}}});
    assert_eq!(p.evaluate_json(&input).unwrap(), json!(true));
    assert!(p.decide_json(&input).allowed);
    let p =
        compile("package usher.authz\nallow if input.x == 1\nobj := {\"a\": {1, 2}}\n").unwrap();
    assert_eq!(
        p.evaluate_json(&json!({"x": 2})).unwrap(),
        serde_json::Value::Null
    );
    assert_eq!(
        p.decide_json(&json!({"x": 2})).reason.as_deref(),
        Some("undefined result")
    );
    let p = Policy::compile(
        &src("package usher.authz\nobj := {\"a\": {1, 2}}\n"),
        "data.usher.authz.obj",
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap();
    assert_eq!(p.evaluate_json(&json!({})).unwrap(), json!({"a": [1, 2]}));
}

#[test]
fn rvm_and_interpreter_agree() {
    let rvm = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap();
    let interp = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap()
    .with_interpreter();
    let h = HeaderMap::new();
    let peers = [
        None,
        Some(FRONTEND),
        Some("spiffe://mesh.local/ns/ops/sa/admin"),
        Some("spiffe://x/y"),
    ];
    let paths = [
        "/",
        "/api",
        "/api/",
        "/api/orders?x=1",
        "/admin/",
        "/admin/x",
        "/apix",
    ];
    for peer in peers {
        for path in paths {
            let r = request(&h, "GET", path, peer);
            assert_eq!(
                rvm.evaluate(&r).allowed,
                interp.evaluate(&r).allowed,
                "{peer:?} {path}"
            );
        }
    }
}

#[test]
fn policies_alternating_on_one_thread_and_across_threads() {
    let a = Arc::new(
        Policy::compile(
            &roles_source(),
            DEFAULT_QUERY,
            RegoVersion::V1,
            Limits::default(),
        )
        .unwrap(),
    );
    let b = Arc::new(
        compile("package usher.authz\nallow if input.attributes.request.http.method == \"GET\"\n")
            .unwrap(),
    );
    assert_eq!(b.eval_path(), EvalPath::Rvm);
    let h = HeaderMap::new();
    for _ in 0..10 {
        assert!(
            a.evaluate(&request(&h, "POST", "/api/x", Some(FRONTEND)))
                .allowed
        );
        assert!(
            !b.evaluate(&request(&h, "POST", "/api/x", Some(FRONTEND)))
                .allowed
        );
    }
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (a, b) = (a.clone(), b.clone());
            std::thread::spawn(move || {
                let h = HeaderMap::new();
                (0..200).all(|i| {
                    let path = if i % 2 == 0 { "/api/x" } else { "/admin/x" };
                    a.evaluate(&request(&h, "GET", path, Some(FRONTEND)))
                        .allowed
                        == (i % 2 == 0)
                        && b.evaluate(&request(&h, "GET", path, None)).allowed
                })
            })
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap());
    }
}

#[test]
fn eval_micros_is_measured() {
    let p = Policy::compile(
        &roles_source(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap();
    let h = HeaderMap::new();
    let d = p.evaluate(&request(&h, "GET", "/api/x", Some(FRONTEND)));
    assert!(d.eval_micros < 1_000_000);
    assert_eq!(Limits::default().eval_timeout, Duration::from_millis(50));
    assert_eq!(p.limits().eval_timeout, Duration::from_millis(50));
}

#[test]
fn no_policy_file_is_an_error() {
    let e = Policy::compile(
        &PolicySource::default(),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(e, PolicyError::Compile(_)));
}

#[test]
fn jwt_claims_and_io_jwt_in_a_policy() {
    let p = compile(
        r#"package usher.authz
default allow := false
allow if "admin" in input.usher.jwt.claims.roles
allow if {
    [_, payload, _] := io.jwt.decode(trim_prefix(input.attributes.request.http.headers.authorization, "Bearer "))
    payload.sub == "alice"
}
"#,
    )
    .unwrap();
    assert_eq!(p.eval_path(), EvalPath::Interpreter);
    let claims = json!({"roles": ["admin"]});
    let h = HeaderMap::new();
    let r = RequestInput {
        jwt_claims: Some(&claims),
        ..request(&h, "GET", "/", None)
    };
    assert!(p.evaluate(&r).allowed);
    let mut h = HeaderMap::new();
    // {"alg":"HS256"}.{"sub":"alice"}.sig
    h.insert(
        "authorization",
        HeaderValue::from_static("Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2ln"),
    );
    assert!(p.evaluate(&request(&h, "GET", "/", None)).allowed);
    h.insert("authorization", HeaderValue::from_static("Bearer garbage"));
    assert!(!p.evaluate(&request(&h, "GET", "/", None)).allowed);
}

#[test]
fn each_evaluation_sees_the_current_time() {
    // Evaluators are reused per thread: nothing may be cached across requests.
    let source = src("package usher.authz\nnow := time.now_ns()\n");
    let q = "data.usher.authz.now";
    let rvm = Policy::compile(&source, q, RegoVersion::V1, Limits::default()).unwrap();
    let interp = Policy::compile(&source, q, RegoVersion::V1, Limits::default())
        .unwrap()
        .with_interpreter();
    for p in [&rvm, &interp] {
        let a = p.evaluate_json(&json!({})).unwrap().as_u64().unwrap();
        std::thread::sleep(Duration::from_millis(2));
        let b = p.evaluate_json(&json!({})).unwrap().as_u64().unwrap();
        assert!(b > a, "{:?}", p.eval_path());
    }
}

#[test]
fn input_of_one_request_does_not_leak_into_the_next() {
    let p = compile("package usher.authz\nallow if input.attributes.request.http.headers[\"x-once\"] == \"yes\"\n").unwrap();
    let interp = compile("package usher.authz\nallow if input.attributes.request.http.headers[\"x-once\"] == \"yes\"\n")
        .unwrap()
        .with_interpreter();
    let mut with = HeaderMap::new();
    with.insert("x-once", HeaderValue::from_static("yes"));
    let without = HeaderMap::new();
    for p in [&p, &interp] {
        assert!(p.evaluate(&request(&with, "GET", "/", None)).allowed);
        assert!(!p.evaluate(&request(&without, "GET", "/", None)).allowed);
    }
}

#[test]
fn print_does_not_pile_up() {
    let p = compile("package usher.authz\nallow if {\n    print(\"checking\", input.attributes.request.http.method)\n    true\n}\n")
        .unwrap()
        .with_interpreter();
    let h = HeaderMap::new();
    for _ in 0..3 {
        assert!(p.evaluate(&request(&h, "GET", "/", None)).allowed);
    }
}

fn src_query(rego: &str, query: &str) -> Result<Policy, PolicyError> {
    Policy::compile(&src(rego), query, RegoVersion::V1, Limits::default())
}

/// OPA-Envoy's "result object" pattern and the other queries OPA accepts
/// that are not a rule path: evaluated as queries, with OPA's values.
#[test]
fn decision_objects_built_rule_by_rule_packages_and_paths_into_rules() {
    let rego = "package envoy.authz\n\
default allow := false\n\
allow if input.attributes.request.http.method == \"GET\"\n\
result[\"allowed\"] := allow\n\
result.headers := {\"x-ext-auth-allow\": \"yes\"}\n\
codes[k] := v if { some k, v in {\"ok\": 200} }\n";
    let get = json!({"attributes": {"request": {"http": {"method": "GET"}}}});
    let post = json!({"attributes": {"request": {"http": {"method": "POST"}}}});

    let p = src_query(rego, "data.envoy.authz.result").unwrap();
    assert_eq!(p.eval_path(), EvalPath::Interpreter);
    assert_eq!(
        p.evaluate_json(&get).unwrap(),
        json!({"allowed": true, "headers": {"x-ext-auth-allow": "yes"}})
    );
    let d = p.decide_json(&get);
    assert!(d.allowed);
    assert_eq!(d.headers.len(), 1);
    assert!(!p.decide_json(&post).allowed);

    // A package: an object of its rules.
    let p = src_query(rego, "data.envoy.authz").unwrap();
    assert_eq!(
        p.evaluate_json(&get).unwrap()["result"]["allowed"],
        json!(true)
    );
    // A path into a partial object rule's value.
    let p = src_query(rego, "data.envoy.authz.codes.ok").unwrap();
    assert_eq!(p.evaluate_json(&get).unwrap(), json!(200));
    // A rule path still compiles to the RVM.
    let p = src_query(rego, "data.envoy.authz.allow").unwrap();
    assert_eq!(p.eval_path(), EvalPath::Rvm);
}

#[test]
fn recursion_is_refused_at_load_with_its_place() {
    let cases = [
        ("package usher.authz\nf(x) := y if { y := f(x + 1) }\nallow if f(1)\n", 2),
        ("package usher.authz\na if b\nb if a\nallow if a\n", 2),
        ("package usher.authz\nallow if { some x in deny }\ndeny contains y if { some y in allow_list }\nallow_list contains z if { allow; z := 1 }\n", 2),
    ];
    for (rego, line) in cases {
        match compile(rego) {
            Err(PolicyError::Located {
                line: l, message, ..
            }) => {
                assert_eq!(l, line, "{message}");
                assert!(message.starts_with("recursion: "), "{message}");
            }
            other => panic!("{rego}: {other:?}"),
        }
    }
    // Imports and data paths are followed too.
    let source = PolicySource {
        policies: vec![
            (
                "a.rego".into(),
                "package a\nimport data.b\nallow if b.ok\n".into(),
            ),
            ("b.rego".into(), "package b\nok if data.a.allow\n".into()),
        ],
        data: vec![],
    };
    let e =
        Policy::compile(&source, "data.a.allow", RegoVersion::V1, Limits::default()).unwrap_err();
    assert!(e.to_string().contains("recursion: "), "{e}");
    // A local variable named like a rule is no reference to it, in a body
    // or in a comprehension.
    compile("package usher.authz\nx := 1\nallow if { x := 2; x == 2 }\n").unwrap();
    compile(
        "package usher.authz\nuser := u if { u := [user | user := input.users[_]][0] }\nallow if user == \"a\"\n",
    )
    .unwrap();
    compile(
        "package usher.authz\nnames contains n if { some n in {names | names := input.xs[_]} }\nallow if count(names) > 0\n",
    )
    .unwrap();
}

#[test]
fn deep_nesting_is_refused_before_parsing() {
    let rego = format!(
        "package usher.authz\nallow if {{ x := {}1{}; x }}\n",
        "[".repeat(20),
        "]".repeat(20)
    );
    let e = compile(&rego).unwrap_err();
    assert!(e.to_string().contains("nest more than 12 deep"), "{e}");
}

/// regorus panics in `time.parse_duration_ns` when the unit ends in a
/// character of more than one byte (`1é`; usher's `regex.template_match`,
/// the earlier example, no longer panics): a failed evaluation (deny), not
/// a dead thread; the policy still loads though the warm-up hits it.
#[test]
fn a_panic_inside_the_engine_is_a_deny() {
    let p = compile(
        "package usher.authz\nallow if input.attributes.request.http.path == \"/orders/12\"\nallow if {\n    input.attributes.request.http.path != \"/orders/12\"\n    time.parse_duration_ns(\"1\u{e9}\") > 0\n}\n",
    )
    .unwrap();
    let d = p.decide_json(&json!({"attributes": {"request": {"http": {"path": "/"}}}}));
    assert!(!d.allowed);
    assert!(
        d.reason
            .as_deref()
            .unwrap_or("")
            .contains("inside the Rego engine"),
        "{:?}",
        d.reason
    );
    let d = p.decide_json(&json!({"attributes": {"request": {"http": {"path": "/orders/12"}}}}));
    assert!(d.allowed, "{:?}", d.reason);
}

/// `some x` and `every k, v in` declare variables OPA insists are used
/// (rego_compile_error "declared var x unused"; checked against OPA 1.x):
/// refused at load with the variable's place; the forms OPA accepts load.
#[test]
fn declared_but_unused_vars_are_refused_as_opa_does() {
    for (rego, var, line) in [
        ("package usher.authz\nallow if {\n  every i, seg in [1] { i < 5 }\n}\n", "seg", 3),
        ("package usher.authz\nallow if {\n  every i, seg in [1] { seg < 5 }\n}\n", "i", 3),
        ("package usher.authz\nallow if {\n  every seg in [1] { true }\n}\n", "seg", 3),
        ("package usher.authz\nallow if {\n  some x\n  true\n}\n", "x", 3),
        ("package usher.authz\nallow if {\n  xs := [y | some y in [1]; every z in [1] { true }]\n  count(xs) > 0\n}\n", "z", 3),
    ] {
        match compile(rego) {
            Err(PolicyError::Located { line: l, message, .. }) => {
                assert_eq!(l, line, "{message}");
                assert_eq!(
                    message,
                    format!("declared var {var} unused (OPA refuses this too: rego_compile_error)")
                );
            }
            other => panic!("{rego}: {other:?}"),
        }
    }
    for rego in [
        "package usher.authz\nallow if { some x in [1] }\n",
        "package usher.authz\nallow if { some k, v in [1]; v == 1 }\n",
        "package usher.authz\nallow if { every _, seg in [1] { seg < 5 } }\n",
        "package usher.authz\nallow if { every i, seg in [1] { i < 5 with input as seg } }\n",
        "package usher.authz\nallow if { some x; x := 1 }\n",
        "package usher.authz\nallow contains x if { some x; x := 1 }\n",
        "package usher.authz\nallow if { every seg in [1] { every_seg := seg; every_seg > 0 } }\n",
    ] {
        compile(rego).unwrap_or_else(|e| panic!("{rego}: {e}"));
    }
}
