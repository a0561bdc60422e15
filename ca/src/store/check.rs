//! Checks on CA material: that a certificate and key make a usable CA
//! ([`Ca::from_parts`], shared by every way a CA comes to exist), and that a
//! CA certificate chains to a root of its trust bundle ([`chains_to`]).

use std::path::Path;
use std::sync::RwLock;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;
use x509_parser::certificate::X509Certificate;
use x509_parser::prelude::FromDer as _;

use super::trust_domain_id;
use crate::authority::Ca;
use crate::encode::pem_encode;
use crate::error::CaError;
use crate::spiffe::{spiffe_id_from_cert_der, CertIdentityError};

fn parse_cert(der: &[u8]) -> Option<X509Certificate<'_>> {
    X509Certificate::from_der(der).ok().map(|(_, c)| c)
}

/// Follows issuer links from `cert` through `chain` until a certificate of
/// `roots` is reached (by equality, or as the verified signer), checking
/// each signature. Returns why not otherwise.
pub(crate) fn chains_to(cert: &[u8], chain: &[Vec<u8>], roots: &[Vec<u8>]) -> Result<(), String> {
    let signed_by = |child: &X509Certificate<'_>, parent: &X509Certificate<'_>| {
        child.issuer().as_raw() == parent.subject().as_raw()
            && child.verify_signature(Some(parent.public_key())).is_ok()
    };
    let mut current = cert;
    for _ in 0..=chain.len() {
        if roots.iter().any(|r| r.as_slice() == current) {
            return Ok(());
        }
        let cur = parse_cert(current).ok_or("a certificate in the chain cannot be parsed")?;
        if roots
            .iter()
            .filter_map(|r| parse_cert(r))
            .any(|root| signed_by(&cur, &root))
        {
            return Ok(());
        }
        let next = chain
            .iter()
            .find(|c| parse_cert(c).is_some_and(|p| signed_by(&cur, &p)));
        match next {
            Some(next) => current = next,
            None => {
                return Err(format!(
                    "no certificate in the bundle or the chain signed {:?} (issuer {:?})",
                    cur.subject().to_string(),
                    cur.issuer().to_string()
                ))
            }
        }
    }
    Err("the chain does not end at a root of the bundle".to_owned())
}

impl Ca {
    /// Validates a CA certificate + key pair and builds the issuer. The
    /// trust domain comes from the certificate's SPIFFE ID; `td` (a name and
    /// the file it came from) is used when the certificate has no URI SAN,
    /// and must agree with it otherwise.
    pub(crate) fn from_parts(
        cert_der: Vec<u8>,
        key: KeyPair,
        cert_path: &Path,
        key_path: &Path,
        td: Option<(&str, &Path)>,
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
        let path_len = match cert.basic_constraints() {
            Ok(Some(bc)) if bc.value.ca => bc.value.path_len_constraint,
            Ok(_) => return Err(not_a_ca("its basicConstraints do not say CA:TRUE")),
            Err(e) => return Err(not_a_ca(&format!("bad basicConstraints extension: {e}"))),
        };
        match cert.key_usage() {
            Ok(Some(ku)) if ku.value.key_cert_sign() => {}
            Ok(_) => return Err(not_a_ca("its key usage does not allow keyCertSign")),
            Err(e) => return Err(not_a_ca(&format!("bad keyUsage extension: {e}"))),
        }
        let trust_domain = match (spiffe_id_from_cert_der(&cert_der), td) {
            (Ok(id), td) => {
                if !id.is_trust_domain_id() {
                    return Err(not_a_ca(&format!(
                        "its SPIFFE ID {id} has a path; a CA's ID must be spiffe://<trust-domain>"
                    )));
                }
                if let Some((td, td_path)) = td {
                    if td != id.trust_domain() {
                        return Err(CaError::TrustDomainMismatch {
                            path: td_path.to_owned(),
                            cert_trust_domain: id.trust_domain().to_owned(),
                            expected: td.to_owned(),
                        });
                    }
                }
                id.trust_domain().to_owned()
            }
            (
                Err(CertIdentityError::NoSanExtension | CertIdentityError::NoUriSan),
                Some((td, _)),
            ) => trust_domain_id(td)?.trust_domain().to_owned(),
            (Err(error), _) => {
                return Err(CaError::CaIdentity {
                    path: cert_path.to_owned(),
                    error,
                })
            }
        };
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
        let self_signed = cert.subject().as_raw() == cert.issuer().as_raw()
            && cert.verify_signature(None).is_ok();
        drop(cert);

        let issuer = Issuer::from_ca_cert_der(&CertificateDer::from(cert_der.as_slice()), key)
            .map_err(|e| CaError::InvalidCertificate {
                path: cert_path.to_owned(),
                reason: e.to_string(),
            })?;
        let cert_pem = pem_encode("CERTIFICATE", &cert_der);
        Ok(Ca {
            trust_domain,
            bundle: RwLock::new(cert_pem.clone()),
            cert_pem,
            cert_der,
            not_after: expiry.timestamp(),
            path_len,
            self_signed,
            chain_pem: String::new(),
            dir: None,
            issuer,
        })
    }
}
