//! The warm-up: representative inputs evaluated once when a policy is
//! compiled, so that an error that does not depend on the input is
//! reported then rather than at the first request; and the choice of the
//! RVM, used only when it accepts the policy and gives the interpreter's
//! answers on those inputs.

use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use regorus::languages::rego::compiler::Compiler;
use regorus::{CompiledPolicy, Engine, Value};

use super::error::{panic_message, query_error, ErrorKinds};
use super::eval::{first_value, new_vm};
use super::{PolicyError, Rvm};
use crate::analysis;
use crate::builtins::{BOUNDED_BUILTINS, JWT_BUILTINS};
use crate::input::{BodyInput, InputParts, RequestInput};

/// Evaluates the query for each of `samples` on a clone of `engine`: the
/// results (`None` for an evaluation error), or the error that makes the
/// policy unusable whatever the input.
pub(super) fn warm_up(
    engine: &Engine,
    query: &str,
    by_query: bool,
    samples: &[Value],
) -> Result<Vec<Option<Value>>, PolicyError> {
    let mut expected = Vec::with_capacity(samples.len());
    let mut conflicts = Vec::new();
    for input in samples {
        let mut e = engine.clone();
        e.set_input(input.clone());
        // No http.send request from a warm-up evaluation.
        let result = std::panic::catch_unwind(AssertUnwindSafe(|| {
            crate::http_send::offline(|| {
                if by_query {
                    e.eval_query(query.to_string(), false).map(first_value)
                } else {
                    e.eval_rule(query.to_string())
                }
            })
        }))
        .unwrap_or_else(|p| Err(anyhow::anyhow!(panic_message(p.as_ref()))));
        match result {
            Ok(v) => expected.push(Some(v)),
            Err(err) => {
                let kinds = ErrorKinds::of(&err);
                if kinds.unknown_function || kinds.not_a_rule_path || kinds.not_a_rule {
                    return Err(query_error(&err, query));
                }
                if kinds.rule_conflict {
                    conflicts.push(err);
                }
                expected.push(None);
            }
        }
    }
    // Rules that conflict whatever the input (`allow := true` and
    // `allow := false`) are a compile error in OPA: refused here too,
    // rather than denying every request with an evaluation error.
    if conflicts.len() == samples.len() {
        if let Some(err) = conflicts.pop() {
            return Err(query_error(&err, query));
        }
    }
    Ok(expected)
}

/// The RVM for the policy when it accepts it and agrees with the
/// interpreter on every warm-up input (`expected`); otherwise why not.
pub(super) fn choose_rvm(
    compiled: Option<CompiledPolicy>,
    engine: &Engine,
    scan: &analysis::Scan,
    query: &str,
    samples: &[Value],
    expected: &[Option<Value>],
    timeout: Duration,
) -> Result<Rvm, String> {
    let extensions: Vec<&str> = JWT_BUILTINS
        .iter()
        .chain(BOUNDED_BUILTINS)
        .map(|(n, _)| *n)
        .collect();
    let rvm_ok = !scan.calls_any(&extensions) && scan.rvm_hazard.is_none();
    // The query is not a rule path: it has no entry point to compile.
    let by_query = compiled.is_none();
    if let Some(compiled) = compiled.filter(|_| rvm_ok) {
        let program = Compiler::compile_from_policy(&compiled, &[query])
            .map_err(|e| format!("the RVM compiler refused it: {e}"))?;
        let rvm = Rvm {
            program,
            data: engine.get_data(),
        };
        let agrees = samples.iter().zip(expected).all(|(input, want)| {
            let got = new_vm(&rvm, timeout).ok().and_then(|mut vm| {
                vm.set_input(input.clone());
                std::panic::catch_unwind(AssertUnwindSafe(|| vm.execute().ok()))
                    .ok()
                    .flatten()
            });
            match (want, got) {
                (Some(w), Some(g)) => *w == g,
                (None, None) => true,
                _ => false,
            }
        });
        if agrees {
            Ok(rvm)
        } else {
            Err("the RVM and the interpreter disagreed on a warm-up input".into())
        }
    } else if by_query {
        Err("the query is not a rule path (evaluated as a query)".into())
    } else if let Some(hazard) = scan.rvm_hazard {
        Err(format!("the policy has {hazard}"))
    } else {
        Err("the policy calls builtins usher supplies as extensions".into())
    }
}

/// Inputs that look like real requests, for the warm-up and for checking
/// that the RVM agrees with the interpreter; with only `parts` built.
pub(super) fn sample_inputs(parts: InputParts) -> Vec<Value> {
    let headers = |pairs: &[(&'static str, &'static str)]| {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(*n, http::HeaderValue::from_static(v));
        }
        h
    };
    let client: SocketAddr = SocketAddr::from(([10, 0, 0, 7], 41234));
    let server: SocketAddr = SocketAddr::from(([10, 0, 0, 8], 15006));
    let get_headers = headers(&[
        ("user-agent", "curl/8.5"),
        ("accept", "*/*"),
        (
            "x-forwarded-client-cert",
            "By=spiffe://usher.invalid/ns/default/sa/server",
        ),
    ]);
    let post_headers = headers(&[
        ("content-type", "application/json"),
        (
            "authorization",
            "Bearer eyJhbGciOiJub25lIn0.eyJzdWIiOiJ3YXJtLXVwIn0.",
        ),
    ]);
    let body = BodyInput {
        bytes: bytes::Bytes::from_static(br#"{"name":"warm-up","count":1}"#),
        truncated: false,
    };
    let claims = serde_json::json!({"sub": "warm-up", "roles": ["reader"], "scope": "read"});
    let base = RequestInput {
        source_principal: Some("spiffe://usher.invalid/ns/default/sa/client"),
        source_address: client,
        destination_principal: "spiffe://usher.invalid/ns/default/sa/server",
        destination_address: server,
        method: "GET",
        path: "/",
        host: "server",
        scheme: "https",
        protocol: "HTTP/1.1",
        headers: &get_headers,
        request_id: "00000000-0000-0000-0000-000000000000",
        body: None,
        jwt_claims: None,
    };
    let post = RequestInput {
        source_principal: None,
        method: "POST",
        path: "/api/v1/items?page=2&q=a%20b",
        protocol: "HTTP/2",
        headers: &post_headers,
        body: Some(&body),
        jwt_claims: Some(&claims),
        ..base
    };
    let admin = RequestInput {
        method: "DELETE",
        path: "/admin/users/7",
        ..base
    };
    vec![
        base.to_value_with(parts),
        post.to_value_with(parts),
        admin.to_value_with(parts),
    ]
}
