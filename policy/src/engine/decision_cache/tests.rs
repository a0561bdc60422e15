//! The decision cache: a cached decision is the uncached one, a reload
//! starts afresh, only policies whose decision depends on the keyed fields
//! alone are cached, requests that differ in a field the policy reads
//! never share an entry, and the cache stays bounded.

use http::{HeaderMap, HeaderValue};

use super::*;
use crate::engine::{Limits, Policy, PolicySource, RegoVersion, DEFAULT_QUERY};

const PEER: &str = "spiffe://mesh.local/ns/shop/sa/frontend";

fn source(rego: &str, data: serde_json::Value) -> PolicySource {
    PolicySource {
        policies: vec![("authz.rego".into(), rego.into())],
        data: vec![("data.json".into(), data)],
    }
}

fn compile_with(rego: &str, data: serde_json::Value) -> Policy {
    Policy::compile(
        &source(rego, data),
        DEFAULT_QUERY,
        RegoVersion::V1,
        Limits::default(),
    )
    .unwrap()
}

fn compile(rego: &str) -> Policy {
    compile_with(rego, serde_json::json!({}))
}

fn request<'a>(headers: &'a HeaderMap, method: &'a str, path: &'a str) -> RequestInput<'a> {
    RequestInput {
        source_principal: Some(PEER),
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

/// Everything but the time taken.
fn same(a: &Decision, b: &Decision) -> bool {
    let strip = |d: &Decision| {
        let mut d = d.clone();
        d.eval_micros = 0;
        format!("{d:?}")
    };
    strip(a) == strip(b)
}

/// The number of decisions this thread holds for `policy`.
fn cached(policy: &Policy) -> usize {
    with_cache(
        policy.id,
        &policy.alive,
        policy.decision_cache_entries(),
        |c| c.len(),
    )
    .unwrap()
}

const EXACT: &str = r#"package usher.authz

default allow := false

allow if {
    data.allowed[input.attributes.source.principal][input.attributes.request.http.method][input.attributes.request.http.host] == input.attributes.request.http.path
}
"#;

#[test]
fn a_cached_decision_is_the_uncached_one() {
    let rego = r#"package usher.authz

default decision := {"allowed": false, "http_status": 401, "body": "no"}

decision := {"allowed": true, "headers": {"x-role": role}} if {
    role := data.roles[input.attributes.source.principal]
    input.parsed_path[0] == "api"
    input.parsed_query.v == ["1"]
}
"#;
    let data = serde_json::json!({"roles": {PEER: "reader"}});
    let query = "data.usher.authz.decision";
    let src = source(rego, data);
    let compile = || Policy::compile(&src, query, RegoVersion::V1, Limits::default()).unwrap();
    let plain = compile().with_whole_input();
    let cache = compile().with_decision_cache(64);
    assert_eq!(cache.decision_cache_unavailable(), None);
    assert_eq!(
        cache.input_parts(),
        InputParts::SOURCE_PRINCIPAL
            .union(InputParts::PARSED_PATH)
            .union(InputParts::PARSED_QUERY)
    );
    let h = HeaderMap::new();
    for path in ["/api/x?v=1", "/api/x?v=2", "/web", "/api?v=1&v=1"] {
        for peer in [Some(PEER), None, Some("spiffe://other")] {
            let r = RequestInput {
                source_principal: peer,
                ..request(&h, "GET", path)
            };
            let want = plain.evaluate(&r);
            let miss = cache.evaluate(&r);
            let hit = cache.evaluate(&r);
            assert!(same(&want, &miss), "{path} {peer:?}: {want:?} vs {miss:?}");
            assert!(same(&want, &hit), "{path} {peer:?}: {want:?} vs {hit:?}");
        }
    }
    assert!(cache.evaluate(&request(&h, "GET", "/api/x?v=1")).allowed);
    assert_eq!(cached(&cache), 12);
}

#[test]
fn a_reload_starts_with_an_empty_cache() {
    let h = HeaderMap::new();
    let r = request(&h, "GET", "/a");
    let data = |path: &str| serde_json::json!({"allowed": {PEER: {"GET": {"orders": path}}}});
    let v1 = compile_with(EXACT, data("/a")).with_decision_cache(64);
    assert!(v1.evaluate(&r).allowed);
    assert!(v1.evaluate(&r).allowed);
    // New data, same policy text: a new revision, a new cache.
    let v2 = compile_with(EXACT, data("/b")).with_decision_cache(64);
    assert_ne!(v1.revision(), v2.revision());
    assert!(!v2.evaluate(&r).allowed);
    assert!(!v2.evaluate(&r).allowed);
    // Even the same revision compiled again does not share the cache.
    let v1_again = compile_with(EXACT, data("/a")).with_decision_cache(64);
    assert_eq!(cached(&v1_again), 0);
    assert!(v1_again.evaluate(&r).allowed);
    // The old policy still answers from its own.
    assert!(v1.evaluate(&r).allowed);
    // A dropped policy's cache is freed at the thread's next use.
    let before = CACHES.with(|c| c.borrow().len());
    drop(v1);
    let _ = v2.evaluate(&r);
    assert_eq!(CACHES.with(|c| c.borrow().len()), before - 1);
}

#[test]
fn requests_differing_in_a_field_read_never_share_an_entry() {
    let h = HeaderMap::new();
    let data = serde_json::json!({"allowed": {PEER: {"GET": {"orders": "/a"}}}});
    let p = compile_with(EXACT, data).with_decision_cache(64);
    let allowed = request(&h, "GET", "/a");
    assert!(p.evaluate(&allowed).allowed);
    assert!(p.evaluate(&allowed).allowed);
    let variants = [
        request(&h, "GET", "/a/"),
        request(&h, "GET", "/a?x"),
        request(&h, "GET", "/A"),
        request(&h, "get", "/a"),
        request(&h, "GE", "T/a"),
        RequestInput {
            host: "Orders",
            ..request(&h, "GET", "/a")
        },
        RequestInput {
            host: "orders:80",
            ..request(&h, "GET", "/a")
        },
        RequestInput {
            source_principal: None,
            ..request(&h, "GET", "/a")
        },
        RequestInput {
            source_principal: Some(""),
            ..request(&h, "GET", "/a")
        },
        RequestInput {
            source_principal: Some("spiffe://mesh.local/ns/shop/sa/frontend2"),
            ..request(&h, "GET", "/a")
        },
    ];
    let mut keys = vec![key(p.input_parts(), &allowed).unwrap()];
    for r in &variants {
        // Asked twice: the second answer would come from a shared entry.
        assert!(!p.evaluate(r).allowed, "{} {} {}", r.method, r.path, r.host);
        assert!(!p.evaluate(r).allowed, "{} {} {}", r.method, r.path, r.host);
        let k = key(p.input_parts(), r).unwrap();
        assert!(!keys.contains(&k), "{} {} {}", r.method, r.path, r.host);
        keys.push(k);
    }
    assert_eq!(cached(&p), 1 + variants.len());
}

#[test]
fn requests_differing_only_in_fields_not_read_share_an_entry() {
    let data = serde_json::json!({"allowed": {PEER: {"GET": {"orders": "/a"}}}});
    let p = compile_with(EXACT, data).with_decision_cache(64);
    let mut h2 = HeaderMap::new();
    h2.insert("x-user", HeaderValue::from_static("mallory"));
    let h = HeaderMap::new();
    let a = request(&h, "GET", "/a");
    let b = RequestInput {
        request_id: "r2",
        source_address: "10.9.9.9:6000".parse().unwrap(),
        protocol: "HTTP/2",
        ..request(&h2, "GET", "/a")
    };
    assert_eq!(key(p.input_parts(), &a), key(p.input_parts(), &b));
    assert!(p.evaluate(&a).allowed);
    assert!(p.evaluate(&b).allowed);
    assert_eq!(cached(&p), 1);
}

#[test]
fn a_policy_reading_headers_is_not_cached() {
    let rego = r#"package usher.authz

default allow := false

allow if {
    input.attributes.source.principal == "spiffe://mesh.local/ns/shop/sa/frontend"
    input.attributes.request.http.path == "/a"
    input.attributes.request.http.headers["x-user"] == "alice"
}
"#;
    let p = compile(rego).with_decision_cache(64);
    let why = p.decision_cache_unavailable().unwrap();
    assert!(why.contains("headers"), "{why}");
    assert_eq!(p.decision_cache_entries(), 0);
    let mut alice = HeaderMap::new();
    alice.insert("x-user", HeaderValue::from_static("alice"));
    let mut bob = HeaderMap::new();
    bob.insert("x-user", HeaderValue::from_static("bob"));
    // Same principal and path, different header: different answers, in
    // either order.
    assert!(p.evaluate(&request(&alice, "GET", "/a")).allowed);
    assert!(!p.evaluate(&request(&bob, "GET", "/a")).allowed);
    assert!(p.evaluate(&request(&alice, "GET", "/a")).allowed);
    assert_eq!(cached(&p), 0);
}

#[test]
fn per_request_fields_are_never_keyed() {
    for (read, what) in [
        ("input.attributes.request.http.id", "id"),
        ("input.attributes.source.address", "address"),
        ("input.attributes.source", "address"),
        ("input.attributes.request.http.body", "body"),
        ("input.parsed_body", "parsed_body"),
        ("input.usher.jwt.claims.sub", "usher"),
        ("input.attributes.request.http", "headers"),
    ] {
        let rego = format!("package usher.authz\n\nallow if {read}\n");
        let p = compile(&rego).with_decision_cache(64);
        let why = p.decision_cache_unavailable().unwrap_or_default();
        assert!(why.contains(what), "{read}: {why:?}");
    }
}

#[test]
fn a_policy_calling_a_builtin_that_is_not_pure_is_not_cached() {
    let rego = r#"package usher.authz

allow if {
    input.attributes.request.http.path == "/a"
    time.now_ns() % 2 == 0
}
"#;
    let p = compile(rego).with_decision_cache(64);
    let why = p.decision_cache_unavailable().unwrap();
    assert!(why.contains("time.now_ns"), "{why}");
    let h = HeaderMap::new();
    for _ in 0..4 {
        let _ = p.evaluate(&request(&h, "GET", "/a"));
    }
    assert_eq!(cached(&p), 0);

    // `with` replaces functions or data for a query: not cached either.
    let rego = r#"package usher.authz

f(x) := x
allow if f(input.attributes.request.http.path) == "/a" with data.x as 1
"#;
    let p = compile(rego).with_decision_cache(64);
    assert!(p.decision_cache_unavailable().unwrap().contains("with"));
}

#[test]
fn the_cache_stays_bounded() {
    let mut c = DecisionCache::new(8);
    for i in 0..1000u32 {
        c.insert(i.to_le_bytes().into(), Decision::deny("x"));
        assert!(c.len() <= 8);
    }
    // The most recent are kept.
    assert!(c.get(&999u32.to_le_bytes()).is_some());
    assert!(c.get(&0u32.to_le_bytes()).is_none());

    let data = serde_json::json!({"allowed": {PEER: {"GET": {"orders": "/a"}}}});
    let p = compile_with(EXACT, data).with_decision_cache(16);
    let h = HeaderMap::new();
    let paths: Vec<String> = (0..200).map(|i| format!("/a/{i}")).collect();
    for path in &paths {
        assert!(!p.evaluate(&request(&h, "GET", path)).allowed);
        assert!(cached(&p) <= 16);
    }
    // A path too long for a key: evaluated, not kept.
    let long = format!("/a/{}", "x".repeat(2000));
    let before = cached(&p);
    assert!(!p.evaluate(&request(&h, "GET", &long)).allowed);
    assert!(key(p.input_parts(), &request(&h, "GET", &long)).is_none());
    assert_eq!(cached(&p), before);
}

#[test]
fn off_by_default_and_with_zero_entries() {
    let data = serde_json::json!({"allowed": {PEER: {"GET": {"orders": "/a"}}}});
    let h = HeaderMap::new();
    for p in [
        compile_with(EXACT, data.clone()),
        compile_with(EXACT, data.clone()).with_decision_cache(0),
    ] {
        assert_eq!(p.decision_cache_entries(), 0);
        assert!(p.evaluate(&request(&h, "GET", "/a")).allowed);
        assert_eq!(cached(&p), 0);
    }
}

#[test]
fn a_failed_evaluation_is_not_cached() {
    let rego = r#"package usher.authz

allow := true if input.attributes.request.http.method == "GET"
allow := false if input.attributes.request.http.path == "/conflict"
"#;
    // Two values for `allow` on one path: an evaluation error (on the
    // interpreter; regorus' RVM answers undefined here).
    let p = compile(rego).with_interpreter().with_decision_cache(64);
    assert_eq!(p.decision_cache_unavailable(), None);
    let h = HeaderMap::new();
    let d = p.evaluate(&request(&h, "GET", "/conflict"));
    assert!(!d.allowed);
    assert!(
        d.reason
            .as_deref()
            .unwrap_or_default()
            .starts_with("evaluation error"),
        "{:?} {:?}",
        p.eval_path(),
        d.reason
    );
    assert_eq!(cached(&p), 0, "{:?}", d.reason);
    // A complete evaluation of the same policy is kept.
    assert!(p.evaluate(&request(&h, "GET", "/ok")).allowed);
    assert_eq!(cached(&p), 1);
}
