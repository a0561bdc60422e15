//! The read set of `input` (`input_reads`) and the purity of calls
//! (`purity`): static paths are found, and every form that could see more
//! of `input` than a static path falls back to the whole document.

use super::*;
use crate::input::InputParts as P;

fn scan_of(modules: &[&str]) -> Scan {
    let mut engine = regorus::Engine::new();
    for (i, text) in modules.iter().enumerate() {
        engine
            .add_policy(format!("m{i}.rego"), (*text).to_string())
            .unwrap();
    }
    scan(engine.get_modules())
}

fn parts(body: &str) -> InputParts {
    scan_of(&[&format!("package t\n{body}\n")]).input_parts
}

#[test]
fn static_paths_are_found() {
    let p = parts(
        r#"allow if {
            role := data.roles[input.attributes.source.principal]
            startswith(input.attributes.request.http.path, role)
            input.parsed_path[0] == "api"
            input["attributes"]["request"]["http"].method == "GET"
        }"#,
    );
    assert_eq!(
        p,
        P::SOURCE_PRINCIPAL
            .union(P::PATH)
            .union(P::PARSED_PATH)
            .union(P::METHOD)
    );
}

#[test]
fn a_header_read_by_name_needs_the_headers_object() {
    let p = parts(r#"allow if input.attributes.request.http.headers["x-user"] == "a""#);
    assert_eq!(p, P::HEADERS);
    let p = parts("allow if { some k, v in input.attributes.request.http.headers; k == v }");
    assert_eq!(p, P::HEADERS);
}

#[test]
fn reads_in_rule_heads_and_indices_are_found() {
    let p = parts("methods[input.attributes.request.http.method] := true");
    assert_eq!(p, P::METHOD);
    let p = parts("f(x) := data.hosts[input.attributes.request.http.host] if x");
    assert_eq!(p, P::HOST);
}

#[test]
fn no_read_of_input_builds_nothing() {
    assert_eq!(parts("allow := true"), P::NONE);
}

// Each form below can see more than a static path: the whole document.

#[test]
fn fallback_input_with_a_variable_index() {
    assert!(parts("allow if { some k; input[k] == 1 }").is_all());
}

#[test]
fn fallback_variable_index_above_the_part_read() {
    // `input.attributes[k].principal` may read any attribute's `principal`:
    // everything below `attributes`, headers included.
    let p = parts("allow if { some k; input.attributes[k].principal == \"x\" }");
    assert!(p.contains(P::reached_by(&["attributes"])));
    assert!(p.contains(P::HEADERS));
}

#[test]
fn fallback_input_passed_to_a_function() {
    assert!(parts("f(x) := x.version\nallow if f(input)").is_all());
}

#[test]
fn fallback_input_passed_to_a_builtin() {
    assert!(parts(r#"allow if object.get(input, "version", null)"#).is_all());
    assert!(parts("allow if count(input) > 0").is_all());
}

#[test]
fn fallback_walk_of_input() {
    assert!(parts("allow if { walk(input, [p, v]); v == 1 }").is_all());
}

#[test]
fn fallback_json_marshal_of_input() {
    assert!(parts(r#"allow if contains(json.marshal(input), "admin")"#).is_all());
}

#[test]
fn fallback_input_bound_to_a_variable() {
    assert!(parts("allow if { x := input; x.version }").is_all());
}

#[test]
fn fallback_with_input_as() {
    assert!(parts("p if input.version\nallow if p with input as {}").is_all());
    assert!(parts("p if input.version\nallow if p with input.version as 1").is_all());
}

#[test]
fn fallback_iteration_over_input() {
    assert!(parts("allow if { some x in input; x }").is_all());
    assert!(parts("allow if { every x in input { x } }").is_all());
}

#[test]
fn fallback_import_of_input() {
    let p = scan_of(&["package t\nimport input\nallow if input.version"]).input_parts;
    assert!(p.is_all());
    // An alias of a subtree reads all of it.
    let p = scan_of(&[
        "package t\nimport input.attributes.request.http as req\nallow if req.method == \"GET\"",
    ])
    .input_parts;
    assert!(p.contains(P::HEADERS.union(P::METHOD).union(P::BODY)));
}

#[test]
fn reads_from_every_module_count() {
    // The decision rule reads only the principal; a helper package it
    // calls (a `data` rule in another module) reads a header.
    let p = scan_of(&[
        "package t\nallow if { data.lib.ok; input.attributes.source.principal }",
        "package lib\nok if input.attributes.request.http.headers[\"x-a\"]",
    ])
    .input_parts;
    assert_eq!(p, P::SOURCE_PRINCIPAL.union(P::HEADERS));
    // A test module's `with input as` makes it the whole document.
    let p = scan_of(&[
        "package t\nallow if input.attributes.source.principal",
        "package t_test\ntest_a if data.t.allow with input as {}",
    ])
    .input_parts;
    assert!(p.is_all());
}

fn impure(body: &str) -> Option<String> {
    let s = scan_of(&[&format!("package t\n{body}\n")]);
    first_impure_call(&s).map(str::to_string)
}

#[test]
fn pure_calls_and_user_functions_are_pure() {
    assert_eq!(
        impure(
            r#"f(x) := lower(x)
            allow if { startswith(f(input.attributes.request.http.path), "/a"); count([1]) == 1 }"#
        ),
        None
    );
}

#[test]
fn clock_randomness_network_and_output_are_impure() {
    for call in [
        "time.now_ns()",
        "rand.intn(\"k\", 10)",
        "uuid.rfc4122(\"k\")",
        "opa.runtime()",
        "http.send({\"method\": \"get\", \"url\": \"http://x\"})",
        "io.jwt.decode_verify(\"t\", {})",
        "print(\"x\")",
        "trace(\"x\")",
    ] {
        let body = format!("allow if {{ x := {call}; x }}");
        let name = call.split('(').next().unwrap();
        assert_eq!(impure(&body).as_deref(), Some(name), "{call}");
    }
    // Also from inside a user function.
    assert_eq!(
        impure("f(x) := time.now_ns() + x\nallow if f(1) > 0").as_deref(),
        Some("time.now_ns")
    );
}
