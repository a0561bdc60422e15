//! Reading the identity files named in `usher.yaml`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use usher_ca::{spiffe_id_from_cert_der, SpiffeId};

use crate::config::IdentityConfig;

/// What a sidecar needs to speak mTLS: who it is and whom it trusts.
#[derive(Debug)]
pub struct LoadedIdentity {
    pub spiffe_id: SpiffeId,
    pub certified_key: Arc<CertifiedKey>,
    pub roots: Arc<RootCertStore>,
    pub not_after: SystemTime,
}

#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("{path}: cannot read PEM certificates: {source}", path = .path.display())]
    ReadCerts {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path}: no certificate found (expected PEM `BEGIN CERTIFICATE` blocks)", path = .path.display())]
    NoCerts { path: PathBuf },
    #[error("{path}: cannot read the private key (expected a PEM PKCS#8, SEC1 or PKCS#1 key): {source}", path = .path.display())]
    ReadKey {
        path: PathBuf,
        source: rustls_pki_types::pem::Error,
    },
    #[error("{path}: the private key is not usable or does not match the certificate: {source}", path = .path.display())]
    KeyMismatch {
        path: PathBuf,
        source: rustls::Error,
    },
    #[error("{path}: the certificate carries no usable SPIFFE ID: {source}", path = .path.display())]
    NoSpiffeId {
        path: PathBuf,
        source: usher_ca::CertIdentityError,
    },
    #[error("{path}: the certificate cannot be parsed: {reason}", path = .path.display())]
    BadCert { path: PathBuf, reason: String },
    #[error("{path}: not a usable trust anchor: {source}", path = .path.display())]
    BadRoot {
        path: PathBuf,
        source: rustls::Error,
    },
}

/// Loads and cross-checks the three identity files.
pub fn load_identity(
    config: &IdentityConfig,
    provider: &CryptoProvider,
) -> Result<LoadedIdentity, IdentityError> {
    let chain = read_certs(&config.cert)?;
    let key =
        PrivateKeyDer::from_pem_file(&config.key).map_err(|source| IdentityError::ReadKey {
            path: config.key.clone(),
            source,
        })?;
    let certified_key = CertifiedKey::from_der(chain, key, provider).map_err(|source| {
        IdentityError::KeyMismatch {
            path: config.key.clone(),
            source,
        }
    })?;
    let leaf = &certified_key.cert[0];
    let spiffe_id = spiffe_id_from_cert_der(leaf).map_err(|source| IdentityError::NoSpiffeId {
        path: config.cert.clone(),
        source,
    })?;
    let not_after = not_after(leaf).map_err(|reason| IdentityError::BadCert {
        path: config.cert.clone(),
        reason,
    })?;

    let mut roots = RootCertStore::empty();
    for cert in read_certs(&config.bundle)? {
        roots.add(cert).map_err(|source| IdentityError::BadRoot {
            path: config.bundle.clone(),
            source,
        })?;
    }
    Ok(LoadedIdentity {
        spiffe_id,
        certified_key: Arc::new(certified_key),
        roots: Arc::new(roots),
        not_after,
    })
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|source| IdentityError::ReadCerts {
            path: path.to_path_buf(),
            source,
        })?;
    if certs.is_empty() {
        return Err(IdentityError::NoCerts {
            path: path.to_path_buf(),
        });
    }
    Ok(certs)
}

fn not_after(der: &[u8]) -> Result<SystemTime, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let secs = cert.validity().not_after.timestamp();
    let secs = u64::try_from(secs).map_err(|_| "notAfter is before 1970".to_string())?;
    Ok(SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}
