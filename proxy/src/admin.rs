//! The admin listener: `/live`, `/ready` and a read-only view of the
//! current identity. Plain HTTP; keep it on loopback.

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::SystemTime;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use usher_ca::SpiffeId;

use crate::authz::PolicyStore;
use crate::respond::{text, ProxyBody};

fn json(body: String) -> Response<ProxyBody> {
    let mut resp = text(StatusCode::OK, body);
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    resp
}

/// What the admin endpoints report.
pub struct AdminState {
    /// Identity loaded and listeners bound, and not draining.
    pub ready: AtomicBool,
    pub service: String,
    pub spiffe_id: SpiffeId,
    pub not_after: SystemTime,
    pub policy: Option<Arc<PolicyStore>>,
}

impl AdminState {
    pub fn new(
        service: String,
        spiffe_id: SpiffeId,
        not_after: SystemTime,
        policy: Option<Arc<PolicyStore>>,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            ready: AtomicBool::new(false),
            service,
            spiffe_id,
            not_after,
            policy,
        })
    }

    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::SeqCst)
    }
}

pub async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
    }
    Ok(match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" if state.is_ready() => text(StatusCode::OK, "ready\n"),
        "/ready" => text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n"),
        "/identity" => {
            let body = serde_json::json!({
                "service": state.service,
                "spiffe_id": state.spiffe_id.as_str(),
                "not_after": humantime::format_rfc3339_seconds(state.not_after).to_string(),
            });
            json(format!("{body}\n"))
        }
        "/policy" => {
            let body = match &state.policy {
                Some(store) => store.status(),
                None => serde_json::json!({ "enabled": false }),
            };
            json(format!("{body}\n"))
        }
        _ => text(
            StatusCode::NOT_FOUND,
            "not found; try /live, /ready, /identity or /policy\n",
        ),
    })
}
