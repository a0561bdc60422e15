//! The CA itself: [`Ca`] holds the CA certificate, its key, its place in a
//! chain and the trust bundle it hands out (made or loaded by
//! [`crate::store`], signing in [`crate::issue`]); [`IssuedCert`] and
//! [`SignedLeaf`] are what it hands out.
//!
//! Nothing here depends on another module of the crate, so that every
//! module that works with a CA can depend on this one without a cycle.

use std::fmt;
use std::path::PathBuf;
use std::sync::RwLock;
use std::time::SystemTime;

use rcgen::{Issuer, KeyPair};

/// A loaded (or freshly created) certificate authority for one trust domain:
/// a root, an intermediate made by [`crate::init_intermediate`], or a CA
/// imported from another PKI by [`crate::import_ca`].
pub struct Ca {
    pub(crate) trust_domain: String,
    pub(crate) cert_pem: String,
    pub(crate) cert_der: Vec<u8>,
    /// The CA's notAfter, in Unix seconds; no leaf outlives it.
    pub(crate) not_after: i64,
    /// The CA certificate's pathLenConstraint, if any.
    pub(crate) path_len: Option<u32>,
    /// Whether the CA certificate is self-signed (a root).
    pub(crate) self_signed: bool,
    /// PEM certificates between the CA certificate and a root (`chain.pem`);
    /// empty for a root or an intermediate directly below one.
    pub(crate) chain_pem: String,
    /// The CA directory, when loaded from one; [`Ca::reload_bundle`] re-reads
    /// its `bundle.pem`.
    pub(crate) dir: Option<PathBuf>,
    /// The trusted roots handed to workloads, as last loaded.
    pub(crate) bundle: RwLock<String>,
    pub(crate) issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("self_signed", &self.self_signed)
            .field("key", &"<redacted>")
            .finish_non_exhaustive()
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

    /// True if the CA certificate is self-signed (a root).
    pub fn is_root(&self) -> bool {
        self.self_signed
    }

    /// The certificates an issued leaf is followed by: the CA certificate
    /// unless it is a root, then `chain.pem`. Empty for a root.
    pub fn intermediates_pem(&self) -> String {
        let mut out = String::new();
        if !self.self_signed {
            out.push_str(&self.cert_pem);
        }
        out.push_str(&self.chain_pem);
        out
    }

    /// The trust bundle to give workloads (the roots), as last loaded; see
    /// [`Ca::reload_bundle`].
    pub fn bundle_pem(&self) -> String {
        self.trust_bundle_pem()
    }

    /// The trust bundle to give workloads (the roots), as last loaded: from
    /// `bundle.pem`, or the CA certificate itself for a root without one.
    pub fn trust_bundle_pem(&self) -> String {
        match self.bundle.read() {
            Ok(b) => b.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

/// A freshly issued workload certificate and its private key, PEM-encoded.
#[derive(Clone)]
pub struct IssuedCert {
    /// The leaf certificate followed by the intermediates up to (not
    /// including) the root.
    pub cert_pem: String,
    /// The leaf's PKCS#8 private key.
    pub key_pem: String,
    /// The trust bundle: the root CA certificate(s).
    pub bundle_pem: String,
    /// When the leaf expires (whole seconds, exactly as in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial_hex: String,
}

impl IssuedCert {
    /// The trust bundle (the CA directory's `bundle.pem`: trusted roots).
    pub fn bundle_pem(&self) -> &str {
        &self.bundle_pem
    }
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

/// A certificate signed for someone else's public key (from a CSR): there
/// is no private key here, it stays with the workload.
#[derive(Clone, Debug)]
pub struct SignedLeaf {
    /// The leaf certificate followed by the intermediates up to (not
    /// including) the root, PEM.
    pub cert_chain_pem: String,
    /// The leaf alone, DER.
    pub leaf_der: Vec<u8>,
    /// The trust bundle: the root CA certificate(s), PEM.
    pub bundle_pem: String,
    /// Start of validity (whole seconds, exactly as in the certificate).
    pub not_before: SystemTime,
    /// End of validity (whole seconds, exactly as in the certificate).
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial_hex: String,
}
