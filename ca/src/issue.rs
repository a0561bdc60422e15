//! The CA as a signer: how a [`Ca`] (made or loaded by [`crate::store`])
//! signs X.509-SVIDs.
//!
//! There is one signing path, [`Ca::sign_leaf`]: it builds the whole leaf from
//! the SPIFFE ID, the lifetime and the subject's public key alone. [`Ca::issue`]
//! (`usher ca issue`) feeds it a key it has just generated;
//! [`Ca::sign_csr`](crate::csr) feeds it the public key of a checked CSR, so a
//! workload's private key never leaves the workload and nothing else a CSR
//! asks for is ever copied into a certificate.

use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType, SerialNumber, PKCS_ECDSA_P256_SHA256,
};
use rustls_pki_types::DnsName;

use crate::encode::{hex, pem_encode, random_serial};
use crate::error::crypto;
use crate::spiffe::{SpiffeId, SpiffeIdError};
use crate::validity::{offset_date_time, system_time, unix_secs};

// What `usher_ca::issue` has always offered; each item lives in its own
// module now (the CA in `authority`, the files in `layout` and `store`,
// the clock slack in `validity`).
pub use crate::authority::{Ca, IssuedCert, SignedLeaf};
pub use crate::error::CaError;
pub use crate::layout::{BUNDLE_FILE, CA_CERT_FILE, CA_KEY_FILE, LEAF_CERT_FILE, LEAF_KEY_FILE};
pub use crate::store::{init_ca, load_ca, write_issued};
pub use crate::validity::CLOCK_SKEW_SLACK;

/// Default lifetime of an issued workload certificate (24 hours).
pub const DEFAULT_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// Longest lifetime [`Ca::issue`] accepts (365 days).
pub const MAX_TTL: Duration = Duration::from_secs(365 * 24 * 60 * 60);

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

/// Everything [`Ca::sign_leaf`] puts into a leaf besides its public key.
#[derive(Clone, Debug)]
pub(crate) struct LeafSpec<'a> {
    pub spiffe_id: &'a SpiffeId,
    pub ttl: Duration,
    pub dns_names: &'a [String],
    pub ip_addrs: &'a [IpAddr],
    pub not_before: Option<SystemTime>,
    /// `None`: a fresh random serial.
    pub serial: Option<[u8; 16]>,
}

impl<'a> LeafSpec<'a> {
    pub(crate) fn new(spiffe_id: &'a SpiffeId, ttl: Duration) -> Self {
        LeafSpec {
            spiffe_id,
            ttl,
            dns_names: &[],
            ip_addrs: &[],
            not_before: None,
            serial: None,
        }
    }
}

impl Ca {
    /// Issues an X.509-SVID for `req.spiffe_id` with a freshly generated
    /// ECDSA P-256 key.
    pub fn issue(&self, req: &IssueRequest) -> Result<IssuedCert, CaError> {
        let spec = LeafSpec {
            dns_names: &req.dns_names,
            not_before: req.not_before,
            ..LeafSpec::new(&req.spiffe_id, req.ttl)
        };
        self.check_leaf_spec(&spec)?;
        let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
            .map_err(crypto("generate the workload key"))?;
        let signed = self.sign_leaf(&spec, &key)?;
        Ok(IssuedCert {
            cert_pem: signed.cert_chain_pem,
            key_pem: key.serialize_pem(),
            bundle_pem: signed.bundle_pem,
            not_after: signed.not_after,
            serial_hex: signed.serial_hex,
        })
    }

    fn check_leaf_spec(&self, spec: &LeafSpec<'_>) -> Result<(), CaError> {
        let id = spec.spiffe_id;
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
        if spec.ttl.is_zero() || spec.ttl > MAX_TTL {
            return Err(CaError::InvalidTtl { ttl: spec.ttl });
        }
        Ok(())
    }

    /// Signs an X.509-SVID for `public_key`: exactly one URI SAN (the SPIFFE
    /// ID) plus the requested DNS/IP SANs, CA:false, digitalSignature,
    /// serverAuth + clientAuth, a random positive serial, valid from now
    /// minus [`CLOCK_SKEW_SLACK`] for `ttl` (capped at the CA's own expiry).
    pub(crate) fn sign_leaf(
        &self,
        spec: &LeafSpec<'_>,
        public_key: &impl PublicKeyData,
    ) -> Result<SignedLeaf, CaError> {
        self.check_leaf_spec(spec)?;
        let id = spec.spiffe_id;

        let mut sans = Vec::with_capacity(1 + spec.dns_names.len() + spec.ip_addrs.len());
        // A SPIFFE ID is ASCII by construction, so this cannot fail in practice.
        let uri = Ia5String::try_from(id.as_str()).map_err(|e| CaError::Crypto {
            action: "encode the SPIFFE ID as a URI SAN",
            error: e,
        })?;
        sans.push(SanType::URI(uri));
        for name in spec.dns_names {
            sans.push(SanType::DnsName(dns_san(name)?));
        }
        for ip in spec.ip_addrs {
            sans.push(SanType::IpAddress(*ip));
        }

        let (not_before, not_after) = match spec.not_before {
            Some(t) => (Some(t), t.checked_add(spec.ttl)),
            None => {
                let now = SystemTime::now();
                (now.checked_sub(CLOCK_SKEW_SLACK), now.checked_add(spec.ttl))
            }
        };
        let not_before = unix_secs(not_before)?;
        // A leaf that outlived its CA would be rejected anyway; cap it so
        // `not_after` tells the truth about when to renew.
        let not_after = unix_secs(not_after)?.min(self.not_after);

        let mut dn = DistinguishedName::new();
        dn.push(DnType::OrganizationName, "usher");
        // X.520 caps commonName at 64 characters; longer names stay SAN-only.
        if let Some(first) = spec.dns_names.first().filter(|n| n.len() <= 64) {
            dn.push(DnType::CommonName, first.as_str());
        }

        let serial = match spec.serial {
            Some(s) => s,
            None => random_serial("generate a certificate serial number")?,
        };
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

        let cert = params
            .signed_by(public_key, &self.issuer)
            .map_err(crypto("sign the workload certificate"))?;

        let mut chain = pem_encode("CERTIFICATE", cert.der());
        chain.push_str(&self.intermediates_pem());
        Ok(SignedLeaf {
            cert_chain_pem: chain,
            leaf_der: cert.der().to_vec(),
            bundle_pem: self.trust_bundle_pem(),
            not_before: system_time(not_before)?,
            not_after: system_time(not_after)?,
            serial_hex: hex(&serial),
        })
    }
}

pub(crate) fn dns_san(name: &str) -> Result<Ia5String, CaError> {
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

#[cfg(test)]
mod tests;
