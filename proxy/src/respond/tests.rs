//! Every [`ProxyError`] becomes a short plain-text response with the right
//! status and no internals in the body.

use http::header::CONTENT_TYPE;
use http::StatusCode;
use http_body_util::BodyExt;
use usher_ca::SpiffeId;

use super::*;
use crate::identity::IdentityMismatch;

/// A reason as the log would carry it: an upstream address and an OS error.
const REASON: &str = "tcp connect error: 127.0.0.1:9: Connection refused (os error 111)";

fn mismatch() -> IdentityMismatch {
    IdentityMismatch {
        expected: SpiffeId::parse("spiffe://mesh.local/ns/shop/sa/payments").unwrap(),
        presented: SpiffeId::parse("spiffe://mesh.local/ns/shop/sa/impostor").unwrap(),
    }
}

/// Every variant, with the status it must map to.
fn all() -> Vec<(ProxyError, StatusCode)> {
    let r = || REASON.to_string();
    vec![
        (ProxyError::MissingHost, StatusCode::BAD_REQUEST),
        (
            ProxyError::NoRoute {
                host: "payments".into(),
            },
            StatusCode::NOT_FOUND,
        ),
        (
            ProxyError::AppUnavailable { reason: r() },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            ProxyError::AppFailed { reason: r() },
            StatusCode::BAD_GATEWAY,
        ),
        (
            ProxyError::PeerUnavailable { reason: r() },
            StatusCode::SERVICE_UNAVAILABLE,
        ),
        (
            ProxyError::PeerIdentityMismatch(mismatch()),
            StatusCode::BAD_GATEWAY,
        ),
        (ProxyError::PeerTls { reason: r() }, StatusCode::BAD_GATEWAY),
        (
            ProxyError::PeerFailed { reason: r() },
            StatusCode::BAD_GATEWAY,
        ),
    ]
}

async fn body_of(resp: Response<ProxyBody>) -> String {
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn every_variant_maps_to_its_status() {
    let cases = all();
    assert_eq!(cases.len(), 8, "a new variant needs a case here");
    for (err, status) in cases {
        assert_eq!(err.status(), status, "{err:?}");
    }
}

#[tokio::test]
async fn responses_carry_the_status_and_a_plain_text_public_message() {
    for (err, status) in all() {
        let public = err.public_message();
        let shown = format!("{err:?}");
        let resp = err.into_response();
        assert_eq!(resp.status(), status, "{shown}");
        assert_eq!(
            resp.headers()[CONTENT_TYPE],
            "text/plain; charset=utf-8",
            "{shown}"
        );
        let body = body_of(resp).await;
        assert_eq!(body, format!("{public}\n"), "{shown}");
        assert!(body.starts_with("usher: "), "says who answered: {body}");
    }
}

#[tokio::test]
async fn bodies_never_contain_the_reason() {
    for (err, _) in all() {
        let logged = err.to_string();
        let body = body_of(err.into_response()).await;
        for secret in [
            "127.0.0.1:9",
            "os error 111",
            "Connection refused",
            "tcp connect",
        ] {
            assert!(
                !body.contains(secret),
                "body {body:?} leaks {secret:?} (logged: {logged})"
            );
        }
    }
}

#[test]
fn the_log_text_keeps_the_reason() {
    // The detail is not lost: it is in Display, which goes to the log.
    for (err, _) in all() {
        let logged = err.to_string();
        if matches!(
            err,
            ProxyError::AppUnavailable { .. }
                | ProxyError::AppFailed { .. }
                | ProxyError::PeerUnavailable { .. }
                | ProxyError::PeerTls { .. }
                | ProxyError::PeerFailed { .. }
        ) {
            assert!(logged.contains(REASON), "{logged}");
        }
    }
}

#[test]
fn no_route_names_the_host() {
    let err = ProxyError::NoRoute {
        host: "payments.shop".into(),
    };
    assert_eq!(
        err.public_message(),
        "usher: no route for host \"payments.shop\""
    );
}

#[test]
fn identity_mismatch_names_both_spiffe_ids() {
    let msg = ProxyError::PeerIdentityMismatch(mismatch()).public_message();
    assert!(
        msg.contains("expected spiffe://mesh.local/ns/shop/sa/payments"),
        "{msg}"
    );
    assert!(
        msg.contains("presented spiffe://mesh.local/ns/shop/sa/impostor"),
        "{msg}"
    );
}

#[test]
fn app_and_peer_failures_are_told_apart() {
    let app = ProxyError::AppUnavailable {
        reason: REASON.into(),
    }
    .public_message();
    let peer = ProxyError::PeerUnavailable {
        reason: REASON.into(),
    }
    .public_message();
    assert!(app.contains("local service"), "{app}");
    assert!(peer.contains("destination"), "{peer}");
    assert_ne!(app, peer);
}

#[tokio::test]
async fn text_builds_a_plain_text_response() {
    let resp = text(StatusCode::IM_A_TEAPOT, "short and stout");
    assert_eq!(resp.status(), StatusCode::IM_A_TEAPOT);
    assert_eq!(resp.headers()[CONTENT_TYPE], "text/plain; charset=utf-8");
    assert_eq!(body_of(resp).await, "short and stout");
}

#[test]
fn the_429_says_the_limit_and_when_to_retry() {
    let resp = ProxyError::RateLimited(RateLimited {
        limit: 5,
        retry_after: std::time::Duration::from_millis(1500),
        scope: "caller",
        log_line: None,
    })
    .into_response();
    assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
    let h = resp.headers();
    assert_eq!(h["retry-after"], "2", "rounded up");
    assert_eq!(h["ratelimit-limit"], "5");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(h["ratelimit-reset"], "2");
    assert_eq!(
        resp.extensions().get::<ErrorKind>().map(|k| k.0),
        Some("rate_limited")
    );
}

#[test]
fn the_401_challenges_for_a_bearer_token() {
    let missing = ProxyError::Unauthenticated(Unauthenticated {
        reason: None,
        issuer: None,
    })
    .into_response();
    assert_eq!(missing.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        missing.headers()["www-authenticate"],
        "Bearer realm=\"usher\""
    );
    let expired = ProxyError::Unauthenticated(Unauthenticated {
        reason: Some(crate::authn::Reject::Expired),
        issuer: None,
    })
    .into_response();
    assert_eq!(
        expired.headers()["www-authenticate"],
        "Bearer realm=\"usher\", error=\"invalid_token\", error_description=\"token expired\""
    );
    assert_eq!(
        expired.extensions().get::<ErrorKind>().map(|k| k.0),
        Some("unauthenticated")
    );
}

#[tokio::test]
async fn a_policy_denial_is_the_policy_s_answer_not_an_error_type() {
    let denied = ProxyError::PolicyDenied(PolicyDenied {
        status: 451,
        body: Some("{\"why\":\"law\"}".into()),
        headers: vec![(CONTENT_TYPE, "application/json".parse().unwrap())],
        response_headers_to_add: vec![("x-denied-by".parse().unwrap(), "p".parse().unwrap())],
    })
    .into_response();
    assert_eq!(denied.status(), 451);
    assert_eq!(denied.headers()[CONTENT_TYPE], "application/json");
    assert_eq!(denied.headers()["x-denied-by"], "p");
    assert!(denied.extensions().get::<ErrorKind>().is_none());
    assert_eq!(
        denied.extensions().get::<PolicyVerdict>(),
        Some(&PolicyVerdict::Deny)
    );
    assert_eq!(
        body_of(denied).await,
        "{\"why\":\"law\"}",
        "no newline added"
    );
}

#[test]
fn every_refusal_has_a_kind_and_transport_errors_keep_theirs() {
    let unread = ProxyError::BodyUnreadable {
        reason: REASON.into(),
    }
    .into_response();
    assert_eq!(unread.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        unread.extensions().get::<ErrorKind>().map(|k| k.0),
        Some("body_unreadable")
    );
}
