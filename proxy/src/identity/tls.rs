//! rustls configurations for both legs of the mesh.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::ResolvesClientCert;
use rustls::crypto::{aws_lc_rs, CryptoProvider};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig, SignatureScheme};
use usher_ca::SpiffeId;

use super::trust::TrustStore;
use super::verify::{SpiffeClientVerifier, SpiffeServerVerifier};
use crate::config::{TlsConfig, TlsVersion};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("TLS configuration refused: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
}

/// The one crypto provider usher uses (aws-lc-rs), with or without the
/// post-quantum hybrid key exchange offered first.
pub fn crypto_provider(tls: &TlsConfig) -> Arc<CryptoProvider> {
    let mut provider = aws_lc_rs::default_provider();
    if !tls.post_quantum {
        provider.kx_groups = vec![
            aws_lc_rs::kx_group::X25519,
            aws_lc_rs::kx_group::SECP256R1,
            aws_lc_rs::kx_group::SECP384R1,
        ];
    }
    Arc::new(provider)
}

fn versions(tls: &TlsConfig) -> &'static [&'static rustls::SupportedProtocolVersion] {
    static TLS13_ONLY: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    static TLS13_AND_12: &[&rustls::SupportedProtocolVersion] =
        &[&rustls::version::TLS13, &rustls::version::TLS12];
    match tls.min_version {
        TlsVersion::Tls13 => TLS13_ONLY,
        TlsVersion::Tls12 => TLS13_AND_12,
    }
}

/// The workload's current certificate and key. Readers take a cheap
/// snapshot per handshake; a renewal stores a new one atomically.
#[derive(Debug)]
pub struct CertStore {
    current: ArcSwap<CertifiedKey>,
}

impl CertStore {
    pub fn new(key: Arc<CertifiedKey>) -> Arc<CertStore> {
        Arc::new(CertStore {
            current: ArcSwap::new(key),
        })
    }

    #[cfg(test)]
    pub(crate) fn current(&self) -> Arc<CertifiedKey> {
        self.current.load_full()
    }

    pub(crate) fn replace(&self, key: Arc<CertifiedKey>) {
        self.current.store(key);
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

impl ResolvesClientCert for CertStore {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        _sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }

    fn has_certs(&self) -> bool {
        true
    }
}

/// Which application protocol a client connection offers in ALPN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Alpn {
    Http1,
    H2,
    /// usher's multiplexed hop between sidecars: HTTP/2 framing, every
    /// request on it an HTTP/1.x request of the caller's app, restored to
    /// HTTP/1.1 by the callee. Offered with `http/1.1` as the fallback, so
    /// that a peer that does not know it (an older usher, another mTLS
    /// server) answers HTTP/1.1 as before.
    Mux,
}

/// The ALPN identifier of [`Alpn::Mux`].
pub(crate) const MUX_ALPN: &[u8] = b"usher-mux/h1";

impl Alpn {
    pub(crate) fn id(self) -> &'static [u8] {
        match self {
            Alpn::Http1 => b"http/1.1",
            Alpn::H2 => b"h2",
            Alpn::Mux => MUX_ALPN,
        }
    }

    /// What a client connection offers, in order of preference.
    fn offered(self) -> Vec<Vec<u8>> {
        match self {
            Alpn::Http1 | Alpn::H2 => vec![self.id().to_vec()],
            Alpn::Mux => vec![MUX_ALPN.to_vec(), Alpn::Http1.id().to_vec()],
        }
    }
}

/// The inbound (server) side: client certificates required and verified
/// against the bundle, and the client must present a SPIFFE ID.
pub(crate) fn server_config(
    certs: Arc<CertStore>,
    trust: Arc<TrustStore>,
    tls: &TlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ServerConfig>, TlsError> {
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(tls))?
        .with_client_cert_verifier(Arc::new(SpiffeClientVerifier::new(trust)))
        .with_cert_resolver(certs);
    // rustls picks the first of these the client offers: the multiplexed
    // hop must come before `http/1.1`, which its clients offer as fallback.
    config.alpn_protocols = vec![
        MUX_ALPN.to_vec(),
        Alpn::H2.id().to_vec(),
        Alpn::Http1.id().to_vec(),
    ];
    Ok(Arc::new(config))
}

/// The outbound (client) side for one route: presents our certificate and
/// accepts only a peer whose SPIFFE ID is `expected`.
pub(crate) fn client_config(
    certs: Arc<CertStore>,
    trust: Arc<TrustStore>,
    expected: SpiffeId,
    alpn: Alpn,
    tls: &TlsConfig,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<ClientConfig>, TlsError> {
    let verifier = SpiffeServerVerifier::with_trust(trust, expected, provider.clone());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions(tls))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_client_cert_resolver(certs);
    config.alpn_protocols = alpn.offered();
    Ok(Arc::new(config))
}
