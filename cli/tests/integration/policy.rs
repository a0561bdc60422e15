//! Rego authorization through the real sidecar pair: policies written to
//! disk, loaded by `usher.yaml`, evaluated by regorus on every request.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::support::backend::Backend;
use crate::support::client::{get1, h1, read};
use crate::support::{assert_status, id, replace_file, wait_until, Mesh};
use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::Full;

const POLICY: &str = "policy:\n  files: [authz.rego]\n";

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

async fn admin_policy(mesh: &Mesh) -> serde_json::Value {
    let body = assert_status(
        get1(mesh.b.addrs.admin, "admin", "/policy").await,
        StatusCode::OK,
        "GET /policy (Host: admin)",
    );
    json(&body)
}

async fn send(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &'static [u8],
) -> (StatusCode, String, http::HeaderMap) {
    let mut send = h1::<Full<Bytes>>(addr).await;
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", "b");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Full::new(Bytes::from_static(body))).unwrap())
        .await
        .unwrap();
    let headers = resp.headers().clone();
    let (status, body) = read(resp).await;
    (status, body, headers)
}

#[tokio::test]
async fn allow_list_by_spiffe_id() {
    let policy = format!(
        "package usher.authz\n\ndefault allow := false\n\nallow if input.attributes.source.principal == \"{}\"\n",
        id("a")
    );
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", &policy)], POLICY).await;
    assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        StatusCode::OK,
        "a is on the list",
    );

    let c = mesh.client("c").await;
    let body = assert_status(
        get1(c.addrs.outbound, "b", "/hold").await,
        StatusCode::FORBIDDEN,
        "c is not",
    );
    assert_eq!(body, "usher: request denied by policy\n");
    assert_eq!(
        app.held.available_permits(),
        0,
        "a denied request never reaches the app"
    );
}

#[tokio::test]
async fn method_and_path_rules() {
    let policy = r#"package usher.authz

default allow := false

http := input.attributes.request.http

allow if {
    http.method == "GET"
    startswith(http.path, "/headers")
}

allow if {
    http.method == "POST"
    input.parsed_path == ["count"]
    input.parsed_query.dry_run == ["true"]
}
"#;
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], POLICY).await;
    let out = mesh.a.addrs.outbound;
    assert_eq!(
        send(out, "GET", "/headers?x=1", &[], b"").await.0,
        StatusCode::OK
    );
    assert_eq!(
        send(out, "DELETE", "/headers", &[], b"").await.0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(out, "POST", "/count?dry_run=true", &[], b"abc")
            .await
            .0,
        StatusCode::OK
    );
    assert_eq!(
        send(out, "POST", "/count?dry_run=false", &[], b"abc")
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(out, "GET", "/other", &[], b"").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn admin_only_path() {
    let policy = format!(
        r#"package usher.authz

default allow := false

admins := {{"{ops}"}}

allow if not startswith(input.attributes.request.http.path, "/admin")

allow if {{
    startswith(input.attributes.request.http.path, "/admin")
    input.attributes.source.principal in admins
}}
"#,
        ops = id("ops")
    );
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", &policy)], POLICY).await;
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0,
        StatusCode::OK
    );
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/admin/users").await.0,
        StatusCode::FORBIDDEN
    );
    let ops = mesh.client("ops").await;
    // The app has no /admin route: 404 from the app means the policy let it through.
    assert_eq!(
        get1(ops.addrs.outbound, "b", "/admin/users").await.0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn object_decision_changes_headers_both_ways_and_denies_with_the_policys_status() {
    let policy = r#"package usher.authz

default decision := {"allowed": false, "http_status": 418, "body": "teapot says no", "headers": {"x-deny-reason": "not /headers"}}

decision := {
    "allowed": true,
    "headers": {"x-authz-user": "a-user"},
    "request_headers_to_remove": ["x-secret"],
    "response_headers_to_add": {"x-policy": "v1"},
} if startswith(input.attributes.request.http.path, "/headers")
"#;
    let config = format!("{POLICY}  query: data.usher.authz.decision\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    let (status, body, headers) = send(
        mesh.a.addrs.outbound,
        "GET",
        "/headers",
        &[("x-secret", "hunter2")],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = json(&body);
    assert_eq!(
        seen["x-authz-user"], "a-user",
        "the app sees the header the policy added"
    );
    assert!(
        seen.get("x-secret").is_none(),
        "the header the policy removed is gone: {body}"
    );
    assert_eq!(
        headers["x-policy"], "v1",
        "the caller sees the response header the policy added"
    );

    let (status, body, headers) = send(mesh.a.addrs.outbound, "GET", "/hold", &[], b"").await;
    assert_eq!(status, StatusCode::IM_A_TEAPOT);
    assert_eq!(body, "teapot says no");
    assert_eq!(headers["x-deny-reason"], "not /headers");
    assert_eq!(app.held.available_permits(), 0);
}

#[tokio::test]
async fn undefined_result_and_non_boolean_allowed_fail_closed() {
    let policy = r#"package usher.authz

decision := {"allowed": "yes"} if input.attributes.request.http.path == "/string"
"#;
    let config = format!("{POLICY}  query: data.usher.authz.decision\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    let body = assert_status(
        get1(mesh.a.addrs.outbound, "b", "/string").await,
        StatusCode::FORBIDDEN,
        "GET /string (Host: b)",
    );
    assert!(
        !body.contains("boolean"),
        "the reason is logged, not sent: {body}"
    );
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/undefined").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn audit_mode_logs_but_lets_denied_requests_through() {
    let policy = "package usher.authz\n\ndefault allow := false\n";
    let config = format!("{POLICY}  mode: audit\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0,
        StatusCode::OK
    );
    assert_eq!(admin_policy(&mesh).await["mode"], "audit");
}

#[tokio::test]
async fn jwt_claim_rule_with_io_jwt_decode_verify() {
    let policy = r#"package usher.authz

default allow := false

token := t if {
    auth := input.attributes.request.http.headers.authorization
    startswith(auth, "Bearer ")
    t := substring(auth, 7, -1)
}

allow if {
    [valid, _, payload] := io.jwt.decode_verify(token, {"secret": "s3cret", "iss": "https://login.test"})
    valid
    payload.role == "reader"
}
"#;
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], POLICY).await;
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let sign = |claims: serde_json::Value, key: &[u8]| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(key).unwrap(),
        )
        .unwrap()
    };
    let reader = sign(
        serde_json::json!({"iss": "https://login.test", "role": "reader", "exp": exp}),
        b"s3cret",
    );
    let writer = sign(
        serde_json::json!({"iss": "https://login.test", "role": "writer", "exp": exp}),
        b"s3cret",
    );
    let forged = sign(
        serde_json::json!({"iss": "https://login.test", "role": "reader", "exp": exp}),
        b"guess",
    );
    let out = mesh.a.addrs.outbound;
    let bearer = |t: &str| format!("Bearer {t}");
    assert_eq!(
        send(
            out,
            "GET",
            "/headers",
            &[("authorization", &bearer(&reader))],
            b""
        )
        .await
        .0,
        StatusCode::OK
    );
    assert_eq!(
        send(
            out,
            "GET",
            "/headers",
            &[("authorization", &bearer(&writer))],
            b""
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(
            out,
            "GET",
            "/headers",
            &[("authorization", &bearer(&forged))],
            b""
        )
        .await
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        send(out, "GET", "/headers", &[], b"").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn body_rules_see_the_body_and_the_app_still_gets_all_of_it() {
    let policy = r#"package usher.authz

default allow := false

allow if {
    not input.truncated_body
    input.parsed_body.amount < 100
}

allow if {
    input.truncated_body
    startswith(input.attributes.request.http.body, "0123")
}
"#;
    let config = format!("{POLICY}  with_body:\n    max_bytes: 16\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    let out = mesh.a.addrs.outbound;
    let ct = [("content-type", "application/json")];
    let (status, body, _) = send(out, "POST", "/count", &ct, br#"{"amount": 5}"#).await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "13"));
    assert_eq!(
        send(out, "POST", "/count", &ct, br#"{"amount": 500}"#)
            .await
            .0,
        StatusCode::FORBIDDEN
    );
    // Longer than max_bytes: the policy sees the first 16 bytes, truncated;
    // the app gets every byte.
    let (status, body, _) = send(
        out,
        "POST",
        "/count",
        &[],
        b"0123456789abcdefghijklmnopqrstuvwxyz",
    )
    .await;
    assert_eq!((status, body.as_str()), (StatusCode::OK, "36"));
}

#[tokio::test]
async fn runaway_policy_is_cut_off_and_denied_without_harming_other_requests() {
    let policy = r#"package usher.authz

default allow := false

allow if input.attributes.request.http.path == "/headers"

allow if {
    input.attributes.request.http.path == "/loop"
    count([x | some x in numbers.range(1, 100000000)]) > 0
}
"#;
    let config = format!("{POLICY}  eval_timeout: 50ms\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    let out = mesh.a.addrs.outbound;
    let started = std::time::Instant::now();
    assert_status(
        get1(out, "b", "/loop").await,
        StatusCode::FORBIDDEN,
        "GET /loop (Host: b)",
    );
    // Bounded: not a speed assertion, only that the 50 ms limit (not the
    // hundred million iterations) ended it.
    assert!(started.elapsed() < Duration::from_secs(20));
    assert_status(
        get1(out, "b", "/headers").await,
        StatusCode::OK,
        "GET /headers (Host: b)",
    );
    assert_eq!(
        get1(mesh.b.addrs.admin, "admin", "/live").await.0,
        StatusCode::OK
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_under_continuous_requests_fails_none() {
    let v1 =
        "package usher.authz\n\ndecision := {\"allowed\": true, \"headers\": {\"x-rev\": \"1\"}}\n";
    let v2 =
        "package usher.authz\n\ndecision := {\"allowed\": true, \"headers\": {\"x-rev\": \"2\"}}\n";
    let config = format!("{POLICY}  query: data.usher.authz.decision\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", v1)], &config).await;
    let before = admin_policy(&mesh).await["revision"].clone();
    // The policy reads nothing of the request: every decision comes from the
    // decision cache after the first, so the swap below also shows that a
    // reload never answers from the previous revision's cache.
    let status = admin_policy(&mesh).await;
    assert_eq!(status["decision_cache"]["entries"], 2048, "{status}");

    let out = mesh.a.addrs.outbound;
    let failures = Arc::new(AtomicUsize::new(0));
    let sent = Arc::new(AtomicUsize::new(0));
    let seen_v2 = Arc::new(AtomicUsize::new(0));
    let stop = tokio_util::sync::CancellationToken::new();
    let load = {
        let (failures, sent, seen_v2, stop) = (
            failures.clone(),
            sent.clone(),
            seen_v2.clone(),
            stop.clone(),
        );
        tokio::spawn(async move {
            let mut conn = h1::<Full<Bytes>>(out).await;
            while !stop.is_cancelled() {
                let req = Request::get("/headers")
                    .header("host", "b")
                    .body(Full::default())
                    .unwrap();
                match conn.send_request(req).await {
                    Ok(resp) => {
                        let (status, body) = read(resp).await;
                        sent.fetch_add(1, Ordering::SeqCst);
                        if status != StatusCode::OK {
                            failures.fetch_add(1, Ordering::SeqCst);
                        } else if json(&body)["x-rev"] == "2" {
                            seen_v2.fetch_add(1, Ordering::SeqCst);
                        }
                    }
                    Err(_) => {
                        failures.fetch_add(1, Ordering::SeqCst);
                        conn = h1::<Full<Bytes>>(out).await;
                    }
                }
            }
        })
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            let s = sent.clone();
            async move { s.load(Ordering::SeqCst) > 20 }
        })
        .await
    );
    replace_file(&mesh.b_dir().join("authz.rego"), v2);
    let swapped = wait_until(Duration::from_secs(15), || {
        let s = seen_v2.clone();
        async move { s.load(Ordering::SeqCst) > 20 }
    })
    .await;
    stop.cancel();
    load.await.unwrap();
    assert!(swapped, "the new policy took effect without a restart");
    assert_eq!(
        failures.load(Ordering::SeqCst),
        0,
        "no request failed during the swap ({} sent)",
        sent.load(Ordering::SeqCst)
    );
    let status = admin_policy(&mesh).await;
    assert_ne!(status["revision"], before);
    assert_eq!(status["reloads"], 1);
}

/// A mesh whose b allows only `a`; then `authz.rego` is replaced by
/// `replacement`, which must be refused: returns the mesh and the error
/// `/policy` reports, once the old revision is seen to stay in force.
async fn reload_refused(app: std::net::SocketAddr, replacement: &str) -> (Mesh, String) {
    let good = format!(
        "package usher.authz\n\ndefault allow := false\n\nallow if input.attributes.source.principal == \"{}\"\n",
        id("a")
    );
    let mesh = Mesh::start_with(app, &[("authz.rego", &good)], POLICY).await;
    let before = admin_policy(&mesh).await;
    replace_file(&mesh.b_dir().join("authz.rego"), replacement);
    let admin = mesh.b.addrs.admin;
    let refused = wait_until(Duration::from_secs(15), || async move {
        let (_, body) = get1(admin, "admin", "/policy").await;
        json(&body)["reload_failures"].as_u64().unwrap_or(0) >= 1
    })
    .await;
    assert!(refused, "the reload failure is counted");
    let after = admin_policy(&mesh).await;
    assert_eq!(
        after["revision"], before["revision"],
        "the old policy stays"
    );
    let error = after["last_error"].as_str().unwrap().to_string();
    (mesh, error)
}

#[tokio::test]
async fn broken_policy_is_refused_and_the_old_one_stays_in_force() {
    let app = Backend::start().await;
    let (mesh, error) = reload_refused(
        app.addr,
        "package usher.authz\n\nallow if {\n  input.x ==\n",
    )
    .await;
    let admin = mesh.b.addrs.admin;
    assert!(
        error.contains("authz.rego:"),
        "file:line:col in the error: {error}"
    );
    assert_eq!(
        get1(admin, "admin", "/ready").await.0,
        StatusCode::OK,
        "still ready"
    );
    // Still enforced: a allowed, c denied.
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0,
        StatusCode::OK
    );
    let c = mesh.client("c").await;
    assert_eq!(
        get1(c.addrs.outbound, "b", "/headers").await.0,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn input_document_has_the_opa_envoy_shape() {
    // The policy echoes parts of its input back as request headers, so the
    // test can see exactly what the policy saw.
    let policy = r#"package usher.authz

a := input.attributes

decision := {"allowed": true, "headers": {
    "x-src": a.source.principal,
    "x-dst": a.destination.principal,
    "x-src-addr": a.source.address.socketAddress.address,
    "x-method": a.request.http.method,
    "x-path": a.request.http.path,
    "x-host": a.request.http.host,
    "x-scheme": a.request.http.scheme,
    "x-proto": a.request.http.protocol,
    "x-has-id": sprintf("%v", [a.request.http.id != ""]),
    "x-ua": a.request.http.headers["user-agent"],
    "x-parsed-path": concat("|", input.parsed_path),
    "x-q": concat("|", input.parsed_query.q),
}}
"#;
    let config = format!("{POLICY}  query: data.usher.authz.decision\n");
    let app = Backend::start().await;
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", policy)], &config).await;
    let (status, body, _) = send(
        mesh.a.addrs.outbound,
        "GET",
        "/headers/x%20y?q=1&q=two",
        &[("user-agent", "UA-Test")],
        b"",
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seen = json(&body);
    assert_eq!(seen["x-src"], id("a").as_str());
    assert_eq!(seen["x-dst"], id("b").as_str());
    assert_eq!(seen["x-src-addr"], "127.0.0.1");
    assert_eq!(seen["x-method"], "GET");
    assert_eq!(seen["x-path"], "/headers/x%20y?q=1&q=two");
    assert_eq!(seen["x-host"], "b");
    assert_eq!(seen["x-scheme"], "https");
    assert_eq!(seen["x-proto"], "HTTP/1.1");
    assert_eq!(seen["x-has-id"], "true");
    assert_eq!(seen["x-ua"], "UA-Test");
    assert_eq!(seen["x-parsed-path"], "headers|x y");
    assert_eq!(seen["x-q"], "1|two");
    assert!(
        seen.get("x-request-id").is_some(),
        "usher gives the request an id"
    );
}

#[tokio::test]
async fn rego_v0_policies_run_with_rego_version_v0() {
    let policy = format!(
        "package usher.authz\n\ndefault allow = false\n\nallow {{\n    input.attributes.source.principal == \"{}\"\n}}\n",
        id("a")
    );
    let app = Backend::start().await;
    let config = format!("{POLICY}  rego_version: v0\n");
    let mesh = Mesh::start_with(app.addr, &[("authz.rego", &policy)], &config).await;
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0,
        StatusCode::OK
    );
    let c = mesh.client("c").await;
    assert_eq!(
        get1(c.addrs.outbound, "b", "/headers").await.0,
        StatusCode::FORBIDDEN
    );
}

/// A recursive policy used to abort the process (stack overflow) at the
/// first evaluation: on reload it is refused, and the sidecar stays up with
/// the policy it had.
#[tokio::test]
async fn a_recursive_policy_on_reload_is_refused_and_the_sidecar_stays_up() {
    let app = Backend::start().await;
    let (mesh, error) = reload_refused(
        app.addr,
        "package usher.authz\n\nallow if a\n\na if b\n\nb if a\n",
    )
    .await;
    assert!(error.contains("authz.rego:5:1: recursion: "), "{error}");
    assert_eq!(
        get1(mesh.a.addrs.outbound, "b", "/headers").await.0,
        StatusCode::OK
    );
}

/// The OPA-Envoy "result object" pattern, queried as OPA-Envoy users do.
#[tokio::test]
async fn a_decision_object_built_rule_by_rule_decides_and_sets_headers() {
    let policy = format!(
        "package envoy.authz\n\ndefault allow := false\n\nallow if input.attributes.source.principal == \"{}\"\n\nresult[\"allowed\"] := allow\n\nresult.headers := {{\"x-ext-auth-allow\": \"yes\"}}\n",
        id("a")
    );
    let app = Backend::start().await;
    let mesh = Mesh::start_with(
        app.addr,
        &[("authz.rego", &policy)],
        "policy:\n  files: [authz.rego]\n  query: data.envoy.authz.result\n",
    )
    .await;
    let body = assert_status(
        get1(mesh.a.addrs.outbound, "b", "/headers").await,
        StatusCode::OK,
        "GET /headers (Host: b)",
    );
    assert_eq!(json(&body)["x-ext-auth-allow"], "yes", "{body}");
    let c = mesh.client("c").await;
    assert_eq!(
        get1(c.addrs.outbound, "b", "/headers").await.0,
        StatusCode::FORBIDDEN
    );
}
