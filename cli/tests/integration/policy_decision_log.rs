//! The policy decision log of the `usher` binary: allowed and denied
//! decisions as JSON lines on stdout, with the fields, target, level and
//! message they have always had (written through the buffered writer of
//! the access log), and still written when the sidecar stops right after.

use std::collections::BTreeSet;
use std::time::Duration;

use http::StatusCode;

use crate::support::backend::Backend;
use crate::support::client::get1;
use crate::support::process::UsherProcess;
use crate::support::{id, write_config, Pki, RouteSpec};

const POLICY: &str = "package usher.authz\n\ndefault allow := false\n\nallow if input.attributes.request.http.path == \"/headers?x=1\"\n";

/// b (with the policy) in front of `app`, a routing host "b" to b.
fn start_pair(pki: &Pki, app: std::net::SocketAddr) -> (UsherProcess, UsherProcess) {
    let b_dir = pki.dir.path().join("b");
    std::fs::create_dir_all(&b_dir).unwrap();
    std::fs::write(b_dir.join("authz.rego"), POLICY).unwrap();
    let b_certs = pki.issue("b-certs", &id("b"));
    let b = UsherProcess::start(&write_config(
        &b_dir,
        &b_certs,
        app,
        &[],
        "policy:\n  files: [authz.rego]\n",
    ));
    let a_certs = pki.issue("a-certs", &id("a"));
    let routes = [RouteSpec {
        host: "b".into(),
        address: b.inbound,
        identity: id("b"),
    }];
    let a = UsherProcess::start(&write_config(
        &pki.dir.path().join("a"),
        &a_certs,
        app,
        &routes,
        "",
    ));
    (a, b)
}

/// The next decision line of `p` (other lines skipped); None when stdout
/// ends or nothing comes within 10 s.
fn next_decision(p: &UsherProcess) -> Option<serde_json::Value> {
    loop {
        let line = p.lines.recv_timeout(Duration::from_secs(10)).ok()?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        if v["message"] == "decision" {
            return Some(v);
        }
    }
}

fn keys(v: &serde_json::Value) -> BTreeSet<&str> {
    v.as_object().unwrap().keys().map(String::as_str).collect()
}

/// What every decision line has, whatever the decision.
fn assert_common(v: &serde_json::Value, path: &str) {
    assert_eq!(v["target"], "usher::audit", "{v}");
    assert_eq!(v["principal"], id("a").as_str(), "{v}");
    assert_eq!(v["method"], "GET", "{v}");
    assert_eq!(v["path"], path, "{v}");
    assert_eq!(v["mode"], "enforce", "{v}");
    assert!(v["revision"].as_str().is_some_and(|r| !r.is_empty()), "{v}");
    assert!(v["eval_us"].is_u64(), "{v}");
    // RFC 3339 in UTC with microseconds, as tracing's JSON timestamps.
    let t = v["timestamp"].as_str().unwrap();
    assert_eq!(t.len(), "2026-01-02T03:04:05.123456Z".len(), "{t}");
    assert!(t.ends_with('Z') && &t[10..11] == "T", "{t}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_and_denied_decisions_are_json_lines_with_their_fields() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let (a, b) = start_pair(&pki, app.addr);

    assert_eq!(
        get1(a.outbound, "b", "/headers?x=1").await.0,
        StatusCode::OK
    );
    let allow = next_decision(&b).expect("an allow line");
    assert_common(&allow, "/headers?x=1");
    assert_eq!(allow["level"], "INFO");
    assert_eq!(allow["decision"], "allow");
    assert_eq!(
        keys(&allow),
        BTreeSet::from([
            "timestamp",
            "level",
            "message",
            "target",
            "principal",
            "method",
            "path",
            "decision",
            "mode",
            "revision",
            "eval_us"
        ]),
        "{allow}"
    );

    assert_eq!(
        get1(a.outbound, "b", "/secret").await.0,
        StatusCode::FORBIDDEN
    );
    let deny = next_decision(&b).expect("a deny line");
    assert_common(&deny, "/secret");
    assert_eq!(deny["level"], "WARN");
    assert_eq!(deny["decision"], "deny");
    assert_eq!(deny["status"], 403);
    assert!(deny["reason"].is_string(), "{deny}");
    assert_eq!(keys(&deny).len(), keys(&allow).len() + 2, "{deny}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_decision_lines_are_written_when_the_sidecar_stops() {
    let app = Backend::start().await;
    let pki = Pki::new();
    let (a, mut b) = start_pair(&pki, app.addr);
    assert_eq!(
        get1(a.outbound, "b", "/headers?x=1").await.0,
        StatusCode::OK
    );
    // Stopped at once: the line may still be in its buffer (written every
    // 50 ms); the shutdown writes it out.
    b.signal("TERM");
    let exit = tokio::task::spawn_blocking(move || {
        let exit = b.wait_exit(Duration::from_secs(20)).map(|s| s.code());
        (exit, next_decision(&b))
    })
    .await
    .unwrap();
    assert_eq!(exit.0, Some(Some(0)));
    let allow = exit.1.expect("the allow line, written before exit");
    assert_common(&allow, "/headers?x=1");
    assert_eq!(allow["decision"], "allow");
}
