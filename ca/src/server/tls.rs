//! The CA server's TLS side: its own certificate (issued by the CA it
//! serves, key kept in memory, swapped in place before it expires so the
//! rustls config and its session cache stay), and the rustls server config:
//! aws-lc-rs only, TLS 1.3 only, ALPN http/1.1, client certificates optional
//! but verified against the trust bundle when presented.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{KeyPair, PKCS_ECDSA_P256_SHA256};
use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::sync::watch;

use super::{CaServerError, State};
use crate::authority::Ca;
use crate::error::{crypto, CaError};
use crate::issue::LeafSpec;
use crate::issued_log::IssuedHow;
use crate::spiffe::SpiffeId;

/// Lifetime of the server's own certificate (capped at the CA's expiry).
const SERVER_CERT_TTL: Duration = Duration::from_secs(7 * 24 * 60 * 60);
/// Retry delay after a failed re-issue of the server certificate.
const RETRY: Duration = Duration::from_secs(60);

/// The names in the server's certificate.
pub(super) struct ServerIdentity {
    id: SpiffeId,
    dns_names: Vec<String>,
    ips: Vec<IpAddr>,
}

impl ServerIdentity {
    pub(super) fn new(
        ca: &Ca,
        listen: SocketAddr,
        extra_dns: &[String],
    ) -> Result<Self, CaServerError> {
        let id = SpiffeId::parse_workload(&format!("spiffe://{}/usher/ca", ca.trust_domain()))
            .map_err(|error| CaError::InvalidTrustDomain {
                trust_domain: ca.trust_domain().to_owned(),
                error,
            })?;
        let mut dns_names = vec!["localhost".to_owned()];
        for name in extra_dns {
            crate::issue::dns_san(name)?;
            if !dns_names.contains(name) {
                dns_names.push(name.clone());
            }
        }
        let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if !listen.ip().is_unspecified() && !ips.contains(&listen.ip()) {
            ips.push(listen.ip());
        }
        Ok(ServerIdentity { id, dns_names, ips })
    }

    /// Issues (and logs) a server certificate; returns it with the time to
    /// renew it (two thirds into its life).
    pub(super) async fn issue(
        &self,
        state: &State,
    ) -> Result<(Arc<CertifiedKey>, SystemTime), CaError> {
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(crypto("generate the CA server's TLS key"))?;
        let leaf = state
            .sign_with(&self.id, IssuedHow::Server, |serial| {
                let spec = LeafSpec {
                    dns_names: &self.dns_names,
                    ip_addrs: &self.ips,
                    serial: Some(serial),
                    ..LeafSpec::new(&self.id, SERVER_CERT_TTL)
                };
                state.ca.sign_leaf(&spec, &key)
            })
            .await?;
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(leaf.cert_chain_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| CaError::InvalidCertificate {
                    path: "<CA server certificate>".into(),
                    reason: e.to_string(),
                })?;
        let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        let signing_key = provider()
            .key_provider
            .load_private_key(key_der)
            .map_err(|e| CaError::InvalidKey {
                path: "<CA server key>".into(),
                reason: e.to_string(),
            })?;
        let now = SystemTime::now();
        let left = leaf.not_after.duration_since(now).unwrap_or_default();
        let renew_at = now + left.mul_f64(2.0 / 3.0);
        Ok((Arc::new(CertifiedKey::new(chain, signing_key)), renew_at))
    }
}

/// Hands rustls the current server certificate.
pub(super) struct Resolver {
    current: RwLock<Arc<CertifiedKey>>,
}

impl Resolver {
    pub(super) fn new(first: Arc<CertifiedKey>) -> Self {
        Resolver {
            current: RwLock::new(first),
        }
    }

    fn set(&self, next: Arc<CertifiedKey>) {
        match self.current.write() {
            Ok(mut c) => *c = next,
            Err(poisoned) => *poisoned.into_inner() = next,
        }
    }
}

impl fmt::Debug for Resolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Resolver")
    }
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(match self.current.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        })
    }
}

/// Re-issues the server certificate two thirds into its life, until shutdown.
pub(super) async fn renew_server_cert(
    state: Arc<State>,
    identity: ServerIdentity,
    resolver: Arc<Resolver>,
    mut renew_at: SystemTime,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let wait = renew_at
            .duration_since(SystemTime::now())
            .unwrap_or_default()
            .max(Duration::from_secs(1));
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => return,
        }
        match identity.issue(&state).await {
            Ok((next, at)) => {
                resolver.set(next);
                renew_at = at;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot renew the CA server's own certificate; retrying");
                renew_at = SystemTime::now() + RETRY;
            }
        }
    }
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// The rustls config: TLS 1.3, ALPN http/1.1, optional client certificates
/// verified against the roots of `bundle_pem`.
pub(super) fn server_config(
    bundle_pem: &str,
    resolver: Arc<Resolver>,
) -> Result<ServerConfig, CaServerError> {
    let tls_error = |reason: String| CaServerError::Tls { reason };
    let provider = provider();
    let mut roots = RootCertStore::empty();
    for der in CertificateDer::pem_slice_iter(bundle_pem.as_bytes()) {
        let der = der.map_err(|e| tls_error(format!("trust bundle: {e}")))?;
        roots
            .add(der)
            .map_err(|e| tls_error(format!("trust bundle: {e}")))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(|e| tls_error(format!("client certificate verifier: {e}")))?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| tls_error(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_cert_resolver(resolver);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
