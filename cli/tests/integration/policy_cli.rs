//! `usher policy check | eval | test` as a platform engineer runs them.

use crate::support::process::usher;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = usher().args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_accepts_a_good_policy_and_reports_errors_as_file_line_col() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.rego");
    std::fs::write(&good, "package usher.authz\n\ndefault allow := false\n").unwrap();
    let (code, out, err) = run(&["policy", "check", good.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");

    let bad = dir.path().join("bad.rego");
    std::fs::write(&bad, "package usher.authz\n\nallow if {\n  input.x ==\n}\n").unwrap();
    let (code, out, err) = run(&[
        "policy",
        "check",
        good.to_str().unwrap(),
        bad.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}{err}");
    let prefix = format!("{}:", bad.display());
    let line = err
        .lines()
        .find(|l| l.starts_with(&prefix))
        .unwrap_or_else(|| panic!("no {prefix}line:col in {err}"));
    let mut parts = line[prefix.len()..].splitn(3, ':');
    let (l, c) = (parts.next().unwrap(), parts.next().unwrap());
    assert!(
        l.trim().parse::<u32>().is_ok() && c.trim().parse::<u32>().is_ok(),
        "{line}"
    );
}

#[test]
fn eval_prints_the_decision_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("authz.rego");
    std::fs::write(
        &policy,
        "package usher.authz\n\ndefault allow := false\n\nallow if input.attributes.source.principal in data.callers\n",
    )
    .unwrap();
    let data = dir.path().join("data.json");
    std::fs::write(
        &data,
        r#"{"callers": ["spiffe://mesh.local/ns/shop/sa/frontend"]}"#,
    )
    .unwrap();
    let input = dir.path().join("input.json");
    let write_input = |principal: &str| {
        std::fs::write(
            &input,
            serde_json::json!({"attributes": {"source": {"principal": principal}, "request": {"http": {"method": "GET", "path": "/"}}}}).to_string(),
        )
        .unwrap();
    };
    let args = |p: &std::path::Path, d: &std::path::Path, i: &std::path::Path| {
        vec![
            "policy".to_string(),
            "eval".into(),
            "--policy".into(),
            p.display().to_string(),
            "--data".into(),
            d.display().to_string(),
            "--input".into(),
            i.display().to_string(),
        ]
    };
    write_input("spiffe://mesh.local/ns/shop/sa/frontend");
    let a = args(&policy, &data, &input);
    let (code, out, err) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(v["allowed"], true);
    assert_eq!(v["result"], true);

    write_input("spiffe://mesh.local/ns/shop/sa/intruder");
    let (code, out, _) = run(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["allowed"], false);
    assert_eq!(v["http_status"], 403);
}

#[test]
fn test_runs_the_example_policies_and_fails_on_a_failing_test() {
    let examples = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/policies");
    let (code, out, err) = run(&["policy", "test", examples]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("PASS"), "{out}");
    assert!(!out.contains("FAIL"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.rego"),
        "package t\n\nallow if input.user == \"alice\"\n\ntest_alice if allow with input as {\"user\": \"alice\"}\n\ntest_bob if allow with input as {\"user\": \"bob\"}\n",
    )
    .unwrap();
    let (code, out, err) = run(&["policy", "test", dir.path().to_str().unwrap()]);
    assert_eq!(code, 2, "a failing test exits 2, as opa test: {out}{err}");
    assert!(
        out.contains("data.t.test_bob: FAIL") && !out.contains("test_alice: PASS"),
        "without -v only what did not pass: {out}"
    );
    assert!(
        out.contains("PASS: 1/2") && out.contains("FAIL: 1/2"),
        "{out}"
    );
    let (_, out, _) = run(&["policy", "test", "-v", dir.path().to_str().unwrap()]);
    assert!(
        out.contains("data.t.test_alice: PASS ("),
        "-v lists every test: {out}"
    );
}

/// `opa test`'s conventions: todo_test_ skipped (exit 2 unless -z),
/// `--run` selects by full name, a bad pattern is an error (exit 1).
#[test]
fn test_follows_opa_test_conventions() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.rego"),
        "package t\n\nallow if input.user == \"alice\"\n\ntest_alice if allow with input as {\"user\": \"alice\"}\n\ntest_bob_denied if not allow with input as {\"user\": \"bob\"}\n\ntodo_test_carol if false\n",
    )
    .unwrap();
    let path = dir.path().to_str().unwrap();
    let (code, out, _) = run(&["policy", "test", path]);
    assert_eq!(code, 2, "a skipped test exits 2 without -z: {out}");
    assert!(out.contains("data.t.todo_test_carol: SKIPPED"), "{out}");
    assert!(
        out.contains("PASS: 2/3") && out.contains("SKIPPED: 1/3"),
        "{out}"
    );
    let (code, out, _) = run(&["policy", "test", "-z", path]);
    assert_eq!(code, 0, "{out}");
    let (code, out, _) = run(&["policy", "test", "--run", "t\\.test_bob", "-v", path]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("test_bob_denied: PASS") && !out.contains("test_alice"),
        "{out}"
    );
    let (code, _, err) = run(&["policy", "test", "--run", "(", path]);
    assert_eq!(code, 1);
    assert!(err.contains("not a regular expression"), "{err}");
}

/// `policy check` runs the sidecar's own compile path: what `run` refuses,
/// `check` refuses (recursion, conflicting complete rules, unsafe
/// variables), and what it accepts loads.
#[test]
fn check_refuses_what_the_sidecar_refuses() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "recursive.rego",
            "package usher.authz\n\nallow if a\n\na if b\n\nb if a\n",
            "recursion: ",
        ),
        (
            "function.rego",
            "package usher.authz\n\nf(x) := y if { y := f(x + 1) }\n\nallow if f(1)\n",
            "recursion: ",
        ),
        (
            "conflict.rego",
            "package usher.authz\n\nallow := true\n\nallow := false\n",
            "conflict",
        ),
        (
            "unsafe.rego",
            "package usher.authz\n\nallow if { x > 1 }\n",
            "unsafe",
        ),
    ];
    for (name, text, why) in cases {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let (code, out, err) = run(&["policy", "check", file.to_str().unwrap()]);
        assert_eq!(code, 1, "{name}: {out}{err}");
        assert!(err.contains(why), "{name}: {err}");
        let (code, _, err2) = run(&[
            "policy",
            "check",
            "--query",
            "data.usher.authz.allow",
            file.to_str().unwrap(),
        ]);
        assert_eq!(code, 1, "{name} with --query: {err2}");
    }
    // The result-object pattern, with the query the sidecar would use.
    let envoy = dir.path().join("envoy.rego");
    std::fs::write(
        &envoy,
        "package envoy.authz\n\ndefault allow := false\n\nallow if input.attributes.request.http.method == \"GET\"\n\nresult[\"allowed\"] := allow\n",
    )
    .unwrap();
    let (code, out, err) = run(&[
        "policy",
        "check",
        "--query",
        "data.envoy.authz.result",
        envoy.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = run(&[
        "policy",
        "check",
        "--query",
        "data.envoy.authz.nothing",
        envoy.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("names no rule"), "{err}");
}
