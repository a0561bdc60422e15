//! The per-decision cost of usher's Rego authorization: `RequestInput` →
//! `Decision` (building the OPA-Envoy input document and evaluating), for a
//! role-based policy over 1,000 principals (SPIFFE IDs, each with a role)
//! and 100 path prefixes (10 roles × 10 prefixes), on regorus' compiled VM
//! (RVM) and on its interpreter, for an allowed and a denied request.
//!
//! Run: `cargo bench -p usher-benches --bench policy`. Before criterion's
//! runs it prints median / p99 / p99.9 of 100,000 timed single decisions per
//! variant (criterion reports means over batches, not tails).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, Criterion};
use http::header::{HeaderMap, HeaderValue};
use usher_policy::{
    EvalPath, Limits, Policy, PolicySource, RegoVersion, RequestInput, DEFAULT_QUERY,
};

const POLICY: &str = r#"package usher.authz

default allow := false

allow if {
    role := data.principals[input.attributes.source.principal]
    some prefix in data.role_prefixes[role]
    startswith(input.attributes.request.http.path, prefix)
}
"#;

fn principal(i: usize) -> String {
    format!("spiffe://mesh.bench/ns/team{}/sa/service-{i}", i % 20)
}

fn source() -> PolicySource {
    let principals: serde_json::Map<String, serde_json::Value> = (0..1000)
        .map(|i| (principal(i), serde_json::json!(format!("role-{}", i % 10))))
        .collect();
    let role_prefixes: serde_json::Map<String, serde_json::Value> = (0..10)
        .map(|r| {
            let prefixes: Vec<String> = (0..10).map(|p| format!("/api/r{r}/area{p}/")).collect();
            (format!("role-{r}"), serde_json::json!(prefixes))
        })
        .collect();
    PolicySource {
        policies: vec![("authz.rego".into(), POLICY.into())],
        data: vec![(
            "roles.json".into(),
            serde_json::json!({ "principals": principals, "role_prefixes": role_prefixes }),
        )],
    }
}

fn typical_headers() -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in [
        ("host", "orders:8080"),
        ("user-agent", "curl/8.5.0"),
        ("accept", "*/*"),
        ("content-type", "application/json"),
        ("content-length", "42"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("x-request-id", "7f8e2c1a-5b7d-4d0e-9a51-2f4e8b1c3d6a"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://mesh.bench/ns/shop/sa/orders;URI=spiffe://mesh.bench/ns/team0/sa/service-500",
        ),
    ] {
        h.insert(k, HeaderValue::from_static(v));
    }
    h
}

struct Requests {
    headers: HeaderMap,
    caller: String,
}

impl Requests {
    fn input<'a>(&'a self, path: &'a str) -> RequestInput<'a> {
        RequestInput {
            source_principal: Some(&self.caller),
            source_address: "10.0.0.7:41234".parse().unwrap(),
            destination_principal: "spiffe://mesh.bench/ns/shop/sa/orders",
            destination_address: "10.0.0.8:15006".parse().unwrap(),
            method: "GET",
            path,
            host: "orders:8080",
            scheme: "https",
            protocol: "HTTP/1.1",
            headers: &self.headers,
            request_id: "7f8e2c1a-5b7d-4d0e-9a51-2f4e8b1c3d6a",
            body: None,
            jwt_claims: None,
        }
    }
}

// service-500 has role-0: the last of its prefixes allows, no prefix of role-0 matches r9.
const ALLOWED: &str = "/api/r0/area9/orders/17?expand=items";
const DENIED: &str = "/api/r9/area0/orders/17";

fn policies() -> [(&'static str, Policy); 2] {
    let rvm =
        Policy::compile(&source(), DEFAULT_QUERY, RegoVersion::V1, Limits::default()).unwrap();
    assert_eq!(
        rvm.eval_path(),
        EvalPath::Rvm,
        "{:?}",
        rvm.rvm_unavailable()
    );
    let interp = Policy::compile(&source(), DEFAULT_QUERY, RegoVersion::V1, Limits::default())
        .unwrap()
        .with_interpreter();
    [("rvm", rvm), ("interpreter", interp)]
}

fn requests() -> Requests {
    Requests {
        headers: typical_headers(),
        caller: principal(500),
    }
}

/// Decisions kept per thread in the cache cases (the proxy's default).
const CACHE_ENTRIES: usize = 2048;

fn bench_policy(c: &mut Criterion) {
    let r = requests();
    c.bench_function("policy/input document only", |b| {
        b.iter(|| black_box(r.input(black_box(ALLOWED)).to_value()))
    });
    let [(_, rvm), _] = policies();
    c.bench_function("policy/input document only, parts the policy reads", |b| {
        b.iter(|| black_box(rvm.input_document(&r.input(black_box(ALLOWED)))))
    });
    let whole = rvm.with_whole_input();
    c.bench_function("policy/rvm/allowed, whole input document", |b| {
        b.iter(|| black_box(whole.evaluate(&r.input(black_box(ALLOWED)))))
    });
    let [(_, rvm), (_, interp)] = policies();
    for (name, policy) in [("rvm", rvm), ("interpreter", interp)] {
        let cached = policy.with_decision_cache(CACHE_ENTRIES);
        assert_eq!(cached.decision_cache_entries(), CACHE_ENTRIES);
        assert!(cached.evaluate(&r.input(ALLOWED)).allowed);
        c.bench_function(&format!("policy/{name}/allowed, cache hit"), |b| {
            b.iter(|| black_box(cached.evaluate(&r.input(black_box(ALLOWED)))))
        });
        // Every request a path not seen for 16 x the cache's size: always a
        // miss (key, lookup, evaluation, insert, evictions).
        let paths: Vec<String> = (0..16 * CACHE_ENTRIES)
            .map(|i| format!("/api/r0/area9/orders/{i}"))
            .collect();
        let mut next = 0;
        c.bench_function(&format!("policy/{name}/allowed, cache miss"), |b| {
            b.iter(|| {
                next = (next + 1) % paths.len();
                black_box(cached.evaluate(&r.input(black_box(&paths[next]))))
            })
        });
    }
    for (name, policy) in policies() {
        assert!(policy.evaluate(&r.input(ALLOWED)).allowed);
        assert!(!policy.evaluate(&r.input(DENIED)).allowed);
        c.bench_function(&format!("policy/{name}/allowed"), |b| {
            b.iter(|| black_box(policy.evaluate(&r.input(black_box(ALLOWED)))))
        });
        c.bench_function(&format!("policy/{name}/denied"), |b| {
            b.iter(|| black_box(policy.evaluate(&r.input(black_box(DENIED)))))
        });
    }
}

/// 100,000 single decisions per variant, each timed: median and tails.
fn percentiles() {
    const N: usize = 100_000;
    let r = requests();
    println!("policy: {N} timed decisions per variant (1,000 principals, 100 prefixes)");
    for (name, policy) in policies() {
        for (kind, path) in [("allowed", ALLOWED), ("denied", DENIED)] {
            for _ in 0..10_000 {
                black_box(policy.evaluate(&r.input(path)));
            }
            let mut times: Vec<Duration> = Vec::with_capacity(N);
            for _ in 0..N {
                let start = Instant::now();
                let d = policy.evaluate(&r.input(black_box(path)));
                times.push(start.elapsed());
                black_box(d);
            }
            times.sort();
            let at = |q: f64| times[((N as f64 * q) as usize).min(N - 1)];
            println!(
                "  {name:<11} {kind:<7}  median {:>8.2?}  p99 {:>8.2?}  p99.9 {:>8.2?}  max {:>8.2?}",
                at(0.5),
                at(0.99),
                at(0.999),
                times[N - 1]
            );
        }
    }
}

criterion_group!(benches, bench_policy);

fn main() {
    // USHER_BENCH_NO_PERCENTILES=1 skips the timed loop (when profiling one benchmark).
    let quick = std::env::args().any(|a| a == "--test" || a == "--list")
        || std::env::var_os("USHER_BENCH_NO_PERCENTILES").is_some();
    if !quick {
        percentiles();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
