use super::*;

fn decide(json: &str) -> Decision {
    Decision::from_value(&Value::from_json_str(json).unwrap())
}

fn pairs(h: &[(HeaderName, HeaderValue)]) -> Vec<(String, String)> {
    h.iter()
        .map(|(n, v)| (n.to_string(), v.to_str().unwrap().to_string()))
        .collect()
}

#[test]
fn booleans() {
    let d = decide("true");
    assert!(d.allowed);
    assert_eq!(d.reason, None);
    let d = decide("false");
    assert!(!d.allowed);
    assert_eq!(d.http_status, 403);
    assert_eq!(d.body, None);
    assert_eq!(d.reason.as_deref(), Some("policy denied"));
}

#[test]
fn undefined_and_other_types_fail_closed() {
    let d = Decision::from_value(&Value::Undefined);
    assert!(!d.allowed);
    assert_eq!(d.http_status, 403);
    assert_eq!(d.reason.as_deref(), Some("undefined result"));
    for (json, kind) in [
        ("\"yes\"", "a string"),
        ("1", "a number"),
        ("null", "null"),
        ("[true]", "an array"),
    ] {
        let d = decide(json);
        assert!(!d.allowed, "{json}");
        assert_eq!(d.http_status, 403);
        assert_eq!(
            d.reason.as_deref(),
            Some(format!("the result is {kind}, not a boolean or an object").as_str())
        );
    }
    let set = Value::from(std::collections::BTreeSet::from([Value::from(true)]));
    assert!(!Decision::from_value(&set).allowed);
}

#[test]
fn allowed_must_be_a_boolean() {
    let d = decide(r#"{"allowed": "true"}"#);
    assert!(!d.allowed);
    assert_eq!(d.http_status, 403);
    assert_eq!(d.reason.as_deref(), Some("`allowed` is not a boolean"));
    let d = decide(r#"{"allowed": 1, "http_status": 200}"#);
    assert!(!d.allowed);
    assert_eq!(d.http_status, 403);
    let d = decide(r#"{"http_status": 200}"#);
    assert!(!d.allowed);
    assert_eq!(
        d.reason.as_deref(),
        Some("the decision object has no `allowed`")
    );
}

#[test]
fn allowed_object_with_headers() {
    let d = decide(
        r#"{"allowed": true,
            "headers": {"x-user": "alice", "x-roles": ["a", "b"]},
            "response_headers_to_add": {"x-policy": "v1"},
            "request_headers_to_remove": ["authorization", "Cookie"],
            "http_status": "ignored when allowed",
            "body": 7,
            "dynamic_metadata": {"ignored": true}}"#,
    );
    assert!(d.allowed);
    assert_eq!(d.reason, None);
    assert_eq!(
        pairs(&d.headers),
        [("x-roles", "a"), ("x-roles", "b"), ("x-user", "alice")]
            .map(|(a, b)| (a.to_string(), b.to_string()))
    );
    assert_eq!(
        pairs(&d.response_headers_to_add),
        [("x-policy".to_string(), "v1".to_string())]
    );
    let removed: Vec<&str> = d
        .request_headers_to_remove
        .iter()
        .map(|n| n.as_str())
        .collect();
    assert_eq!(removed, ["authorization", "cookie"]);
    // The array-of-objects form opa-envoy-plugin accepts.
    let d = decide(r#"{"allowed": true, "headers": [{"a": "1"}, {"a": "2", "b": "3"}]}"#);
    assert_eq!(pairs(&d.headers).len(), 3);
}

#[test]
fn denied_object_status_and_body() {
    let d = decide(
        r#"{"allowed": false, "http_status": 401, "body": "log in first",
            "headers": {"www-authenticate": "Bearer"}}"#,
    );
    assert!(!d.allowed);
    assert_eq!(d.http_status, 401);
    assert_eq!(d.body.as_deref(), Some("log in first"));
    assert_eq!(
        pairs(&d.headers),
        [("www-authenticate".to_string(), "Bearer".to_string())]
    );
    assert_eq!(d.reason.as_deref(), Some("policy denied"));
    // Absent status: 403.
    let d = decide(r#"{"allowed": false}"#);
    assert_eq!((d.http_status, d.body), (403, None));
    assert_eq!(
        decide(r#"{"allowed": false, "http_status": 429.0}"#).http_status,
        429
    );
}

#[test]
fn invalid_status_and_body_are_logged_and_answered_403() {
    for bad in ["99", "600", "404.5", "-1", "\"404\"", "1e10"] {
        let d = decide(&format!(r#"{{"allowed": false, "http_status": {bad}}}"#));
        assert!(!d.allowed);
        assert_eq!(d.http_status, 403, "{bad}");
        let reason = d.reason.unwrap();
        assert!(reason.starts_with("policy denied; "), "{reason}");
        assert!(reason.contains("http_status"), "{reason}");
    }
    let d = decide(r#"{"allowed": false, "body": {"msg": "no"}}"#);
    assert_eq!(d.body, None);
    assert!(d
        .reason
        .unwrap()
        .contains("body is an object, not a string"));
}

#[test]
fn malformed_headers_fail_closed_even_when_allowed() {
    for (json, field) in [
        (
            r#"{"allowed": true, "headers": {"bad name": "v"}}"#,
            "headers",
        ),
        (
            r#"{"allowed": true, "headers": {"x": "line\nbreak"}}"#,
            "headers",
        ),
        (r#"{"allowed": true, "headers": {"x": 1}}"#, "headers"),
        (
            r#"{"allowed": true, "headers": {"x": ["ok", 2]}}"#,
            "headers",
        ),
        (r#"{"allowed": true, "headers": "x: y"}"#, "headers"),
        (
            r#"{"allowed": true, "response_headers_to_add": {"x": null}}"#,
            "response_headers_to_add",
        ),
        (
            r#"{"allowed": true, "request_headers_to_remove": "authorization"}"#,
            "request_headers_to_remove",
        ),
        (
            r#"{"allowed": true, "request_headers_to_remove": ["ok", 3]}"#,
            "request_headers_to_remove",
        ),
        (
            r#"{"allowed": false, "http_status": 401, "headers": {"": "v"}}"#,
            "headers",
        ),
    ] {
        let d = decide(json);
        assert!(!d.allowed, "{json}");
        assert_eq!(d.http_status, 403, "{json}");
        assert!(d.headers.is_empty());
        let reason = d.reason.unwrap();
        assert!(
            reason.starts_with(&format!("invalid `{field}`")),
            "{json}: {reason}"
        );
    }
}

#[test]
fn deny_constructor() {
    let d = Decision::deny("evaluation error: boom");
    assert!(!d.allowed);
    assert_eq!(d.http_status, 403);
    assert_eq!(d.reason.as_deref(), Some("evaluation error: boom"));
}
