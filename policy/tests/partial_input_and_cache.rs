//! The input document built in part and the decision cache change no
//! answer: every policy of the OPA compatibility suite (`policy/compat/`)
//! and of `examples/policies/` is evaluated on requests made from its case
//! (and variations of them: other path, method, caller, host, an extra
//! header), once as the sidecar does (only the parts the policy reads, the
//! cache on, each request asked twice so the second answer is a hit when
//! cached) and once with the whole input document and no cache. The
//! decisions must be the same.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use http::{HeaderMap, HeaderName, HeaderValue};
use serde_json::Value as Json;
use usher_policy::{BodyInput, Decision, Limits, Policy, PolicySource, RegoVersion, RequestInput};

/// The fields of a `RequestInput`, owned.
#[derive(Clone)]
struct Request {
    principal: Option<String>,
    source: SocketAddr,
    destination_principal: String,
    destination: SocketAddr,
    method: String,
    path: String,
    host: String,
    scheme: String,
    protocol: String,
    headers: HeaderMap,
    id: String,
    body: Option<(String, bool)>,
    claims: Option<Json>,
}

fn socket(v: &Json, default: &str) -> SocketAddr {
    let s = &v["address"]["socketAddress"];
    match (s["address"].as_str(), s["portValue"].as_u64()) {
        (Some(a), Some(p)) => format!("{a}:{p}")
            .parse()
            .or_else(|_| format!("[{a}]:{p}").parse())
            .unwrap_or_else(|_| default.parse().unwrap()),
        _ => default.parse().unwrap(),
    }
}

/// A request as close to the case's OPA-Envoy input as `RequestInput` allows.
fn from_input(input: &Json) -> Request {
    let a = &input["attributes"];
    let http = &a["request"]["http"];
    let text = |v: &Json, default: &str| v.as_str().unwrap_or(default).to_string();
    let mut headers = HeaderMap::new();
    if let Some(h) = http["headers"].as_object() {
        for (k, v) in h {
            let (Ok(name), Some(Ok(value))) = (
                HeaderName::from_bytes(k.as_bytes()),
                v.as_str().map(HeaderValue::from_str),
            ) else {
                continue;
            };
            headers.append(name, value);
        }
    }
    Request {
        principal: a["source"]["principal"].as_str().map(str::to_string),
        source: socket(&a["source"], "10.0.0.1:5000"),
        destination_principal: text(
            &a["destination"]["principal"],
            "spiffe://mesh.local/ns/shop/sa/orders",
        ),
        destination: socket(&a["destination"], "10.0.0.2:15006"),
        method: text(&http["method"], "GET"),
        path: text(&http["path"], "/"),
        host: text(&http["host"], "orders"),
        scheme: text(&http["scheme"], "https"),
        protocol: text(&http["protocol"], "HTTP/1.1"),
        headers,
        id: text(&http["id"], "r1"),
        body: http["body"].as_str().map(|b| {
            (
                b.to_string(),
                input["truncated_body"].as_bool().unwrap_or(false),
            )
        }),
        claims: input["usher"]["jwt"].get("claims").cloned(),
    }
}

/// The case's request and variations of it.
fn variants(base: &Request) -> Vec<Request> {
    let mut out = vec![base.clone()];
    let mut with = |f: &dyn Fn(&mut Request)| {
        let mut r = base.clone();
        f(&mut r);
        out.push(r);
    };
    with(&|r| r.path = "/".into());
    with(&|r| r.path = format!("{}/", r.path));
    with(&|r| r.path = "/api/v1/items?page=2&q=a%20b".into());
    with(&|r| r.method = "POST".into());
    with(&|r| r.method = r.method.to_ascii_lowercase());
    with(&|r| r.principal = None);
    with(&|r| r.principal = Some("spiffe://mesh.local/ns/other/sa/x".into()));
    with(&|r| r.host = "other.svc".into());
    with(&|r| {
        r.headers.insert("x-extra", HeaderValue::from_static("1"));
    });
    with(&|r| r.headers.clear());
    with(&|r| r.id = "r2".into());
    out
}

fn evaluate(policy: &Policy, r: &Request) -> Decision {
    let body = r.body.as_ref().map(|(b, truncated)| BodyInput {
        bytes: bytes::Bytes::from(b.clone()),
        truncated: *truncated,
    });
    let input = RequestInput {
        source_principal: r.principal.as_deref(),
        source_address: r.source,
        destination_principal: &r.destination_principal,
        destination_address: r.destination,
        method: &r.method,
        path: &r.path,
        host: &r.host,
        scheme: &r.scheme,
        protocol: &r.protocol,
        headers: &r.headers,
        request_id: &r.id,
        body: body.as_ref(),
        jwt_claims: r.claims.as_ref(),
    };
    let mut d = policy.evaluate(&input);
    d.eval_micros = 0;
    d
}

struct Case {
    name: String,
    source: PolicySource,
    query: String,
    version: RegoVersion,
    input: Json,
}

fn compat_cases() -> Vec<Case> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("compat/cases");
    let mut out = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    for d in dirs {
        let rego: Vec<PathBuf> = {
            let mut v: Vec<PathBuf> = std::fs::read_dir(&d)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|x| x == "rego"))
                .collect();
            v.sort();
            v
        };
        let text: String = rego
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect();
        // Calls out over the network: not asked twice as often here.
        if text.contains("http.send") {
            continue;
        }
        let data: Vec<PathBuf> = [d.join("data.json")]
            .into_iter()
            .filter(|p| p.exists())
            .collect();
        let meta = std::fs::read_to_string(d.join("meta")).unwrap_or_default();
        out.push(Case {
            name: d.file_name().unwrap().to_string_lossy().into_owned(),
            source: PolicySource::from_files(&rego, &data).unwrap(),
            query: std::fs::read_to_string(d.join("query.txt"))
                .unwrap()
                .trim()
                .to_string(),
            version: if meta.contains("v0") {
                RegoVersion::V0
            } else {
                RegoVersion::V1
            },
            input: serde_json::from_str(&std::fs::read_to_string(d.join("input.json")).unwrap())
                .unwrap(),
        });
    }
    out
}

/// The example policies without their tests (whose `with input as` would
/// make every policy read the whole document).
fn example_cases() -> Vec<Case> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies");
    let examples = [
        ("service-allowlist", "data.usher.authz.allow"),
        ("method-path", "data.usher.routes.allow"),
        ("admin-only", "data.usher.admin.decision"),
        ("jwt-claims", "data.usher.jwt.allow"),
        ("envoy-style", "data.envoy.people.decision"),
    ];
    let mut out = Vec::new();
    for (folder, query) in examples {
        let files: Vec<PathBuf> = std::fs::read_dir(root.join(folder))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        let rego: Vec<PathBuf> = files
            .iter()
            .filter(|p| {
                p.extension().is_some_and(|x| x == "rego")
                    && !p.to_string_lossy().ends_with("_test.rego")
            })
            .cloned()
            .collect();
        let data: Vec<PathBuf> = files
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "json" || x == "yaml"))
            .cloned()
            .collect();
        // A request a policy of this kind is written for.
        let input = serde_json::json!({
            "attributes": {
                "source": {"principal": "spiffe://mesh.local/ns/shop/sa/frontend"},
                "request": {"http": {
                    "method": "GET", "path": "/admin/users?page=1", "host": "orders",
                    "headers": {"authorization": "Bearer x.y.z", "x-user": "alice"},
                }},
            },
            "usher": {"jwt": {"claims": {"sub": "alice", "scope": "orders:read"}}},
        });
        out.push(Case {
            name: format!("examples/{folder}"),
            source: PolicySource::from_files(&rego, &data).unwrap(),
            query: query.into(),
            version: RegoVersion::V1,
            input,
        });
    }
    out
}

#[test]
fn partial_input_and_cache_give_the_answers_of_the_whole_document() {
    let limits = Limits {
        eval_timeout: Duration::from_secs(10),
    };
    let mut compared = 0;
    let mut partial = 0;
    let mut cached = 0;
    let mut failures = Vec::new();
    for case in compat_cases().into_iter().chain(example_cases()) {
        let compile = || Policy::compile(&case.source, &case.query, case.version, limits);
        let (Ok(fast), Ok(whole)) = (compile(), compile()) else {
            continue; // a compile error is the compat suite's business
        };
        let fast = fast.with_decision_cache(64);
        let whole = whole.with_whole_input();
        partial += usize::from(!fast.input_parts().is_all());
        cached += usize::from(fast.decision_cache_entries() > 0);
        for r in variants(&from_input(&case.input)) {
            let want = format!("{:?}", evaluate(&whole, &r));
            for attempt in ["first", "second"] {
                let got = format!("{:?}", evaluate(&fast, &r));
                if got != want {
                    failures.push(format!(
                        "{} ({attempt}, {} {} {:?}):\n  whole: {want}\n  fast:  {got}",
                        case.name, r.method, r.path, r.principal
                    ));
                }
            }
            compared += 1;
        }
    }
    println!("{compared} requests compared; {partial} policies built in part, {cached} cached");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The comparison is only worth something if the fast paths were taken.
    assert!(partial > 50, "{partial}");
    assert!(cached > 20, "{cached}");
}
