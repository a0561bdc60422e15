//! The admin listener: `/live`, `/ready`, `/metrics` (OpenMetrics or
//! Prometheus text, by the scraper's `Accept`),
//! read-only views of the current identity and policy, and `/logging` to
//! read or change the log filter. Plain HTTP; keep it on loopback.

pub(crate) mod app_probe;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwapOption;

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use usher_ca::SpiffeId;

use crate::authz::PolicyStore;
use http_body_util::BodyExt as _;

use crate::identity::Identity;
use crate::respond::{text, ProxyBody};
use crate::telemetry::logs::{self, LogLevelError};
use crate::telemetry::metrics::Format;
use crate::telemetry::Metrics;

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
    /// Listeners serving, and not draining.
    pub(crate) ready: AtomicBool,
    pub(crate) service: String,
    pub spiffe_id: SpiffeId,
    /// Absent until the first certificate is held (CA mode enrols after
    /// the admin listener is up, so probes can see why it is not ready).
    pub(crate) identity: ArcSwapOption<Identity>,
    pub(crate) policy: Option<Arc<PolicyStore>>,
    pub(crate) metrics: Arc<Metrics>,
    /// The app's HTTP probes usher makes for the kubelet (set once at
    /// start from `USHER_APP_PROBES`; see [`app_probe`]).
    pub(crate) app_probes: std::sync::OnceLock<app_probe::AppProbes>,
}

impl AdminState {
    pub(crate) fn new(
        service: String,
        spiffe_id: SpiffeId,
        policy: Option<Arc<PolicyStore>>,
        metrics: Arc<Metrics>,
    ) -> Arc<AdminState> {
        Arc::new(AdminState {
            ready: AtomicBool::new(false),
            service,
            spiffe_id,
            identity: ArcSwapOption::empty(),
            policy,
            metrics,
            app_probes: std::sync::OnceLock::new(),
        })
    }

    pub(crate) fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::SeqCst);
    }

    /// Ready: serving, not draining, and holding a certificate that has
    /// not expired. `Err` says why not.
    pub(crate) fn readiness(&self) -> Result<(), &'static str> {
        match self.identity.load().as_ref() {
            None => return Err("not ready: no workload certificate yet"),
            Some(id) if !id.is_valid() => {
                return Err("not ready: the workload certificate has expired")
            }
            Some(_) => {}
        }
        if !self.ready.load(Ordering::SeqCst) {
            return Err("not ready: starting or draining");
        }
        Ok(())
    }
}

/// The longest `/logging` body accepted.
const MAX_FILTER_BODY: usize = 4096;

pub(crate) async fn handle(
    state: Arc<AdminState>,
    req: Request<Incoming>,
    remote: SocketAddr,
) -> Result<Response<ProxyBody>, Infallible> {
    if req.uri().path() == "/logging" {
        // The admin listener may be reachable by the kubelet and Prometheus
        // (0.0.0.0); changing anything stays a local operator's privilege.
        if !logging_allowed(req.method(), remote) {
            return Ok(text(
                StatusCode::FORBIDDEN,
                "the log filter can only be changed from the local host\n",
            ));
        }
        return Ok(logging(req).await);
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return Ok(text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"));
    }
    if let Some(key) = req.uri().path().strip_prefix("/app-probe/") {
        return Ok(match state.app_probes.get() {
            Some(probes) => probes.answer(key).await,
            None => text(StatusCode::NOT_FOUND, "no such app probe\n"),
        });
    }
    Ok(match req.uri().path() {
        "/live" => text(StatusCode::OK, "live\n"),
        "/ready" => match state.readiness() {
            Ok(()) => text(StatusCode::OK, "ready\n"),
            Err(why) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
        },
        "/metrics" => {
            let accept = req
                .headers()
                .get(http::header::ACCEPT)
                .and_then(|v| v.to_str().ok());
            let format = Format::negotiate(accept);
            let mut resp = text(StatusCode::OK, state.metrics.encode_as(format));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(format.content_type()),
            );
            resp.headers_mut()
                .insert(http::header::VARY, http::HeaderValue::from_static("accept"));
            resp
        }
        "/identity" => {
            let cert = state.identity.load().as_ref().map(|id| {
                let info = id.info();
                serde_json::json!({
                    "serial": info.serial_hex,
                    "not_before": humantime::format_rfc3339_seconds(info.not_before).to_string(),
                    "not_after": humantime::format_rfc3339_seconds(info.not_after).to_string(),
                    "valid": id.is_valid(),
                    "trusted_roots": info.roots,
                })
            });
            let mut body = serde_json::json!({
                "service": state.service,
                "spiffe_id": state.spiffe_id.as_str(),
                "certificate": cert,
            });
            if let Some(c) = &cert {
                body["not_after"] = c["not_after"].clone();
            }
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
            "not found; try /live, /ready, /metrics, /identity, /policy or /logging\n",
        ),
    })
}

/// Anyone who reaches the admin listener may read the log filter; only a
/// client on the local host may change it.
fn logging_allowed(method: &Method, remote: SocketAddr) -> bool {
    let reads = method == Method::GET || method == Method::HEAD;
    reads || remote.ip().is_loopback()
}

/// `GET /logging`: the filter in force. `PUT /logging` with a body such as
/// `debug` or `info,usher=debug` (or `POST /logging?level=debug`, as
/// Envoy's admin does) replaces it.
async fn logging(req: Request<Incoming>) -> Response<ProxyBody> {
    let result = match *req.method() {
        Method::GET | Method::HEAD => logs::current(),
        Method::PUT | Method::POST => {
            let from_query = req.uri().query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("level="))
                    .map(str::to_owned)
            });
            let directives = match from_query {
                Some(level) => level,
                None => {
                    let limited = http_body_util::Limited::new(req.into_body(), MAX_FILTER_BODY);
                    match limited.collect().await {
                        Ok(body) => String::from_utf8_lossy(&body.to_bytes()).into_owned(),
                        Err(_) => {
                            return text(
                                StatusCode::PAYLOAD_TOO_LARGE,
                                "the log filter must be under 4 KiB\n",
                            )
                        }
                    }
                }
            };
            logs::set(&directives)
        }
        _ => return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    };
    match result {
        Ok(filter) => text(StatusCode::OK, format!("{filter}\n")),
        Err(e @ LogLevelError::Invalid(_)) => text(StatusCode::BAD_REQUEST, format!("{e}\n")),
        Err(e @ LogLevelError::Unavailable) => text(StatusCode::NOT_IMPLEMENTED, format!("{e}\n")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_clients_change_the_log_filter() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let local6: SocketAddr = "[::1]:5000".parse().unwrap();
        let remote: SocketAddr = "10.1.2.3:5000".parse().unwrap();
        assert!(logging_allowed(&Method::PUT, local));
        assert!(logging_allowed(&Method::POST, local6));
        assert!(logging_allowed(&Method::GET, remote));
        assert!(!logging_allowed(&Method::PUT, remote));
        assert!(!logging_allowed(&Method::POST, remote));
        assert!(!logging_allowed(&Method::DELETE, remote));
    }
}
