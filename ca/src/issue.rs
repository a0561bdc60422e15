//! The mini-CA: creating and loading the root, issuing X.509-SVIDs, and
//! writing them to disk.

use std::fmt;
use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Read as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::pem::{self, PemObject as _};
use rustls_pki_types::{CertificateDer, DnsName, PrivateKeyDer};
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use crate::spiffe::{spiffe_id_from_cert_der, CertIdentityError, SpiffeId, SpiffeIdError};

/// File name of the CA certificate inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";

/// File name of the leaf certificate chain written by [`write_issued`].
pub const LEAF_CERT_FILE: &str = "cert.pem";
/// File name of the leaf private key written by [`write_issued`].
pub const LEAF_KEY_FILE: &str = "key.pem";
/// File name of the trust bundle written by [`write_issued`].
pub const BUNDLE_FILE: &str = "bundle.pem";

/// Default lifetime of an issued workload certificate (24 hours).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest lifetime [`Ca::issue`] accepts (365 days).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);
/// How far in the past `not_before` is set, to tolerate clock skew.
pub const CLOCK_SKEW_SLACK: Duration = Duration::from_secs(60);
/// Lifetime of a root created by [`init_ca`] (ten years, leap days included).
const CA_VALIDITY: Duration = Duration::from_secs(3653 * 24 * 60 * 60);

/// Key file permission bits that must be clear: any access by group or others.
const KEY_FORBIDDEN_MODE_BITS: u32 = 0o077;

/// Everything that can go wrong creating, loading or using the CA.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    /// The requested trust domain name is not valid.
    #[error("invalid trust domain {trust_domain:?}: {error}")]
    InvalidTrustDomain {
        /// The rejected trust domain.
        trust_domain: String,
        /// Which rule it breaks.
        error: SpiffeIdError,
    },

    /// `init_ca` would overwrite an existing CA file.
    #[error(
        "{} already exists; refusing to overwrite an existing CA without force \
         (replacing the CA invalidates every certificate it has issued)",
        path.display()
    )]
    AlreadyExists {
        /// The file that exists.
        path: PathBuf,
    },

    /// A directory could not be created.
    #[error("cannot create directory {}: {error}", path.display())]
    CreateDir {
        /// The directory.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },

    /// A file could not be written.
    #[error("cannot write {}: {error}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },

    /// A file could not be read.
    #[error("cannot read {}: {error}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        error: io::Error,
    },

    /// A CA file does not exist.
    #[error(
        "{} does not exist; a CA directory must hold both {CA_CERT_FILE} and \
         {CA_KEY_FILE} (initialise a CA there first)",
        path.display()
    )]
    Missing {
        /// The missing file.
        path: PathBuf,
    },

    /// A file is not PEM or has no PEM block of the expected type.
    #[error(
        "{} is not a PEM file with a \"-----BEGIN {expected}-----\" block: {reason}",
        path.display()
    )]
    NotPem {
        /// The file.
        path: PathBuf,
        /// The PEM label that was expected.
        expected: &'static str,
        /// What was wrong.
        reason: String,
    },

    /// A PEM certificate block does not hold a valid X.509 certificate.
    #[error("{} does not hold a valid X.509 certificate: {reason}", path.display())]
    InvalidCertificate {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The certificate is valid X.509 but not usable as this CA's root.
    #[error("{} is not a usable CA certificate: {reason}", path.display())]
    NotACaCert {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The CA certificate does not carry a usable SPIFFE trust-domain ID.
    #[error(
        "{} is not a usable CA certificate: cannot determine its trust domain: {error}",
        path.display()
    )]
    CaIdentity {
        /// The file.
        path: PathBuf,
        /// Why its SPIFFE ID could not be read.
        error: CertIdentityError,
    },

    /// The CA certificate has expired.
    #[error(
        "CA certificate {} expired at {not_after}; create a new CA",
        path.display()
    )]
    CaExpired {
        /// The file.
        path: PathBuf,
        /// Its notAfter time.
        not_after: String,
    },

    /// The key file holds no usable private key.
    #[error("{} does not hold a usable private key: {reason}", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// What was wrong.
        reason: String,
    },

    /// The CA key is not the key of the CA certificate.
    #[error(
        "CA key {} does not match CA certificate {}: the key's public half differs from \
         the certificate's public key",
        path.display(),
        cert_path.display()
    )]
    KeyMismatch {
        /// The key file.
        path: PathBuf,
        /// The certificate file.
        cert_path: PathBuf,
    },

    /// The CA key file is accessible by group or others.
    #[error(
        "CA key {} has permissions {mode:04o}, so group or other users can access it; \
         refusing to use an unprotected CA key (restrict it with: chmod 600 {})",
        path.display(),
        path.display()
    )]
    KeyPermissions {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },

    /// The requested SPIFFE ID belongs to another trust domain.
    #[error(
        "cannot issue a certificate for {id}: it is not in this CA's trust domain {expected:?}"
    )]
    WrongTrustDomain {
        /// The requested ID.
        id: SpiffeId,
        /// This CA's trust domain.
        expected: String,
    },

    /// The requested SPIFFE ID is not a workload ID.
    #[error("cannot issue a certificate for {id}: {error}")]
    InvalidWorkloadId {
        /// The requested ID.
        id: SpiffeId,
        /// Which rule it breaks.
        error: SpiffeIdError,
    },

    /// The requested lifetime is zero or longer than [`MAX_TTL`].
    #[error(
        "invalid certificate lifetime {ttl:?}: it must be more than zero and at most 365 days"
    )]
    InvalidTtl {
        /// The rejected lifetime.
        ttl: Duration,
    },

    /// A requested DNS name is not valid.
    #[error(
        "{name:?} is not a valid DNS name for a certificate (expected something like \
         web.example.svc; wildcards, IP addresses and trailing dots are not allowed)"
    )]
    InvalidDnsName {
        /// The rejected name.
        name: String,
    },

    /// The validity period cannot be represented in a certificate.
    #[error("invalid certificate validity period: {reason}")]
    InvalidValidity {
        /// What was wrong.
        reason: &'static str,
    },

    /// Key generation, certificate building or signing failed.
    #[error("failed to {action}: {error}")]
    Crypto {
        /// What was being done.
        action: &'static str,
        /// The error from rcgen.
        error: rcgen::Error,
    },

    /// The operating system's random number generator failed.
    #[error("failed to {action}: the system random number generator failed")]
    Random {
        /// What the randomness was for.
        action: &'static str,
    },
}

fn crypto(action: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |error| CaError::Crypto { action, error }
}

/// A loaded (or freshly created) certificate authority for one trust domain.
pub struct Ca {
    trust_domain: String,
    cert_pem: String,
    cert_der: Vec<u8>,
    /// The root's notAfter, in Unix seconds; no leaf outlives it.
    not_after: i64,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
    }
}

/// What to put in a workload certificate.
#[derive(Clone, Debug)]
pub struct IssueRequest {
    /// The workload's SPIFFE ID; must have a path and be in the CA's trust domain.
    pub spiffe_id: SpiffeId,
    /// Lifetime: more than zero, at most [`MAX_TTL`].
    pub ttl: Duration,
    /// Extra DNS SANs (the first one also becomes the subject CN).
    pub dns_names: Vec<String>,
    /// Start of validity. `None` means now minus [`CLOCK_SKEW_SLACK`], with
    /// the certificate then valid until now + `ttl`. `Some(t)` makes it valid
    /// from `t` to `t + ttl` (which may already be in the past).
    pub not_before: Option<SystemTime>,
}

impl IssueRequest {
    /// Default lifetime: 24 hours.
    pub const DEFAULT_TTL: Duration = DEFAULT_TTL;

    /// A request for `spiffe_id` with the default lifetime and no DNS names.
    pub fn new(spiffe_id: SpiffeId) -> Self {
        IssueRequest {
            spiffe_id,
            ttl: DEFAULT_TTL,
            dns_names: Vec::new(),
            not_before: None,
        }
    }
}

/// A freshly issued workload certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf certificate (followed by intermediates, of which there are none yet).
    pub cert_pem: String,
    /// The leaf's PKCS#8 private key.
    pub key_pem: String,
    /// The trust bundle: the root CA certificate.
    pub bundle_pem: String,
    /// When the leaf expires (whole seconds, exactly as in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial_hex: String,
}

impl fmt::Debug for IssuedCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"<redacted>")
            .field("bundle_pem", &self.bundle_pem)
            .field("not_after", &self.not_after)
            .field("serial_hex", &self.serial_hex)
            .finish()
    }
}

impl Ca {
    /// The trust domain this CA issues for, e.g. `example.org`.
    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    /// The CA certificate, PEM-encoded.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA certificate, DER-encoded.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert_der
    }

    /// The trust bundle to give workloads: the root certificate, PEM-encoded.
    pub fn bundle_pem(&self) -> String {
        self.cert_pem.clone()
    }

    /// Issues an X.509-SVID for `req.spiffe_id` with a freshly generated
    /// ECDSA P-256 key.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCert, CaError> {
        let id = &req.spiffe_id;
        if id.is_trust_domain_id() {
            return Err(CaError::InvalidWorkloadId {
                id: id.clone(),
                error: SpiffeIdError::MissingPath,
            });
        }
        if id.trust_domain() != self.trust_domain {
            return Err(CaError::WrongTrustDomain {
                id: id.clone(),
                expected: self.trust_domain.clone(),
            });
        }
        if req.ttl.is_zero() || req.ttl > MAX_TTL {
            return Err(CaError::InvalidTtl { ttl: req.ttl });
        }

        let mut sans = Vec::with_capacity(1 + req.dns_names.len());
        // A SPIFFE ID is ASCII by construction, so this cannot fail in practice.
        let uri = Ia5String::try_from(id.as_str()).map_err(|e| CaError::Crypto {
            action: "encode the SPIFFE ID as a URI SAN",
            error: e,
        })?;
        sans.push(SanType::URI(uri));
        for name in &req.dns_names {
            sans.push(SanType::DnsName(dns_san(name)?));
        }

        let (not_before, not_after) = match req.not_before {
            Some(t) => (Some(t), t.checked_add(req.ttl)),
            None => {
                let now = SystemTime::now();
                (now.checked_sub(CLOCK_SKEW_SLACK), now.checked_add(req.ttl))
            }
        };
        let not_before = unix_secs(not_before)?;
        // A leaf that outlived its root would be rejected anyway; cap it so
        // `IssuedCert::not_after` tells the truth about when to renew.
        let not_after = unix_secs(not_after)?.min(self.not_after);

        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "usher");
        // X.520 caps commonName at 64 characters; longer names stay SAN-only.
        if let Some(first) = req.dns_names.first().filter(|n| n.len() <= 64) {
            dn.push(DnType::CommonName, first.as_str());
        }

        let serial = random_serial("generate a certificate serial number")?;
        let mut params = CertificateParams::default();
        params.not_before = offset_date_time(not_before)?;
        params.not_after = offset_date_time(not_after)?;
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        params.subject_alt_names = sans;
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;

        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(crypto("generate the workload key"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(crypto("sign the workload certificate"))?;

        Ok(IssuedCert {
            cert_pem: pem_encode("CERTIFICATE", cert.der()),
            key_pem: key.serialize_pem(),
            bundle_pem: self.bundle_pem(),
            not_after: UNIX_EPOCH
                .checked_add(Duration::from_secs(not_after.unsigned_abs()))
                .ok_or_else(validity_out_of_range)?,
            serial_hex: hex(&serial),
        })
    }

    /// Validates a CA certificate + key pair and builds the issuer.
    fn from_parts(
        cert_der: Vec<u8>,
        key: KeyPair,
        cert_path: &Path,
        key_path: &Path,
    ) -> Result<Ca, CaError> {
        let not_a_ca = |reason: &str| CaError::NotACaCert {
            path: cert_path.to_owned(),
            reason: reason.to_owned(),
        };
        let (rest, cert) =
            X509Certificate::from_der(&cert_der).map_err(|e| CaError::InvalidCertificate {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })?;
        if !rest.is_empty() {
            return Err(CaError::InvalidCertificate {
                path: cert_path.to_owned(),
                reason: "trailing data after the certificate".to_owned(),
            });
        }
        match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => {}
            Ok(_) => return Err(not_a_ca("its basicConstraints do not say CA:TRUE")),
            Err(e) => return Err(not_a_ca(&format!("bad basicConstraints extension: {e}"))),
        }
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.key_cert_sign() => {}
            Ok(_) => return Err(not_a_ca("its key usage does not allow keyCertSign")),
            Err(e) => return Err(not_a_ca(&format!("bad keyUsage extension: {e}"))),
        }
        let id = spiffe_id_from_cert_der(&cert_der).map_err(|error| CaError::CaIdentity {
            path: cert_path.to_owned(),
            error,
        })?;
        if !id.is_trust_domain_id() {
            return Err(not_a_ca(&format!(
                "its SPIFFE ID {id} has a path; a CA's ID must be spiffe://<trust-domain>"
            )));
        }
        let expiry = cert.validity().not_after;
        if expiry.timestamp() <= OffsetDateTime::now_utc().unix_timestamp() {
            return Err(CaError::CaExpired {
                path: cert_path.to_owned(),
                not_after: expiry.to_string(),
            });
        }
        if key.public_key_raw() != cert.public_key().subject_public_key.data.as_ref() {
            return Err(CaError::KeyMismatch {
                path: key_path.to_owned(),
                cert_path: cert_path.to_owned(),
            });
        }
        drop(cert);

        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|e| CaError::InvalidCertificate {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })?;
        Ok(Ca {
            trust_domain: id.trust_domain().to_owned(),
            cert_pem: pem_encode("CERTIFICATE", &cert_der),
            cert_der,
            not_after: expiry.timestamp(),
            issuer,
        })
    }
}

/// Creates a new root CA for `trust_domain` in `dir` (created, mode 0700, if
/// missing): `ca.pem` (0644) and `ca-key.pem` (0600). Refuses to replace
/// existing files unless `force`.
pub fn init_ca(dir: &Path, trust_domain: &str, force: bool) -> Result<Ca, CaError> {
    let td_id =
        SpiffeId::trust_domain_id(trust_domain).map_err(|error| CaError::InvalidTrustDomain {
            trust_domain: trust_domain.to_owned(),
            error,
        })?;
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);
    create_dir(dir)?;
    if !force {
        for path in [&cert_path, &key_path] {
            match fs::symlink_metadata(path) {
                Ok(_) => return Err(CaError::AlreadyExists { path: path.clone() }),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(error) => {
                    return Err(CaError::Read {
                        path: path.clone(),
                        error,
                    })
                }
            }
        }
    }

    let now = SystemTime::now();
    let not_before = unix_secs(now.checked_sub(CLOCK_SKEW_SLACK))?;
    let not_after = unix_secs(now.checked_add(CA_VALIDITY))?;

    let mut dn = DistinguishedName::new();
    dn.push(
        DnType::CommonName,
        format!("usher root CA {}", td_id.trust_domain()),
    );
    dn.push(DnType::OrganizationName, "usher");

    // A SPIFFE ID is ASCII by construction, so this cannot fail in practice.
    let uri = Ia5String::try_from(td_id.as_str()).map_err(|e| CaError::Crypto {
        action: "encode the trust domain ID as a URI SAN",
        error: e,
    })?;

    let serial = random_serial("generate the CA serial number")?;
    let mut params = CertificateParams::default();
    params.not_before = offset_date_time(not_before)?;
    params.not_after = offset_date_time(not_after)?;
    params.serial_number = Some(SerialNumber::from_slice(&serial));
    params.subject_alt_names = vec![SanType::URI(uri)];
    params.distinguished_name = dn;
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(1));
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];

    let key =
        KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).map_err(crypto("generate the CA key"))?;
    let cert = params
        .self_signed(&key)
        .map_err(crypto("self-sign the CA certificate"))?;
    let key_pem = key.serialize_pem();
    // Run the same checks as `load_ca` before anything touches the disk.
    let ca = Ca::from_parts(cert.der().to_vec(), key, &cert_path, &key_path)?;

    // Key first: a directory with a certificate but no key is never left behind.
    write_atomic(&key_path, key_pem.as_bytes(), 0o600)?;
    write_atomic(&cert_path, ca.cert_pem.as_bytes(), 0o644)?;
    Ok(ca)
}

/// Loads the CA in `dir` (`ca.pem` and `ca-key.pem`). The key file must not be
/// accessible by group or others.
pub fn load_ca(dir: &Path) -> Result<Ca, CaError> {
    let cert_path = dir.join(CA_CERT_FILE);
    let key_path = dir.join(CA_KEY_FILE);

    let cert_bytes = File::open(&cert_path)
        .and_then(read_limited)
        .map_err(|error| read_error(&cert_path, error))?;
    let cert_der = {
        let mut certs = CertificateDer::pem_slice_iter(&cert_bytes);
        let first = match certs.next() {
            Some(Ok(der)) => der,
            Some(Err(e)) => return Err(not_pem(&cert_path, "CERTIFICATE", &e)),
            None => {
                return Err(not_pem(
                    &cert_path,
                    "CERTIFICATE",
                    &pem::Error::NoItemsFound,
                ))
            }
        };
        if certs.next().is_some() {
            return Err(CaError::InvalidCertificate {
                path: cert_path,
                reason: "it holds more than one certificate; expected only the CA certificate"
                    .to_owned(),
            });
        }
        first.to_vec()
    };

    let key_file = File::open(&key_path).map_err(|error| read_error(&key_path, error))?;
    let meta = key_file.metadata().map_err(|error| CaError::Read {
        path: key_path.clone(),
        error,
    })?;
    let mode = meta.permissions().mode() & 0o7777;
    if mode & KEY_FORBIDDEN_MODE_BITS != 0 {
        return Err(CaError::KeyPermissions {
            path: key_path,
            mode,
        });
    }
    let key_bytes = read_limited(key_file).map_err(|error| CaError::Read {
        path: key_path.clone(),
        error,
    })?;
    let key_der = PrivateKeyDer::from_pem_slice(&key_bytes)
        .map_err(|e| not_pem(&key_path, "PRIVATE KEY", &e))?;
    let key = KeyPair::try_from(&key_der).map_err(|e| CaError::InvalidKey {
        path: key_path.clone(),
        reason: e.to_string(),
    })?;
    drop(key_der);

    Ca::from_parts(cert_der, key, &cert_path, &key_path)
}

/// Writes an issued certificate into `out` (created, mode 0700, if missing):
/// `cert.pem` (0644), `key.pem` (0600) and `bundle.pem` (0644). Each file is
/// replaced atomically, so a reader never sees a partly written file.
pub fn write_issued(out: &Path, issued: &IssuedCert) -> Result<(), CaError> {
    create_dir(out)?;
    write_atomic(&out.join(LEAF_KEY_FILE), issued.key_pem.as_bytes(), 0o600)?;
    write_atomic(&out.join(LEAF_CERT_FILE), issued.cert_pem.as_bytes(), 0o644)?;
    write_atomic(&out.join(BUNDLE_FILE), issued.bundle_pem.as_bytes(), 0o644)?;
    Ok(())
}

/// Reads a whole PEM file, refusing anything implausibly large (such as a
/// path that points at a device) instead of exhausting memory.
fn read_limited(file: File) -> io::Result<Vec<u8>> {
    const MAX_PEM_FILE: u64 = 1024 * 1024;
    let mut bytes = Vec::new();
    file.take(MAX_PEM_FILE + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_PEM_FILE {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "file is larger than 1 MiB; expected a small PEM file",
        ));
    }
    Ok(bytes)
}

fn read_error(path: &Path, error: io::Error) -> CaError {
    if error.kind() == io::ErrorKind::NotFound {
        CaError::Missing {
            path: path.to_owned(),
        }
    } else {
        CaError::Read {
            path: path.to_owned(),
            error,
        }
    }
}

fn not_pem(path: &Path, expected: &'static str, e: &pem::Error) -> CaError {
    let reason = match e {
        pem::Error::NoItemsFound => format!("no {expected} block found"),
        other => other.to_string(),
    };
    CaError::NotPem {
        path: path.to_owned(),
        expected,
        reason,
    }
}

fn dns_san(name: &str) -> Result<Ia5String, CaError> {
    let invalid = || CaError::InvalidDnsName {
        name: name.to_owned(),
    };
    // DnsName accepts a trailing dot (absolute name), which a certificate SAN
    // must not carry (RFC 5280 §4.2.1.6).
    if name.ends_with('.') || DnsName::try_from_str(name).is_err() {
        return Err(invalid());
    }
    Ia5String::try_from(name).map_err(|_| invalid())
}

/// Whole seconds since the Unix epoch (rounded down).
/// `None` (an overflowed time computation) is out of range too.
fn unix_secs(t: Option<SystemTime>) -> Result<i64, CaError> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(validity_out_of_range)
}

fn offset_date_time(unix_secs: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(unix_secs).map_err(|_| validity_out_of_range())
}

fn validity_out_of_range() -> CaError {
    CaError::InvalidValidity {
        reason: "notBefore and notAfter must lie between the years 1970 and 9999",
    }
}

/// 16 random bytes forming a positive DER INTEGER with no leading zero byte
/// (so the encoded serial is exactly these bytes).
fn random_serial(action: &'static str) -> Result<[u8; 16], CaError> {
    let mut serial = [0u8; 16];
    rustls::crypto::aws_lc_rs::default_provider()
        .secure_random
        .fill(&mut serial)
        .map_err(|_| CaError::Random { action })?;
    serial[0] &= 0x7f;
    if serial[0] == 0 {
        serial[0] = 1;
    }
    Ok(serial)
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(char::from(DIGITS[usize::from(b >> 4)]));
        s.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
    s
}

/// PEM-encodes `der` (RFC 7468 strict: standard base64, 64-column lines, LF).
fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let b64_len = der.len().div_ceil(3) * 4;
    let mut out = String::with_capacity(b64_len + b64_len / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    let mut column = 0;
    for chunk in der.chunks(3) {
        let b0 = chunk.first().copied().unwrap_or(0);
        let b1 = chunk.get(1).copied().unwrap_or(0);
        let b2 = chunk.get(2).copied().unwrap_or(0);
        let n = (u32::from(b0) << 16) | (u32::from(b1) << 8) | u32::from(b2);
        let sextet = |shift: u32| char::from(ALPHABET[((n >> shift) & 0x3f) as usize]);
        out.push(sextet(18));
        out.push(sextet(12));
        out.push(if chunk.len() > 1 { sextet(6) } else { '=' });
        out.push(if chunk.len() > 2 { sextet(0) } else { '=' });
        column += 4;
        if column == 64 {
            out.push('\n');
            column = 0;
        }
    }
    if column != 0 {
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Creates `dir` (and parents) with mode 0700 if missing; an existing
/// directory is left as it is.
fn create_dir(dir: &Path) -> Result<(), CaError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|error| CaError::CreateDir {
            path: dir.to_owned(),
            error,
        })
}

/// Writes `contents` to `path` atomically: a temporary file in the same
/// directory, created with `mode` (so a key is never readable by others, not
/// even briefly), flushed to disk, then renamed over `path`.
fn write_atomic(path: &Path, contents: &[u8], mode: u32) -> Result<(), CaError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let write_error = |error| CaError::Write {
        path: path.to_owned(),
        error,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let file_name = path
        .file_name()
        .ok_or_else(|| write_error(io::Error::from(io::ErrorKind::InvalidInput)))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(file_name);
    tmp_name.push(format!(
        ".tmp.{}.{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp_path = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp_path)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp_path, path)
    })();
    if let Err(error) = result {
        // Best effort: the temporary file may not even exist.
        let _ = fs::remove_file(&tmp_path);
        return Err(write_error(error));
    }
    // Make the rename itself durable. Best effort: some filesystems refuse
    // to fsync a directory, and the data is already safely in place.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests;
