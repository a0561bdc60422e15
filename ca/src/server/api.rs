//! The CA server's HTTP API: routing, body limits, the enrol / renew /
//! bundle handlers, and the mapping of every refusal to a status and a short
//! JSON error (details go to the log, never to the client).

use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::limit::retry_after_secs;
use super::{Peer, State};
use crate::authority::SignedLeaf;
use crate::csr::{check_csr, check_csr_parts, CheckedCsr, CsrError};
use crate::error::CaError;
use crate::issued_log::{rfc3339, IssuedHow};
use crate::k8s::{K8sTokenError, K8sVerifier};
use crate::spiffe::SpiffeId;
use crate::token::{TokenError, TOKEN_PREFIX};
use crate::wire::{
    BundleResponse, EnrolRequest, ErrorResponse, RenewRequest, SignedResponse, BUNDLE_PATH,
    ENROL_PATH, RENEW_PATH,
};

/// Largest request body accepted.
pub(crate) const MAX_BODY: usize = 64 * 1024;
/// Largest body read (and dropped) before answering 413.
const MAX_DRAIN: usize = 1024 * 1024;
/// How long a client has to send its request body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);

type Resp = Response<Full<Bytes>>;

/// A refusal: what the client is told, and what the log says.
struct Refusal {
    status: StatusCode,
    message: String,
    reason: String,
    spiffe_id: Option<SpiffeId>,
}

impl Refusal {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        let message = message.into();
        Refusal {
            status,
            reason: message.clone(),
            message,
            spiffe_id: None,
        }
    }

    fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = reason.into();
        self
    }

    fn id(mut self, id: &SpiffeId) -> Self {
        self.spiffe_id = Some(id.clone());
        self
    }
}

pub(super) async fn handle(req: Request<Incoming>, state: &State, peer: &Peer) -> Resp {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    let enrolment = path == ENROL_PATH && method == Method::POST;
    if enrolment {
        // Too many failures from this address: not even the token is read.
        if let Err(wait) = state.enrol_limits.check(peer.addr.ip(), Instant::now()) {
            return too_many_failures(wait);
        }
    }
    let result = match (path.as_str(), &method) {
        (ENROL_PATH, &Method::POST) => enrol(req, state, peer).await,
        (RENEW_PATH, &Method::POST) => renew(req, state, peer).await,
        (BUNDLE_PATH, &Method::GET) => Ok(json(
            StatusCode::OK,
            &BundleResponse {
                bundle: state.current_bundle(),
            },
        )),
        (ENROL_PATH | RENEW_PATH, _) => Err(method_not_allowed("POST")),
        (BUNDLE_PATH, _) => Err(method_not_allowed("GET")),
        _ => Err(Refusal::new(StatusCode::NOT_FOUND, "not found")),
    };
    match result {
        Ok(resp) => resp,
        Err(refusal) => {
            let spiffe_id = refusal
                .spiffe_id
                .as_ref()
                .map(|id| id.as_str())
                .unwrap_or("-");
            // A failed enrolment is counted; only the first of its address's
            // window is logged in full (the rest are summed up later).
            let failure = (enrolment && refusal.status.is_client_error())
                .then(|| state.enrol_limits.failed(peer.addr.ip(), Instant::now()));
            if let Some(ended) = failure.as_ref().and_then(|f| f.ended.as_ref()) {
                ended.log(state.enrol_limits.window());
            }
            if failure.as_ref().is_none_or(|f| f.first) {
                tracing::warn!(
                    target: "usher::audit",
                    peer = %peer.addr,
                    %method,
                    path = %path,
                    status = refusal.status.as_u16(),
                    reason = %refusal.reason,
                    spiffe_id,
                    "CA request refused"
                );
            }
            if let Some((f, wait)) = failure
                .as_ref()
                .and_then(|f| f.limited_for.map(|wait| (f, wait)))
            {
                tracing::warn!(
                    target: "usher::audit",
                    peer = %f.source,
                    failures = state.enrol_limits.limit(),
                    retry_after_secs = retry_after_secs(wait),
                    "CA enrolment failures from this address reached the limit; \
                     its enrolments are answered 429 until the window ends"
                );
            }
            let mut resp = json(
                refusal.status,
                &ErrorResponse {
                    error: refusal.message,
                },
            );
            if refusal.status == StatusCode::METHOD_NOT_ALLOWED {
                let allow = if path == BUNDLE_PATH { "GET" } else { "POST" };
                resp.headers_mut()
                    .insert(ALLOW, HeaderValue::from_static(allow));
            }
            resp
        }
    }
}

/// 429 for an address over its failed-enrolment limit.
fn too_many_failures(wait: Duration) -> Resp {
    let secs = retry_after_secs(wait);
    let mut resp = json(
        StatusCode::TOO_MANY_REQUESTS,
        &ErrorResponse {
            error: format!("too many failed enrolments from this address; retry in {secs} s"),
        },
    );
    resp.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from(secs));
    resp
}

fn method_not_allowed(allowed: &str) -> Refusal {
    Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("method not allowed; use {allowed}"),
    )
}

async fn enrol(req: Request<Incoming>, state: &State, peer: &Peer) -> Result<Resp, Refusal> {
    let body: EnrolRequest = read_json(req, "{\"token\": \"...\", \"csr\": \"...\"}").await?;
    // Not a bootstrap token: a service account token, if the server takes
    // them (otherwise the token store says "unknown bootstrap token").
    if let Some(k8s) = &state.k8s {
        if !body.token.starts_with(TOKEN_PREFIX) {
            return enrol_k8s(&body, k8s, state, peer).await;
        }
    }
    let csr = checked(&body.csr)?;
    let id = &csr.spiffe_id;
    // Checked again right before the token is: from here to the failure
    // being counted (in `handle`) nothing awaits, so guesses sent at once
    // on many connections cannot all slip in under the limit.
    if let Err(wait) = state.enrol_limits.check(peer.addr.ip(), Instant::now()) {
        return Ok(too_many_failures(wait));
    }
    state
        .tokens
        .check_and_consume(&body.token, id)
        .map_err(|e| token_refusal(e).id(id))?;
    issue(state, &csr, IssuedHow::Token).await
}

/// Enrolment with a Kubernetes service account token: the SPIFFE ID is the
/// token's; the CSR may ask for exactly that one, or none.
async fn enrol_k8s(
    body: &EnrolRequest,
    k8s: &K8sVerifier,
    state: &State,
    peer: &Peer,
) -> Result<Resp, Refusal> {
    let (requested, public_key_der) = check_csr_parts(&body.csr, false).map_err(csr_refusal)?;
    // A token naming a key not yet known may mean the cluster rotated its
    // keys: load them again (rate-limited) before the limit is checked, so
    // that from that check to the failure being counted nothing awaits.
    k8s.refresh_for(&body.token).await;
    if let Err(wait) = state.enrol_limits.check(peer.addr.ip(), Instant::now()) {
        return Ok(too_many_failures(wait));
    }
    let who = k8s.verify(&body.token).map_err(|e| {
        let refusal = k8s_refusal(e);
        match &requested {
            Some(id) => refusal.id(id),
            None => refusal,
        }
    })?;
    if let Some(id) = &requested {
        if *id != who.spiffe_id {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the service account token does not allow this SPIFFE ID",
            )
            .reason(format!(
                "the service account token is for {}, the CSR asks for {id}",
                who.spiffe_id
            ))
            .id(id));
        }
    }
    let csr = CheckedCsr {
        spiffe_id: who.spiffe_id.clone(),
        public_key_der,
    };
    let resp = issue(state, &csr, IssuedHow::ServiceAccount).await?;
    tracing::info!(
        target: "usher::audit",
        peer = %peer.addr,
        spiffe_id = %who.spiffe_id,
        namespace = %who.namespace,
        service_account = %who.service_account,
        pod = who.pod.as_deref().unwrap_or("-"),
        "enrolled with a Kubernetes service account token"
    );
    Ok(resp)
}

fn k8s_refusal(e: K8sTokenError) -> Refusal {
    let (forbidden, message) = e.client_message();
    let status = match forbidden {
        true => StatusCode::FORBIDDEN,
        false => StatusCode::UNAUTHORIZED,
    };
    Refusal::new(status, message).reason(e.to_string())
}

async fn renew(req: Request<Incoming>, state: &State, peer: &Peer) -> Result<Resp, Refusal> {
    let Some(client_id) = &peer.id else {
        // Read the CSR anyway, only so the log can say who asked.
        let requested = read_json::<RenewRequest>(req, "")
            .await
            .ok()
            .and_then(|body| check_csr(&body.csr).ok());
        let refusal = Refusal::new(
            StatusCode::UNAUTHORIZED,
            "renewal requires a client certificate",
        );
        return Err(match requested {
            Some(csr) => refusal.id(&csr.spiffe_id),
            None => refusal,
        });
    };
    let body: RenewRequest = read_json(req, "{\"csr\": \"...\"}").await?;
    let csr = checked(&body.csr)?;
    let id = &csr.spiffe_id;
    match client_id {
        Err(reason) => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the client certificate carries no usable SPIFFE ID",
            )
            .reason(format!("client certificate: {reason}"))
            .id(id))
        }
        Ok(cert_id) if cert_id != id => {
            return Err(Refusal::new(
                StatusCode::FORBIDDEN,
                "the client certificate's SPIFFE ID does not match the CSR's",
            )
            .reason(format!(
                "client certificate is for {cert_id}, the CSR asks for {id}"
            ))
            .id(id))
        }
        Ok(_) => {}
    }
    issue(state, &csr, IssuedHow::Renewal).await
}

fn checked(csr_pem: &str) -> Result<CheckedCsr, Refusal> {
    check_csr(csr_pem).map_err(csr_refusal)
}

fn csr_refusal(e: CsrError) -> Refusal {
    let message = match &e {
        CsrError::NotParseable { .. } => "malformed CSR",
        CsrError::BadSignature => "the CSR's signature does not verify",
        CsrError::UnsupportedKey { .. } => {
            "unsupported key algorithm; use ECDSA P-256, P-384 or Ed25519"
        }
        CsrError::NoSpiffeId => "the CSR carries no SPIFFE ID (URI SAN)",
        CsrError::ExtraSans { .. } => {
            "the CSR asks for extra subjectAltNames; only the SPIFFE ID is allowed"
        }
        CsrError::InvalidSpiffeId { .. } => "the CSR's URI SAN is not a workload SPIFFE ID",
        CsrError::CaRights { .. } => "the CSR asks for CA rights",
        _ => "invalid CSR",
    };
    Refusal::new(StatusCode::BAD_REQUEST, message).reason(e.to_string())
}

fn token_refusal(e: TokenError) -> Refusal {
    let (status, message) = match &e {
        TokenError::Unknown => (StatusCode::UNAUTHORIZED, "unknown bootstrap token"),
        TokenError::Expired { .. } => (StatusCode::UNAUTHORIZED, "bootstrap token expired"),
        TokenError::AlreadyUsed => (StatusCode::UNAUTHORIZED, "bootstrap token already used"),
        TokenError::NotAllowed { .. } => (
            StatusCode::FORBIDDEN,
            "the bootstrap token does not allow this SPIFFE ID",
        ),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
    };
    Refusal::new(status, message).reason(e.to_string())
}

async fn issue(state: &State, csr: &CheckedCsr, how: IssuedHow) -> Result<Resp, Refusal> {
    let leaf: SignedLeaf = state.sign(csr, how).await.map_err(|e| {
        let refusal = match &e {
            CaError::WrongTrustDomain { .. } => Refusal::new(
                StatusCode::FORBIDDEN,
                "the SPIFFE ID is not in this CA's trust domain",
            ),
            _ => Refusal::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"),
        };
        refusal.reason(e.to_string()).id(&csr.spiffe_id)
    })?;
    Ok(json(
        StatusCode::OK,
        &SignedResponse {
            cert_chain: leaf.cert_chain_pem,
            bundle: state.current_bundle(),
            not_after: rfc3339(leaf.not_after),
            serial: leaf.serial_hex,
        },
    ))
}

/// Reads a JSON body of at most [`MAX_BODY`] bytes. A larger body is still
/// read (and dropped) up to [`MAX_DRAIN`] bytes before the 413 is sent, so
/// the client is not reset while it is still sending and does see the answer.
async fn read_json<T: DeserializeOwned>(
    req: Request<Incoming>,
    expected: &str,
) -> Result<T, Refusal> {
    let too_large = || {
        Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body larger than {MAX_BODY} bytes"),
        )
    };
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_DRAIN as u64) {
        return Err(too_large());
    }
    let mut body = req.into_body();
    let mut bytes = Vec::new();
    let mut total = 0usize;
    let read = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| {
                Refusal::new(StatusCode::BAD_REQUEST, "cannot read the request body")
                    .reason(e.to_string())
            })?;
            if let Ok(data) = frame.into_data() {
                total = total.saturating_add(data.len());
                if total > MAX_DRAIN {
                    return Err(too_large());
                }
                if total <= MAX_BODY {
                    bytes.extend_from_slice(&data);
                }
            }
        }
        Ok(())
    };
    match tokio::time::timeout(BODY_TIMEOUT, read).await {
        Ok(result) => result?,
        Err(_) => {
            return Err(Refusal::new(
                StatusCode::REQUEST_TIMEOUT,
                "request body not received in time",
            ))
        }
    }
    if total > MAX_BODY {
        return Err(too_large());
    }
    serde_json::from_slice(&bytes).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("malformed JSON request; expected {expected}"),
        )
        // Category and position only: serde's message may quote the input,
        // which can hold a token.
        .reason(format!(
            "malformed JSON ({:?} error at line {} column {})",
            e.classify(),
            e.line(),
            e.column()
        ))
    })
}

fn json(status: StatusCode, body: &impl Serialize) -> Resp {
    let bytes =
        serde_json::to_vec(body).unwrap_or_else(|_| br#"{"error":"internal error"}"#.to_vec());
    let mut resp = Response::new(Full::new(Bytes::from(bytes)));
    *resp.status_mut() = status;
    let headers = resp.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}
