//! Reading the identity files named in `usher.yaml`.

use std::io::Read as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use usher_ca::{spiffe_id_from_cert_der, SpiffeId};

use crate::config::IdentityFiles;

/// What a sidecar needs to speak mTLS: who it is and whom it trusts.
#[derive(Debug)]
pub(crate) struct LoadedIdentity {
    pub(crate) spiffe_id: SpiffeId,
    pub(crate) certified_key: Arc<CertifiedKey>,
    pub(crate) roots: Arc<RootCertStore>,
    pub(crate) not_before: SystemTime,
    pub(crate) not_after: SystemTime,
    /// The leaf's serial number, lower-case hex.
    pub(crate) serial_hex: String,
    /// The bundle as read (PEM), to tell whether a new one differs.
    pub(crate) bundle_pem: Vec<u8>,
}

/// Where PEM material came from, for error messages: three files, or a
/// CA response (named by its URL).
#[derive(Clone, Debug)]
pub(crate) struct Origin {
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
    pub(crate) bundle: PathBuf,
}

impl Origin {
    pub(crate) fn ca(url: &str) -> Origin {
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
    #[error(
        "{path}: the private key file has mode {mode:04o}, so group or other users can read it; \
         refusing an unprotected workload key (restrict it with: chmod 600 {path}; or set \
         identity.allow_insecure_key_permissions: true to accept it anyway)",
        path = .path.display()
    )]
    InsecureKeyPermissions { path: PathBuf, mode: u32 },
}

/// Key file permission bits that must be clear: any access by group or others.
const KEY_FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Loads and cross-checks the three identity files. The key file must not
/// be readable by group or others (`mode & 0o077 == 0`) unless
/// `identity.allow_insecure_key_permissions` says so, in which case a
/// warning is logged (once per key file and process).
pub(crate) fn load_identity(
    config: &IdentityFiles,
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
    let (key, key_mode) = read_with_mode(&config.key).map_err(|e| IdentityError::ReadKey {
        path: config.key.clone(),
        source: rustls_pki_types::pem::Error::Io(e),
    })?;
    let bundle =
        read(&config.bundle).map_err(|(path, source)| IdentityError::ReadCerts { path, source })?;
    let loaded = parse_identity(&cert, &key, &bundle, &origin, provider)?;
    // Judged once the file is known to hold this certificate's key, so that
    // a wrong file is reported as such rather than by its mode.
    check_key_mode(&config.key, key_mode, config.allow_insecure_key_permissions)?;
    Ok(loaded)
}

/// Reads a file and the permission bits of what was read (the same open
/// file, so a swap between the check and the read cannot fool it; a
/// symlink, as in Kubernetes Secret volumes, is judged by its target).
fn read_with_mode(path: &Path) -> std::io::Result<(Vec<u8>, u32)> {
    let mut file = std::fs::File::open(path)?;
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    Ok((bytes, mode))
}

/// Refuses a key file readable by group or others, unless `allow`, in
/// which case it warns (once per key file for the life of the process:
/// file-mode reloads do not repeat it).
fn check_key_mode(path: &Path, mode: u32, allow: bool) -> Result<(), IdentityError> {
    if mode & KEY_FORBIDDEN_MODE_BITS == 0 {
        return Ok(());
    }
    if !allow {
        return Err(IdentityError::InsecureKeyPermissions {
            path: path.to_path_buf(),
            mode,
        });
    }
    static WARNED: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut warned = WARNED.lock().unwrap_or_else(PoisonError::into_inner);
    if !warned.iter().any(|p| p == path) {
        warned.push(path.to_path_buf());
        tracing::warn!(
            target: "usher::audit",
            key = %path.display(),
            mode = %format_args!("{mode:04o}"),
            "INSECURE: the workload private key file is readable by group or other users, and \
             identity.allow_insecure_key_permissions is true, so it is used anyway; anyone who \
             can read it can impersonate this workload (restrict it with: chmod 600 {})",
            path.display()
        );
    }
    Ok(())
}

/// Parses and cross-checks PEM material: the chain (leaf first), its key
/// and the trust bundle.
pub(crate) fn parse_identity(
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
