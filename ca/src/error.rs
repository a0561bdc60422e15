//! [`CaError`]: everything that can go wrong creating, loading or using the
//! CA, its files and its logs. Kept in one enum so the `usher` binary can
//! report any CA failure the same way; every variant names the file (or the
//! value) at fault and what was expected instead.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use crate::id_pattern::IdPatternError;
use crate::layout::{CA_CERT_FILE, CA_KEY_FILE};
use crate::spiffe::{CertIdentityError, SpiffeId, SpiffeIdError};

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

    /// The trust domain given for an imported CA differs from the one its
    /// certificate names.
    #[error(
        "{} names the trust domain {cert_trust_domain:?} in its SPIFFE ID, but the CA \
         is configured for {expected:?}",
        path.display()
    )]
    TrustDomainMismatch {
        /// The certificate (or trust-domain) file.
        path: PathBuf,
        /// The trust domain in the certificate.
        cert_trust_domain: String,
        /// The trust domain that was asked for.
        expected: String,
    },

    /// A CA certificate does not chain to any root of the trust bundle.
    #[error("{} does not chain to a root in {}: {reason}", path.display(), bundle_path.display())]
    NotChained {
        /// The CA certificate.
        path: PathBuf,
        /// The trust bundle.
        bundle_path: PathBuf,
        /// What is missing.
        reason: String,
    },

    /// An intermediate would be written into its own parent's directory.
    #[error(
        "{} is the parent CA's own directory; an intermediate CA needs a directory of its own",
        path.display()
    )]
    SameDirectory {
        /// The directory.
        path: PathBuf,
    },

    /// A JSON-lines log or token file has a line that cannot be read.
    #[error("{}:{line}: {reason}", path.display())]
    CorruptLog {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What was expected.
        reason: String,
    },

    /// A bootstrap token's lifetime is zero or longer than 365 days.
    #[error(
        "invalid bootstrap token lifetime {ttl:?}: it must be more than zero and at most \
         365 days"
    )]
    InvalidTokenTtl {
        /// The rejected lifetime.
        ttl: Duration,
    },

    /// A bootstrap-token pattern is not valid.
    #[error(transparent)]
    InvalidPattern(#[from] IdPatternError),
}

pub(crate) fn crypto(action: &'static str) -> impl FnOnce(rcgen::Error) -> CaError {
    move |error| CaError::Crypto { action, error }
}
