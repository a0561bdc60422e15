//! Certificate verifiers that add SPIFFE checks to webpki's chain checks.
//!
//! rustls' stock verifiers check the chain, validity and DNS/IP names, but
//! ignore URI SANs, where SPIFFE IDs live. Peers in a mesh are named by
//! SPIFFE ID, so:
//! - inbound, a client must present exactly one valid SPIFFE ID;
//! - outbound, the server's SPIFFE ID must be the route's `identity`; the
//!   handshake fails otherwise, so the peer never sees the request.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::verify_server_cert_signed_by_trust_anchor;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::ParsedCertificate;
use rustls::{
    CertificateError, DigitallySignedStruct, DistinguishedName, OtherError, RootCertStore,
    SignatureScheme,
};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use usher_ca::{spiffe_id_from_cert_der, SpiffeId};

use super::trust::TrustStore;

/// The server presented a valid certificate for another workload.
#[derive(Debug, Clone)]
pub(crate) struct IdentityMismatch {
    pub(crate) expected: SpiffeId,
    pub(crate) presented: SpiffeId,
}

impl fmt::Display for IdentityMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "peer identity mismatch: expected {}, peer presented {}",
            self.expected, self.presented
        )
    }
}

impl std::error::Error for IdentityMismatch {}

fn other_error(e: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(OtherError(Arc::new(e))))
}

/// Inbound: webpki's client verifier for the bundle in force, plus "the
/// leaf carries a SPIFFE ID".
#[derive(Debug)]
pub(super) struct SpiffeClientVerifier {
    trust: Arc<TrustStore>,
}

impl SpiffeClientVerifier {
    pub(super) fn new(trust: Arc<TrustStore>) -> Self {
        SpiffeClientVerifier { trust }
    }
}

impl ClientCertVerifier for SpiffeClientVerifier {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // The bundle can change under us, so no borrowed hints: mesh
        // clients have one certificate and do not choose by hint.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.trust
            .current()
            .client_verifier
            .verify_client_cert(end_entity, intermediates, now)?;
        spiffe_id_from_cert_der(end_entity).map_err(other_error)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .current()
            .client_verifier
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.trust
            .current()
            .client_verifier
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.trust
            .current()
            .client_verifier
            .supported_verify_schemes()
    }
}

/// Outbound: chain to the bundle (with serverAuth EKU and validity), then
/// the SPIFFE ID must equal the route's expected identity. The TLS server
/// name is ignored: mesh peers are named by SPIFFE ID, not DNS.
#[derive(Debug)]
pub struct SpiffeServerVerifier {
    roots: Roots,
    expected: SpiffeId,
    provider: Arc<CryptoProvider>,
}

/// Fixed roots (tools, tests) or the sidecar's swappable bundle.
#[derive(Debug)]
enum Roots {
    Fixed(Arc<RootCertStore>),
    Store(Arc<TrustStore>),
}

impl SpiffeServerVerifier {
    pub fn new(
        roots: Arc<RootCertStore>,
        expected: SpiffeId,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        SpiffeServerVerifier {
            roots: Roots::Fixed(roots),
            expected,
            provider,
        }
    }

    /// Verifies against whatever bundle `trust` holds at handshake time.
    pub(crate) fn with_trust(
        trust: Arc<TrustStore>,
        expected: SpiffeId,
        provider: Arc<CryptoProvider>,
    ) -> Self {
        SpiffeServerVerifier {
            roots: Roots::Store(trust),
            expected,
            provider,
        }
    }
}

impl ServerCertVerifier for SpiffeServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let parsed = ParsedCertificate::try_from(end_entity)?;
        let snapshot;
        let roots: &RootCertStore = match &self.roots {
            Roots::Fixed(roots) => roots,
            Roots::Store(store) => {
                snapshot = store.current();
                &snapshot.roots
            }
        };
        verify_server_cert_signed_by_trust_anchor(
            &parsed,
            roots,
            intermediates,
            now,
            self.provider.signature_verification_algorithms.all,
        )?;
        let presented = spiffe_id_from_cert_der(end_entity).map_err(other_error)?;
        if presented != self.expected {
            return Err(other_error(IdentityMismatch {
                expected: self.expected.clone(),
                presented,
            }));
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The SPIFFE ID of the peer of an established TLS connection, from its
/// (already verified) leaf certificate.
pub(crate) fn peer_identity(conn: &rustls::CommonState) -> Option<SpiffeId> {
    let leaf = conn.peer_certificates()?.first()?;
    spiffe_id_from_cert_der(leaf).ok()
}
