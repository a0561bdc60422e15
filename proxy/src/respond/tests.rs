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
