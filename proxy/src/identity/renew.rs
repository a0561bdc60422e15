//! CA mode: the sidecar makes its own key, sends only a CSR to `usher ca
//! serve`, and keeps its certificate fresh.
//!
//! - First enrolment is authorized by the token file (a bootstrap token, or
//!   a Kubernetes projected service account token), read afresh for every
//!   attempt; it is retried with backoff until it works (`/ready` stays
//!   false meanwhile).
//! - Renewal starts at `identity.ca.renew_at` of the lifetime (±5 % jitter,
//!   so a fleet does not renew in step) and is authorized by the current
//!   certificate (mutual TLS to the CA). Failures back off and retry; the
//!   current certificate keeps serving until it expires, then readiness
//!   turns false and usher falls back to the token until the CA answers.
//! - The CA's bundle comes with every certificate: a bundle with old and
//!   new roots rolls out with renewals (root rotation without an outage).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rustls::crypto::CryptoProvider;
use tokio_util::sync::CancellationToken;
use usher_ca::{make_key_and_csr, CaClient, CaClientError};

use super::{parse_identity, Identity, IdentityError, LoadedIdentity, Origin};
use crate::config::CaIdentityConfig;
use crate::telemetry::Metrics;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RenewError {
    #[error("cannot read the enrolment token {path}: {source}", path = .path.display())]
    Token {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the CA bundle {path}: {source}", path = .path.display())]
    Bundle {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a key and CSR: {0}")]
    Csr(#[from] usher_ca::CaError),
    #[error("the CA: {0}")]
    Ca(#[from] CaClientError),
    #[error("the CA's answer: {0}")]
    Answer(#[from] IdentityError),
}

/// The PEM the sidecar holds for renewing over mutual TLS. The key never
/// leaves the process.
#[derive(Clone)]
pub(crate) struct Credentials {
    chain_pem: String,
    key_pem: String,
}

/// How the certificate was obtained, for the log.
#[derive(Clone, Copy, Debug)]
enum How {
    Token,
    Renewal,
}

impl How {
    fn as_str(self) -> &'static str {
        match self {
            How::Token => "token",
            How::Renewal => "renewal",
        }
    }
}

/// Roots to verify the CA server: the configured CA bundle plus the trust
/// bundle in force (which, during a root rotation, already has the new root).
fn ca_roots(config: &CaIdentityConfig, current: &[u8]) -> Result<String, RenewError> {
    let mut pem = std::fs::read_to_string(&config.bundle).map_err(|source| RenewError::Bundle {
        path: config.bundle.clone(),
        source,
    })?;
    pem.push('\n');
    pem.push_str(&String::from_utf8_lossy(current));
    Ok(pem)
}

async fn obtain(
    config: &CaIdentityConfig,
    current_bundle: &[u8],
    renew_with: Option<&Credentials>,
    provider: &CryptoProvider,
) -> Result<(LoadedIdentity, Credentials), RenewError> {
    let client = CaClient::new(&config.url, &ca_roots(config, current_bundle)?)?;
    let (key_pem, csr_pem) = make_key_and_csr(&config.spiffe_id)?;
    let signed = match renew_with {
        Some(creds) => {
            client
                .renew(&creds.chain_pem, &creds.key_pem, &csr_pem)
                .await?
        }
        None => {
            let token = std::fs::read_to_string(&config.token_file).map_err(|source| {
                RenewError::Token {
                    path: config.token_file.clone(),
                    source,
                }
            })?;
            client.enrol(token.trim(), &csr_pem).await?
        }
    };
    let loaded = parse_identity(
        signed.cert_chain_pem.as_bytes(),
        key_pem.as_bytes(),
        signed.bundle_pem.as_bytes(),
        &Origin::ca(&config.url),
        provider,
    )?;
    Ok((
        loaded,
        Credentials {
            chain_pem: signed.cert_chain_pem,
            key_pem,
        },
    ))
}

/// First enrolment: retried with backoff until it works (the caller drops
/// this future to give up, e.g. on SIGTERM).
pub(crate) async fn enrol(
    config: &CaIdentityConfig,
    provider: &CryptoProvider,
    metrics: &Metrics,
) -> (LoadedIdentity, Credentials) {
    let mut backoff = Duration::from_millis(200);
    loop {
        match obtain(config, b"", None, provider).await {
            Ok((loaded, creds)) => {
                metrics.renewal(true);
                log_installed(&loaded, How::Token);
                return (loaded, creds);
            }
            Err(e) => {
                metrics.renewal(false);
                tracing::warn!(
                    ca = %config.url,
                    spiffe_id = %config.spiffe_id,
                    error = %e,
                    retry_in = ?backoff,
                    "enrolment with the CA failed; not ready"
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

fn log_installed(loaded: &LoadedIdentity, how: How) {
    tracing::info!(
        spiffe_id = %loaded.spiffe_id,
        serial = %loaded.serial_hex,
        not_after = %humantime::format_rfc3339_seconds(loaded.not_after),
        how = how.as_str(),
        "certificate renewed"
    );
}

/// When to renew a certificate obtained at `from` and valid until `to`.
pub(crate) fn renewal_time(
    from: SystemTime,
    to: SystemTime,
    renew_at: f64,
    jitter: f64,
) -> SystemTime {
    let lifetime = to.duration_since(from).unwrap_or(Duration::ZERO);
    let fraction = (renew_at + jitter).clamp(0.05, 0.95);
    from + lifetime.mul_f64(fraction)
}

/// The renewal loop, for the life of the sidecar.
pub(crate) fn spawn_renewal(
    identity: Arc<Identity>,
    config: CaIdentityConfig,
    mut creds: Credentials,
    provider: Arc<CryptoProvider>,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    tokio::spawn(async move {
        loop {
            let info = identity.info();
            let at = renewal_time(
                info.obtained,
                info.not_after,
                config.renew_at,
                (fastrand::f64() - 0.5) * 0.1,
            );
            let wait = at
                .duration_since(SystemTime::now())
                .unwrap_or(Duration::ZERO);
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let lifetime = info
                .not_after
                .duration_since(info.obtained)
                .unwrap_or(Duration::from_secs(60));
            // Short certificates retry faster, long ones at most every 30 s.
            let min_backoff =
                (lifetime / 20).clamp(Duration::from_millis(100), Duration::from_secs(1));
            let max_backoff = (lifetime / 4).clamp(min_backoff, Duration::from_secs(30));
            let mut backoff = min_backoff;
            loop {
                let info = identity.info();
                let expired = SystemTime::now() >= info.not_after;
                let how = if expired { How::Token } else { How::Renewal };
                let renew_with = (!expired).then_some(&creds);
                let result = obtain(&config, info.bundle_pem(), renew_with, &provider).await;
                let failure = match result {
                    Ok((loaded, new_creds)) => {
                        let summary = (loaded.serial_hex.clone(), loaded.not_after);
                        match identity.install(loaded) {
                            Ok(()) => {
                                metrics.renewal(true);
                                tracing::info!(
                                    spiffe_id = %identity.spiffe_id,
                                    serial = %summary.0,
                                    not_after = %humantime::format_rfc3339_seconds(summary.1),
                                    how = how.as_str(),
                                    "certificate renewed"
                                );
                                creds = new_creds;
                                break;
                            }
                            Err(e) => e.to_string(),
                        }
                    }
                    Err(e) => e.to_string(),
                };
                metrics.renewal(false);
                let until_expiry = info
                    .not_after
                    .duration_since(SystemTime::now())
                    .unwrap_or(Duration::ZERO);
                tracing::warn!(
                    ca = %config.url,
                    error = %failure,
                    retry_in = ?backoff,
                    expires_in = ?until_expiry,
                    "certificate renewal failed; still serving with the current certificate until it expires"
                );
                let sleep = if until_expiry.is_zero() {
                    if identity.mark_expired() {
                        tracing::error!(
                            serial = %info.serial_hex,
                            "the workload certificate has expired; not ready until the CA issues a new one"
                        );
                    }
                    backoff
                } else {
                    backoff.min(until_expiry)
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(sleep) => {}
                }
                backoff = (backoff * 2).min(max_backoff);
            }
        }
    });
}
