//! The trust bundle in force, behind an atomic swap: a root rotation (old
//! roots → old + new → new) replaces it while connections keep running,
//! and every handshake after the swap verifies against the new roots.

use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::crypto::CryptoProvider;
use rustls::server::danger::ClientCertVerifier;
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use super::TlsError;

/// Roots and the webpki client verifier built from them (built once per
/// bundle, not per handshake).
#[derive(Debug)]
pub(crate) struct Trust {
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) client_verifier: Arc<dyn ClientCertVerifier>,
}

#[derive(Debug)]
pub struct TrustStore {
    current: ArcSwap<Trust>,
    provider: Arc<CryptoProvider>,
}

impl TrustStore {
    pub fn new(
        roots: Arc<RootCertStore>,
        provider: Arc<CryptoProvider>,
    ) -> Result<Arc<TrustStore>, TlsError> {
        let trust = build(roots, &provider)?;
        Ok(Arc::new(TrustStore {
            current: ArcSwap::from_pointee(trust),
            provider,
        }))
    }

    /// A snapshot for one handshake.
    pub(crate) fn current(&self) -> Arc<Trust> {
        self.current.load_full()
    }

    /// Installs a new bundle; an unusable one is refused and the old kept.
    pub(crate) fn replace(&self, roots: Arc<RootCertStore>) -> Result<(), TlsError> {
        let trust = build(roots, &self.provider)?;
        self.current.store(Arc::new(trust));
        Ok(())
    }
}

fn build(roots: Arc<RootCertStore>, provider: &Arc<CryptoProvider>) -> Result<Trust, TlsError> {
    let client_verifier =
        WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone()).build()?;
    Ok(Trust {
        roots,
        client_verifier,
    })
}
