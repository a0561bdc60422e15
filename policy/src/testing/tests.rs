use super::*;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

#[test]
fn examples_pass() {
    let report = run(&[examples()], RegoVersion::V1).unwrap();
    let text = report.to_string();
    assert!(report.passed(), "{text}");
    assert!(report.results.len() >= 25, "{text}");
    for package in [
        "data.usher.authz_test",
        "data.usher.routes_test",
        "data.usher.admin_test",
        "data.usher.jwt_test",
        "data.envoy.people_test",
    ] {
        assert!(
            report.results.iter().any(|r| r.package == package),
            "{package}: {text}"
        );
    }
    assert!(
        text.contains(&format!("PASS: {n}/{n}", n = report.results.len())),
        "{text}"
    );
}

/// Each example compiles as usher would load it: with the query and data
/// files its header names.
#[test]
fn examples_compile_with_their_documented_query() {
    let mut seen = 0;
    for dir in std::fs::read_dir(examples()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&dir).unwrap() {
            let file = file.unwrap().path();
            let name = file.file_name().unwrap().to_str().unwrap().to_string();
            if !name.ends_with(".rego") || name.ends_with("_test.rego") {
                continue;
            }
            let text = std::fs::read_to_string(&file).unwrap();
            let header = |key: &str| -> Vec<String> {
                text.lines()
                    .take_while(|l| l.starts_with('#'))
                    .filter_map(|l| l.trim_start_matches('#').trim().strip_prefix(key))
                    .flat_map(|rest| rest.split_whitespace().next().map(String::from))
                    .collect()
            };
            let query = header("Query:")
                .pop()
                .unwrap_or_else(|| panic!("{name}: no `# Query:` line"));
            let data: Vec<PathBuf> = header("Data:").into_iter().map(|d| dir.join(d)).collect();
            let source = PolicySource::from_files(std::slice::from_ref(&file), &data).unwrap();
            crate::Policy::compile(&source, &query, RegoVersion::V1, crate::Limits::default())
                .unwrap_or_else(|e| panic!("{name} with {query}: {e}"));
            seen += 1;
        }
    }
    assert_eq!(seen, 5);
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn failing_and_erroring_tests_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package p\n\nallow if input.user == \"alice\"\n\nlimit := data.settings.limit\n",
    );
    write(dir.path(), "settings.yaml", "settings:\n  limit: 3\n");
    write(
        dir.path(),
        "p_test.rego",
        r#"package p_test

import data.p

test_alice if p.allow with input as {"user": "alice"}

test_bob_wrongly_expected if p.allow with input as {"user": "bob"}

test_data_at_the_root if p.limit == 3

test_error if to_number("x") == 1

test_false := false

helper := 1
"#,
    );
    let report = run(&[dir.path().to_path_buf()], RegoVersion::V1).unwrap();
    let text = report.to_string();
    let outcome = |name: &str| {
        report
            .results
            .iter()
            .find(|r| r.name == name)
            .map(|r| r.outcome.clone())
            .unwrap_or_else(|| panic!("{name}: {text}"))
    };
    assert_eq!(outcome("test_alice"), TestOutcome::Pass);
    assert_eq!(outcome("test_bob_wrongly_expected"), TestOutcome::Fail);
    assert_eq!(outcome("test_data_at_the_root"), TestOutcome::Pass);
    assert_eq!(outcome("test_false"), TestOutcome::Fail);
    assert_eq!(report.results.len(), 5, "{text}");
    assert!(!report.passed());
    assert!(text.contains("data.p_test.test_alice: PASS ("), "{text}");
    assert!(
        text.contains("data.p_test.test_bob_wrongly_expected: FAIL ("),
        "{text}"
    );
    assert!(text.contains("PASS: 2/5"), "{text}");
    assert!(
        text.contains("FAIL: 2/5") || text.contains("FAIL: 3/5"),
        "{text}"
    );
    let r = report
        .results
        .iter()
        .find(|r| r.name == "test_alice")
        .unwrap();
    assert!(r.location.ends_with("p_test.rego:5"), "{}", r.location);
}

#[test]
fn a_test_that_errors_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "e_test.rego",
        "package e_test\n\nf(x) := 1 if x == 1\nf(x) := 2 if x == 1\n\ntest_conflict if f(1) == 1\n",
    );
    let report = run(&[dir.path().join("e_test.rego")], RegoVersion::V1).unwrap();
    assert!(
        matches!(report.results[0].outcome, TestOutcome::Error(_)),
        "{report}"
    );
    assert!(report.to_string().contains("ERROR: 1/1"), "{report}");
    assert!(!report.passed());
}

#[test]
fn rego_v0_tests() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "v0.rego",
        "package v0\n\nallow { input.x == 1 }\n\ntest_allow { allow with input as {\"x\": 1} }\n",
    );
    assert!(run(&[dir.path().to_path_buf()], RegoVersion::V0)
        .unwrap()
        .passed());
    assert!(run(&[dir.path().to_path_buf()], RegoVersion::V1).is_err());
}

#[test]
fn no_tests_and_bad_paths() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.rego", "package p\nallow := true\n");
    let report = run(&[dir.path().to_path_buf()], RegoVersion::V1).unwrap();
    assert!(report.results.is_empty());
    assert!(!report.passed());
    assert!(report.to_string().contains("no tests found"));
    let missing = dir.path().join("nope");
    let e = run(std::slice::from_ref(&missing), RegoVersion::V1).unwrap_err();
    assert!(
        e.to_string().starts_with(&missing.display().to_string()),
        "{e}"
    );
    let empty = tempfile::tempdir().unwrap();
    assert!(run(&[empty.path().to_path_buf()], RegoVersion::V1).is_err());
}

#[test]
fn check_reports_every_file_with_positions() {
    let dir = tempfile::tempdir().unwrap();
    let good = write(
        dir.path(),
        "good.rego",
        "package good\nallow if input.x == 1\n",
    );
    let lib = write(dir.path(), "lib.rego", "package lib\ndouble(x) := x * 2\n");
    let uses_lib = write(
        dir.path(),
        "uses.rego",
        "package uses\nimport data.lib\nallow if lib.double(2) == 4\n",
    );
    assert!(check_files(
        &[good.clone(), lib.clone(), uses_lib.clone()],
        RegoVersion::V1,
        None
    )
    .is_ok());

    let bad1 = write(
        dir.path(),
        "bad1.rego",
        "package bad1\nallow if {\n  input.x ==\n}\n",
    );
    let bad2 = write(
        dir.path(),
        "bad2.rego",
        "package bad2\nallow if input.x = = 1\n",
    );
    let errors = check_files(
        &[good.clone(), bad1.clone(), bad2.clone()],
        RegoVersion::V1,
        None,
    )
    .unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}:4:1: ", bad1.display())),
        "{}",
        errors[0]
    );
    assert!(
        errors[1]
            .to_string()
            .starts_with(&format!("{}:2:", bad2.display())),
        "{}",
        errors[1]
    );

    let unknown = write(
        dir.path(),
        "unknown.rego",
        "package unknown\nallow if {\n  x := net.lookup_ip_addr(\"a\")\n  y := nope(1)\n  x == y\n}\n",
    );
    let errors = check_files(std::slice::from_ref(&unknown), RegoVersion::V1, None).unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors[0].to_string().starts_with(&format!(
            "{}:3:8: unknown function `net.lookup_ip_addr`",
            unknown.display()
        )),
        "{}",
        errors[0]
    );
    assert!(
        errors[1].to_string().starts_with(&format!(
            "{}:4:8: unknown function `nope`",
            unknown.display()
        )),
        "{}",
        errors[1]
    );

    let unsafe_var = write(
        dir.path(),
        "unsafe.rego",
        "package unsafe\nallow if { x > 1 }\n",
    );
    let errors = check_files(std::slice::from_ref(&unsafe_var), RegoVersion::V1, None).unwrap_err();
    assert!(
        errors[0]
            .to_string()
            .starts_with(&format!("{}:2:12: ", unsafe_var.display())),
        "{}",
        errors[0]
    );

    let data = write(dir.path(), "data.json", "[1]");
    assert_eq!(
        check_files(&[data], RegoVersion::V1, None)
            .unwrap_err()
            .len(),
        1
    );
    let v0 = write(dir.path(), "v0.rego", "package v0\nallow { true }\n");
    assert!(check_files(std::slice::from_ref(&v0), RegoVersion::V0, None).is_ok());
    assert!(check_files(&[v0], RegoVersion::V1, None).is_err());
    assert!(check_files(&[dir.path().join("missing.rego")], RegoVersion::V1, None).is_err());
}

/// `with` replaces a user function (by a value or another function) and a
/// regorus builtin, as `opa test` suites do to mock time and lookups.
#[test]
fn with_replaces_functions_and_builtins() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package t\n\nis_admin(u) if u == \"root\"\n\nallow if is_admin(input.user)\n\nfresh if time.now_ns() < 10\n",
    );
    write(
        dir.path(),
        "p_test.rego",
        "package t\n\ntest_value if allow with input.user as \"bob\" with is_admin as true\n\nmock(_) := true\n\ntest_function if allow with input.user as \"bob\" with is_admin as mock\n\ntest_time if fresh with time.now_ns as 5\n\ntest_unmocked if not allow with input.user as \"bob\"\n",
    );
    let report = run(&[dir.path().to_path_buf()], RegoVersion::V1).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.pass_count(), 4, "{report}");
}

/// `with` replaces the builtins usher supplies itself (`http.send`,
/// `io.jwt.*`, `crypto.*`), by a value or a function, in the test's package
/// and in the policy's, in v1 and v0; unmocked calls still reach the
/// builtin.
#[test]
fn with_replaces_usher_builtins() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "p.rego",
        "package authz\n\n\
         default allow := false\n\n\
         allow if {\n  resp := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:9/users\"})\n  resp.status_code == 200\n  resp.body.role == \"admin\"\n}\n\n\
         digest := crypto.sha256(input.body)\n",
    );
    write(
        dir.path(),
        "p_test.rego",
        "package authz_test\n\nimport data.authz\n\n\
         test_value if authz.allow with http.send as {\"status_code\": 200, \"body\": {\"role\": \"admin\"}}\n\n\
         test_value_denied if not authz.allow with http.send as {\"status_code\": 200, \"body\": {\"role\": \"guest\"}}\n\n\
         fake_send(req) := {\"status_code\": 200, \"body\": {\"role\": \"admin\"}} if req.url == \"http://127.0.0.1:9/users\"\n\n\
         test_function if authz.allow with http.send as fake_send\n\n\
         test_digest if authz.digest == \"fake\" with crypto.sha256 as \"fake\" with input.body as \"x\"\n\n\
         test_unmocked_digest if authz.digest == \"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\" with input.body as \"x\"\n\n\
         test_own_package if crypto.sha256(\"x\") == \"m\" with crypto.sha256 as \"m\"\n\n\
         test_own_package_unmocked if crypto.sha256(\"x\") == \"2d711642b726b04401627ca9fbac32f5c8530fb1903cc4db02258717921a4881\"\n\n\
         test_encode if io.jwt.encode_sign({\"alg\": \"HS256\"}, {}, {}) == \"tok\" with io.jwt.encode_sign as \"tok\"\n",
    );
    let report = run(&[dir.path().to_path_buf()], RegoVersion::V1).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.pass_count(), 8, "{report}");

    let v0 = tempfile::tempdir().unwrap();
    write(
        v0.path(),
        "p.rego",
        "package authz\n\nallow {\n  resp := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:9/\"})\n  resp.status_code == 200\n}\n",
    );
    write(
        v0.path(),
        "p_test.rego",
        "package authz_test\n\nimport data.authz\n\ntest_v0 { authz.allow with http.send as {\"status_code\": 200} }\n\ntest_v0_function { authz.allow with http.send as ok }\n\nok(_) = {\"status_code\": 200}\n",
    );
    let report = run(&[v0.path().to_path_buf()], RegoVersion::V0).unwrap();
    assert!(report.passed(), "{report}");
    assert_eq!(report.pass_count(), 2, "{report}");
}
