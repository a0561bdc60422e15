//! Enrolment with a Kubernetes projected service account token.
//!
//! In a cluster, a pod proves who it is with the token the kubelet projects
//! into it (a `serviceAccountToken` volume source with audience `usher-ca`):
//! a JWT signed by the cluster's service account issuer, naming the pod's
//! namespace and service account, rotated by the kubelet. `usher ca serve
//! --k8s-issuer/--k8s-jwks` accepts it on `POST /v1/enrol` in place of a
//! bootstrap token and issues `spiffe://<trust domain>/ns/<NS>/sa/<SA>`:
//! the ID comes from the token, never from the CSR (a CSR asking for
//! another ID is refused; one asking for none gets the token's).
//!
//! The token is checked as the API server issues it:
//!
//! * a JWS signed with RS256, ES256 or ES384 by a key of the issuer's JWKS
//!   (`alg: none`, HMAC and every other algorithm are refused before any
//!   key is looked at; a `kid` the set does not hold is refused);
//! * `iss` equal to `--k8s-issuer` (required), `aud` containing
//!   `--k8s-audience`, `exp`, `nbf` and `iat` present and in force with
//!   [`DEFAULT_LEEWAY`] of clock skew;
//! * `sub` = `system:serviceaccount:<NS>:<SA>`, and the `kubernetes.io`
//!   claim's `namespace` and `serviceaccount.name` saying the same;
//! * NS and SA valid SPIFFE path segments (`[a-zA-Z0-9._-]`, not `.` or
//!   `..`).
//!
//! The keys come from a file, a JWKS URL, or OIDC discovery of the issuer
//! (see `k8s/fetch.rs`). They are loaded at start (the server does not start
//! without them), and loaded again when a token names a `kid` the set does
//! not hold, or once they are older than [`DEFAULT_MAX_KEY_AGE`], at most
//! once per [`DEFAULT_MIN_REFRESH_INTERVAL`]; a failed refresh keeps the
//! keys in use.
//!
//! A projected token is a bearer credential for its lifetime (the kubelet
//! renews it at 80 % of it): unlike a single-use bootstrap token, it may be
//! presented again (a restarted sidecar does), so keep `expirationSeconds`
//! short (600 is the minimum Kubernetes allows). Tokens are never logged.

mod fetch;
mod jwks;

use std::fmt;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;

use crate::spiffe::SpiffeId;
use fetch::{Fetcher, HttpsUrl};
use jwks::{Jwks, ALGORITHMS};

/// The audience a token must be for, unless configured otherwise.
pub const DEFAULT_AUDIENCE: &str = "usher-ca";
/// Clock skew allowed on `exp`, `nbf` and `iat`.
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The keys are loaded again at most this often.
pub const DEFAULT_MIN_REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// Keys older than this are loaded again at the next enrolment (so a key
/// the cluster retired stops being accepted).
pub const DEFAULT_MAX_KEY_AGE: Duration = Duration::from_secs(60 * 60);
/// Longest token accepted (a projected token is about 1 KiB).
const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// What `sub` starts with.
const SUBJECT_PREFIX: &str = "system:serviceaccount:";

/// Where the issuer's public keys are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JwksSource {
    /// A JWKS file (e.g. the output of `kubectl get --raw /openid/v1/jwks`).
    File(PathBuf),
    /// A JWKS URL (`https://` only).
    Url(String),
}

impl JwksSource {
    /// `https://...` is a URL; `http://...` is refused (keys fetched in
    /// clear could be swapped on the way); anything else is a file.
    pub fn parse(s: &str) -> Result<JwksSource, String> {
        if s.starts_with("https://") {
            HttpsUrl::parse(s, "--k8s-jwks")?;
            Ok(JwksSource::Url(s.to_owned()))
        } else if s.starts_with("http://") {
            Err(format!(
                "--k8s-jwks {s:?}: the keys must be fetched over https (or read from a file)"
            ))
        } else if s.is_empty() {
            Err("--k8s-jwks: expected a file or an https:// URL".to_owned())
        } else {
            Ok(JwksSource::File(PathBuf::from(s)))
        }
    }
}

impl fmt::Display for JwksSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JwksSource::File(p) => write!(f, "{}", p.display()),
            JwksSource::Url(u) => f.write_str(u),
        }
    }
}

/// How `usher ca serve` verifies Kubernetes service account tokens.
#[derive(Clone, Debug)]
pub struct K8sAuthConfig {
    /// The service account issuer (the API server's
    /// `--service-account-issuer`): `iss` must equal it. Without `jwks`, the
    /// keys are found by OIDC discovery from it (then it must be https).
    pub issuer: Option<String>,
    /// Where the keys are; without it, OIDC discovery of `issuer`.
    pub jwks: Option<JwksSource>,
    /// `aud` must contain this.
    pub audience: String,
    /// PEM roots that verify the HTTPS server of the keys (in a pod: the
    /// cluster CA, `/var/run/secrets/kubernetes.io/serviceaccount/ca.crt`);
    /// without it, the Mozilla roots.
    pub ca_file: Option<PathBuf>,
    /// A bearer token (the CA's own service account token) sent with the
    /// fetches to the issuer's and the JWKS URL's origin; re-read each time.
    pub api_token_file: Option<PathBuf>,
    /// Clock skew allowed on `exp`, `nbf` and `iat`.
    pub leeway: Duration,
    /// The keys are loaded again at most this often.
    pub min_refresh_interval: Duration,
    /// Keys older than this are loaded again at the next enrolment.
    pub max_key_age: Duration,
}

impl K8sAuthConfig {
    /// Tokens of `issuer` whose keys are at `jwks` (at least one of the
    /// two), for the default audience.
    pub fn new(issuer: Option<String>, jwks: Option<JwksSource>) -> K8sAuthConfig {
        K8sAuthConfig {
            issuer,
            jwks,
            audience: DEFAULT_AUDIENCE.to_owned(),
            ca_file: None,
            api_token_file: None,
            leeway: DEFAULT_LEEWAY,
            min_refresh_interval: DEFAULT_MIN_REFRESH_INTERVAL,
            max_key_age: DEFAULT_MAX_KEY_AGE,
        }
    }
}

/// Who a valid token says the caller is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct K8sIdentity {
    pub(crate) spiffe_id: SpiffeId,
    pub(crate) namespace: String,
    pub(crate) service_account: String,
    /// The pod the token is bound to, if it says.
    pub(crate) pod: Option<String>,
}

/// Why a service account token is refused. The messages never quote the
/// token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum K8sTokenError {
    #[error("not a JWT usher can read (three base64url parts, a known alg): {0}")]
    Malformed(String),
    #[error("the token is signed with {0:?}; only RS256, ES256 and ES384 are accepted")]
    Algorithm(String),
    #[error("the token names the key {kid:?}, which the issuer's key set does not hold")]
    UnknownKey { kid: String },
    #[error("the token's signature does not verify with any of the issuer's keys")]
    BadSignature,
    #[error("the token has expired")]
    Expired,
    #[error("the token is not valid yet (nbf or iat in the future)")]
    NotYetValid,
    #[error("the token's aud does not contain the audience {0:?}")]
    WrongAudience(String),
    #[error("the token's iss is not the issuer {0:?}")]
    WrongIssuer(String),
    #[error("the token has no {0:?} claim (or one of the wrong type)")]
    MissingClaim(String),
    #[error("the token's sub {sub:?} is not system:serviceaccount:<namespace>:<name>")]
    BadSubject { sub: String },
    #[error(
        "the token's sub names {sub_ns}/{sub_sa} but its kubernetes.io claim names \
         {claim_ns}/{claim_sa}"
    )]
    Disagree {
        sub_ns: String,
        sub_sa: String,
        claim_ns: String,
        claim_sa: String,
    },
    #[error("the service account's {what} {value:?} is not a valid SPIFFE path segment")]
    BadName { what: &'static str, value: String },
    #[error("the SPIFFE ID made from the service account is not valid: {0}")]
    BadId(String),
}

impl K8sTokenError {
    /// The short message the client gets (and its HTTP status class: a
    /// token that is authentic but maps to no SPIFFE ID is 403, the rest
    /// 401).
    pub(crate) fn client_message(&self) -> (bool, &'static str) {
        match self {
            K8sTokenError::Malformed(_) => (false, "malformed service account token"),
            K8sTokenError::Algorithm(_) => (
                false,
                "service account token signed with an algorithm that is not accepted",
            ),
            K8sTokenError::UnknownKey { .. } => {
                (false, "service account token signed by an unknown key")
            }
            K8sTokenError::BadSignature => (
                false,
                "the service account token's signature does not verify",
            ),
            K8sTokenError::Expired => (false, "service account token expired"),
            K8sTokenError::NotYetValid => (false, "service account token not valid yet"),
            K8sTokenError::WrongAudience(_) => {
                (false, "service account token for another audience")
            }
            K8sTokenError::WrongIssuer(_) => (false, "service account token from another issuer"),
            K8sTokenError::MissingClaim(_) => {
                (false, "service account token without a required claim")
            }
            K8sTokenError::BadSubject { .. } | K8sTokenError::Disagree { .. } => (
                false,
                "the service account token's sub and kubernetes.io claims do not agree",
            ),
            K8sTokenError::BadName { .. } => (
                true,
                "the service account's namespace or name is not a valid SPIFFE path segment",
            ),
            K8sTokenError::BadId(_) => (
                true,
                "the SPIFFE ID made from the service account is not valid",
            ),
        }
    }
}

/// The keys in use, and when they were loaded.
struct KeySet {
    jwks: Jwks,
    loaded: Instant,
}

/// Verifies service account tokens for one CA (trust domain).
pub(crate) struct K8sVerifier {
    cfg: K8sAuthConfig,
    trust_domain: String,
    fetcher: Fetcher,
    keys: RwLock<Arc<KeySet>>,
    /// When the keys were last loaded or tried; serialises the loads.
    last_attempt: tokio::sync::Mutex<Instant>,
}

impl fmt::Debug for K8sVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("K8sVerifier")
            .field("issuer", &self.cfg.issuer)
            .field("jwks", &self.cfg.jwks)
            .field("audience", &self.cfg.audience)
            .finish_non_exhaustive()
    }
}

impl K8sVerifier {
    /// Checks `cfg` and loads the keys once (an error if that fails).
    pub(crate) async fn start(
        cfg: K8sAuthConfig,
        trust_domain: &str,
    ) -> Result<K8sVerifier, String> {
        if cfg.audience.is_empty() {
            return Err("--k8s-audience must not be empty".to_owned());
        }
        let mut bearer_origins = Vec::new();
        match (&cfg.issuer, &cfg.jwks) {
            // The issuer is always checked (`iss`): keys alone would accept
            // a token of any issuer that shares them.
            (None, _) => {
                return Err(
                    "give --k8s-issuer (the tokens' iss; its keys by OIDC discovery unless \
                     --k8s-jwks names them)"
                        .to_owned(),
                )
            }
            (Some(issuer), None) => {
                // Discovery: the issuer must be an https URL.
                let url = HttpsUrl::parse(issuer, "--k8s-issuer")?;
                bearer_origins.push(url.origin());
            }
            (Some(issuer), Some(_)) if issuer.is_empty() => {
                return Err("--k8s-issuer must not be empty".to_owned())
            }
            _ => {}
        }
        if let Some(JwksSource::Url(url)) = &cfg.jwks {
            bearer_origins.push(HttpsUrl::parse(url, "--k8s-jwks")?.origin());
        }
        let ca_pem = match &cfg.ca_file {
            Some(path) => Some(
                std::fs::read(path)
                    .map_err(|e| format!("cannot read --k8s-ca-file {}: {e}", path.display()))?,
            ),
            None => None,
        };
        let fetcher = Fetcher::new(
            ca_pem.as_deref(),
            cfg.api_token_file.clone(),
            bearer_origins,
        )?;
        let jwks = load_keys(&cfg, &fetcher).await?;
        log_loaded(&cfg, &jwks, "loaded");
        let now = Instant::now();
        Ok(K8sVerifier {
            trust_domain: trust_domain.to_owned(),
            fetcher,
            keys: RwLock::new(Arc::new(KeySet { jwks, loaded: now })),
            last_attempt: tokio::sync::Mutex::new(now),
            cfg,
        })
    }

    fn keys(&self) -> Arc<KeySet> {
        match self.keys.read() {
            Ok(k) => k.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Before [`K8sVerifier::verify`]: loads the keys again if `token`
    /// names a `kid` the set lacks or the keys are old, unless that was
    /// tried less than `min_refresh_interval` ago. Never fails: a failed
    /// load keeps the keys in use (and is logged).
    pub(crate) async fn refresh_for(&self, token: &str) {
        let keys = self.keys();
        let kid = (token.len() <= MAX_TOKEN_BYTES)
            .then(|| jsonwebtoken::decode_header(token).ok())
            .flatten()
            .and_then(|h| h.kid);
        let unknown_kid = kid.as_deref().is_some_and(|kid| !keys.jwks.has_kid(kid));
        let old = keys.loaded.elapsed() >= self.cfg.max_key_age;
        if !unknown_kid && !old {
            return;
        }
        let mut last = self.last_attempt.lock().await;
        if last.elapsed() < self.cfg.min_refresh_interval {
            return;
        }
        // Loaded by another request while this one waited for the lock?
        if !Arc::ptr_eq(&keys, &self.keys()) {
            return;
        }
        *last = Instant::now();
        match load_keys(&self.cfg, &self.fetcher).await {
            Ok(jwks) => {
                log_loaded(&self.cfg, &jwks, "refreshed");
                let fresh = Arc::new(KeySet {
                    jwks,
                    loaded: Instant::now(),
                });
                match self.keys.write() {
                    Ok(mut k) => *k = fresh,
                    Err(poisoned) => *poisoned.into_inner() = fresh,
                }
            }
            Err(error) => tracing::warn!(
                source = %source_name(&self.cfg),
                %error,
                keys_in_use = keys.jwks.keys.len(),
                "cannot refresh the service account issuer's keys; keeping the keys in use"
            ),
        }
    }

    /// Verifies `token` (see the module docs) against the keys in use, at
    /// the system time. Does not wait: no load happens here.
    pub(crate) fn verify(&self, token: &str) -> Result<K8sIdentity, K8sTokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(K8sTokenError::Malformed(format!(
                "longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| K8sTokenError::Malformed(header_error(e.kind())))?;
        let alg = header.alg;
        if !ALGORITHMS.contains(&alg) {
            return Err(K8sTokenError::Algorithm(format!("{alg:?}")));
        }
        let keys = self.keys();
        if let Some(kid) = &header.kid {
            if !keys.jwks.has_kid(kid) {
                return Err(K8sTokenError::UnknownKey { kid: kid.clone() });
            }
        }
        let leeway = self.cfg.leeway.as_secs();
        let mut validation = Validation::new(alg);
        validation.leeway = leeway;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.set_audience(&[self.cfg.audience.as_str()]);
        let mut required = vec!["exp", "nbf", "aud", "sub"];
        if let Some(issuer) = &self.cfg.issuer {
            validation.set_issuer(&[issuer.as_str()]);
            required.push("iss");
        }
        validation.set_required_spec_claims(&required);

        let mut last = K8sTokenError::BadSignature;
        let mut claims = None;
        for key in keys.jwks.candidates(header.kid.as_deref(), alg) {
            match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
                Ok(data) => {
                    claims = Some(data.claims);
                    break;
                }
                Err(e) => {
                    last = self.claim_error(e.kind());
                    // A bad signature may just be the wrong key of several;
                    // anything else is about the token itself.
                    if !matches!(last, K8sTokenError::BadSignature) {
                        return Err(last);
                    }
                }
            }
        }
        let claims = claims.ok_or(last)?;

        // jsonwebtoken does not look at iat.
        let iat = claims
            .get("iat")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| K8sTokenError::MissingClaim("iat".to_owned()))?;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        if iat > now.saturating_add(leeway) {
            return Err(K8sTokenError::NotYetValid);
        }
        identity(&claims, &self.trust_domain)
    }

    fn claim_error(&self, kind: &ErrorKind) -> K8sTokenError {
        match kind {
            ErrorKind::InvalidSignature => K8sTokenError::BadSignature,
            ErrorKind::ExpiredSignature => K8sTokenError::Expired,
            ErrorKind::ImmatureSignature => K8sTokenError::NotYetValid,
            ErrorKind::InvalidAudience => K8sTokenError::WrongAudience(self.cfg.audience.clone()),
            ErrorKind::InvalidIssuer => {
                K8sTokenError::WrongIssuer(self.cfg.issuer.clone().unwrap_or_default())
            }
            ErrorKind::MissingRequiredClaim(c) | ErrorKind::InvalidClaimFormat(c) => {
                K8sTokenError::MissingClaim(c.clone())
            }
            ErrorKind::InvalidAlgorithm => K8sTokenError::Algorithm("(key mismatch)".to_owned()),
            other => K8sTokenError::Malformed(header_error(other)),
        }
    }
}

/// A category for a token that cannot be read (never the token itself).
fn header_error(kind: &ErrorKind) -> String {
    match kind {
        ErrorKind::Base64(_) => "bad base64url".to_owned(),
        ErrorKind::Json(_) => "bad JSON, or an unknown alg (such as none)".to_owned(),
        ErrorKind::Utf8(_) => "not UTF-8".to_owned(),
        ErrorKind::InvalidToken => "not three dot-separated parts".to_owned(),
        _ => "unreadable".to_owned(),
    }
}

/// The identity in verified claims: `sub` and `kubernetes.io` must agree.
fn identity(claims: &serde_json::Value, trust_domain: &str) -> Result<K8sIdentity, K8sTokenError> {
    let sub = claims
        .get("sub")
        .and_then(|s| s.as_str())
        .ok_or_else(|| K8sTokenError::MissingClaim("sub".to_owned()))?;
    let bad_subject = || K8sTokenError::BadSubject {
        sub: sub.to_owned(),
    };
    let rest = sub.strip_prefix(SUBJECT_PREFIX).ok_or_else(bad_subject)?;
    let (sub_ns, sub_sa) = rest.split_once(':').ok_or_else(bad_subject)?;
    if sub_ns.is_empty() || sub_sa.is_empty() || sub_sa.contains(':') {
        return Err(bad_subject());
    }
    let kube = claims
        .get("kubernetes.io")
        .ok_or_else(|| K8sTokenError::MissingClaim("kubernetes.io".to_owned()))?;
    let claim_ns = kube
        .get("namespace")
        .and_then(|v| v.as_str())
        .ok_or_else(|| K8sTokenError::MissingClaim("kubernetes.io.namespace".to_owned()))?;
    let claim_sa = kube
        .get("serviceaccount")
        .and_then(|v| v.get("name"))
        .and_then(|v| v.as_str())
        .ok_or_else(|| {
            K8sTokenError::MissingClaim("kubernetes.io.serviceaccount.name".to_owned())
        })?;
    if claim_ns != sub_ns || claim_sa != sub_sa {
        return Err(K8sTokenError::Disagree {
            sub_ns: sub_ns.to_owned(),
            sub_sa: sub_sa.to_owned(),
            claim_ns: claim_ns.to_owned(),
            claim_sa: claim_sa.to_owned(),
        });
    }
    for (what, value) in [("namespace", sub_ns), ("name", sub_sa)] {
        if !is_path_segment(value) {
            return Err(K8sTokenError::BadName {
                what,
                value: value.to_owned(),
            });
        }
    }
    let spiffe_id =
        SpiffeId::parse_workload(&format!("spiffe://{trust_domain}/ns/{sub_ns}/sa/{sub_sa}"))
            .map_err(|e| K8sTokenError::BadId(e.to_string()))?;
    let pod = kube
        .get("pod")
        .and_then(|p| p.get("name"))
        .and_then(|v| v.as_str())
        .map(str::to_owned);
    Ok(K8sIdentity {
        spiffe_id,
        namespace: sub_ns.to_owned(),
        service_account: sub_sa.to_owned(),
        pod,
    })
}

/// One SPIFFE path segment: non-empty, not `.` or `..`, `[a-zA-Z0-9._-]`.
fn is_path_segment(s: &str) -> bool {
    !s.is_empty()
        && s != "."
        && s != ".."
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
}

fn source_name(cfg: &K8sAuthConfig) -> String {
    match (&cfg.jwks, &cfg.issuer) {
        (Some(source), _) => source.to_string(),
        (None, Some(issuer)) => format!("{issuer} (OIDC discovery)"),
        (None, None) => "-".to_owned(),
    }
}

/// Loads the keys from the configured source.
async fn load_keys(cfg: &K8sAuthConfig, fetcher: &Fetcher) -> Result<Jwks, String> {
    let bytes = match (&cfg.jwks, &cfg.issuer) {
        (Some(JwksSource::File(path)), _) => std::fs::read(path)
            .map_err(|e| format!("cannot read --k8s-jwks {}: {e}", path.display()))?,
        (Some(JwksSource::Url(url)), _) => {
            fetcher.get(&HttpsUrl::parse(url, "--k8s-jwks")?).await?
        }
        (None, Some(issuer)) => {
            let jwks_uri = fetcher.discover(issuer).await?;
            fetcher.get(&jwks_uri).await?
        }
        (None, None) => return Err("no source of keys".to_owned()),
    };
    Jwks::parse(&bytes).map_err(|e| format!("{}: {e}", source_name(cfg)))
}

fn log_loaded(cfg: &K8sAuthConfig, jwks: &Jwks, what: &str) {
    let kids: Vec<&str> = jwks
        .keys
        .iter()
        .map(|k| k.kid.as_deref().unwrap_or("-"))
        .collect();
    tracing::info!(
        source = %source_name(cfg),
        keys = jwks.keys.len(),
        kids = %kids.join(","),
        "service account issuer keys {what}"
    );
    for skipped in &jwks.skipped {
        tracing::warn!(source = %source_name(cfg), key = %skipped, "service account issuer key not used");
    }
}

#[cfg(test)]
mod tests;
