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
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// The leaf's serial number, lower-case hex.
    pub serial_hex: String,
    /// The bundle as read (PEM), to tell whether a new one differs.
    pub bundle_pem: Vec<u8>,
}

/// Where PEM material came from, for error messages: three files, or a
/// CA response (named by its URL).
#[derive(Clone, Debug)]
pub struct Origin {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub bundle: PathBuf,
}

impl Origin {
    pub fn ca(url: &str) -> Origin {
        let name = |what: &str| PathBuf::from(format!("{what} from the CA at {url}"));
        Origin {
            cert: name("certificate"),
            key: name("key"),
            bundle: name("bundle"),
        }
    }
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
    let origin = Origin {
        cert: config.cert.clone(),
        key: config.key.clone(),
        bundle: config.bundle.clone(),
    };
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| (path.to_path_buf(), rustls_pki_types::pem::Error::Io(e)))
    };
    let cert =
        read(&config.cert).map_err(|(path, source)| IdentityError::ReadCerts { path, source })?;
    let key =
        read(&config.key).map_err(|(path, source)| IdentityError::ReadKey { path, source })?;
    let bundle =
        read(&config.bundle).map_err(|(path, source)| IdentityError::ReadCerts { path, source })?;
    parse_identity(&cert, &key, &bundle, &origin, provider)
}

/// Parses and cross-checks PEM material: the chain (leaf first), its key
/// and the trust bundle.
pub fn parse_identity(
    cert_pem: &[u8],
    key_pem: &[u8],
    bundle_pem: &[u8],
    origin: &Origin,
    provider: &CryptoProvider,
) -> Result<LoadedIdentity, IdentityError> {
    let chain = read_certs(cert_pem, &origin.cert)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|source| IdentityError::ReadKey {
        path: origin.key.clone(),
        source,
    })?;
    let certified_key = CertifiedKey::from_der(chain, key, provider).map_err(|source| {
        IdentityError::KeyMismatch {
            path: origin.key.clone(),
            source,
        }
    })?;
    let leaf = &certified_key.cert[0];
    let spiffe_id = spiffe_id_from_cert_der(leaf).map_err(|source| IdentityError::NoSpiffeId {
        path: origin.cert.clone(),
        source,
    })?;
    let facts = leaf_facts(leaf).map_err(|reason| IdentityError::BadCert {
        path: origin.cert.clone(),
        reason,
    })?;

    let mut roots = RootCertStore::empty();
    for cert in read_certs(bundle_pem, &origin.bundle)? {
        roots.add(cert).map_err(|source| IdentityError::BadRoot {
            path: origin.bundle.clone(),
            source,
        })?;
    }
    Ok(LoadedIdentity {
        spiffe_id,
        certified_key: Arc::new(certified_key),
        roots: Arc::new(roots),
        not_before: facts.not_before,
        not_after: facts.not_after,
        serial_hex: facts.serial_hex,
        bundle_pem: bundle_pem.to_vec(),
    })
}

fn read_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, IdentityError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
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

struct LeafFacts {
    not_before: SystemTime,
    not_after: SystemTime,
    serial_hex: String,
}

fn leaf_facts(der: &[u8]) -> Result<LeafFacts, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    let time = |t: i64| {
        u64::try_from(t)
            .map(|secs| SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .map_err(|_| "a validity date is before 1970".to_string())
    };
    Ok(LeafFacts {
        not_before: time(cert.validity().not_before.timestamp())?,
        not_after: time(cert.validity().not_after.timestamp())?,
        serial_hex: cert.tbs_certificate.raw_serial_as_string().replace(':', ""),
    })
}
