//! Certificate signing requests: a workload makes its key and a CSR locally
//! ([`make_key_and_csr`]), so its private key never leaves it; the CA checks
//! the CSR ([`check_csr`]) and signs a leaf for the CSR's public key and
//! SPIFFE ID ([`Ca::sign_csr`]).
//!
//! The check is strict because the CSR comes from the network: it must be
//! validly self-signed, ask for exactly one SAN (a workload SPIFFE ID), use a
//! supported key, and not ask for CA rights. Whatever else it asks for is
//! ignored: the CA builds the leaf from the public key and the SPIFFE ID
//! alone, with the same profile as [`Ca::issue`].

use std::fmt;
use std::time::Duration;

use rcgen::string::Ia5String;
use rcgen::{
    CertificateParams, DistinguishedName, KeyPair, SanType, SignatureAlgorithm,
    SubjectPublicKeyInfo, PKCS_ECDSA_P256_SHA256, PKCS_ECDSA_P384_SHA384, PKCS_ED25519,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::CertificateSigningRequestDer;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::cri_attributes::ParsedCriAttribute;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer as _;

use crate::authority::{Ca, SignedLeaf};
use crate::error::{crypto, CaError};
use crate::issue::LeafSpec;
use crate::spiffe::{SpiffeId, SpiffeIdError};

/// Largest CSR accepted, in PEM characters (a P-384 CSR is well under 1 KiB).
const MAX_CSR_PEM: usize = 16 * 1024;

/// A CSR that passed [`check_csr`]: all the CA takes from it.
#[derive(Clone, PartialEq, Eq)]
pub struct CheckedCsr {
    /// The one URI SAN: a workload SPIFFE ID.
    pub spiffe_id: SpiffeId,
    /// The subject's public key, a DER SubjectPublicKeyInfo.
    pub public_key_der: Vec<u8>,
}

impl fmt::Debug for CheckedCsr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CheckedCsr")
            .field("spiffe_id", &self.spiffe_id)
            .field("public_key_der_len", &self.public_key_der.len())
            .finish()
    }
}

/// Why a CSR is refused. Every message is about the CSR itself and safe to
/// show to whoever sent it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CsrError {
    /// Not a PEM "CERTIFICATE REQUEST" holding a DER PKCS#10 request.
    #[error("not a PEM-encoded PKCS#10 certificate request: {reason}")]
    NotParseable {
        /// What was wrong.
        reason: String,
    },

    /// The request's self-signature does not verify with its public key.
    #[error("the CSR's signature does not verify with its own public key")]
    BadSignature,

    /// The requested key type is not accepted.
    #[error("unsupported key algorithm {algorithm}; expected ECDSA P-256, ECDSA P-384 or Ed25519")]
    UnsupportedKey {
        /// The SubjectPublicKeyInfo algorithm (OID and parameters).
        algorithm: String,
    },

    /// No URI SAN: nothing says which SPIFFE ID is asked for.
    #[error("the CSR has no URI subjectAltName; it must carry exactly one, its SPIFFE ID")]
    NoSpiffeId,

    /// More SANs than the one SPIFFE ID.
    #[error(
        "the CSR asks for extra subjectAltNames ({found}); it must carry exactly one, \
         its SPIFFE ID"
    )]
    ExtraSans {
        /// What else was found, e.g. `DNS name "web"`.
        found: String,
    },

    /// The URI SAN is not a valid workload SPIFFE ID.
    #[error("the CSR's URI subjectAltName {uri:?} is not a workload SPIFFE ID: {error}")]
    InvalidSpiffeId {
        /// The URI as found.
        uri: String,
        /// Which rule it breaks.
        error: SpiffeIdError,
    },

    /// The request asks to be a CA.
    #[error("the CSR asks for CA rights ({what}); workload certificates are never CAs")]
    CaRights {
        /// Which extension asked.
        what: &'static str,
    },

    /// A requested extension that matters cannot be decoded.
    #[error("the CSR's {extension} extension is malformed")]
    MalformedExtension {
        /// Which extension.
        extension: &'static str,
    },
}

/// Makes an ECDSA P-256 key and a CSR for `spiffe_id` (exactly one URI SAN,
/// an empty subject). Returns the PKCS#8 key and the CSR, both PEM.
pub fn make_key_and_csr(spiffe_id: &SpiffeId) -> Result<(String, String), CaError> {
    if spiffe_id.is_trust_domain_id() {
        return Err(CaError::InvalidWorkloadId {
            id: spiffe_id.clone(),
            error: SpiffeIdError::MissingPath,
        });
    }
    let uri = Ia5String::try_from(spiffe_id.as_str()).map_err(|e| CaError::Crypto {
        action: "encode the SPIFFE ID as a URI SAN",
        error: e,
    })?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = vec![SanType::URI(uri)];
    let key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256)
        .map_err(crypto("generate the workload key"))?;
    let csr = params
        .serialize_request(&key)
        .and_then(|csr| csr.pem())
        .map_err(crypto("make the certificate signing request"))?;
    Ok((key.serialize_pem(), csr))
}

/// Parses and checks a PEM CSR; see the module docs for the rules.
pub fn check_csr(csr_pem: &str) -> Result<CheckedCsr, CsrError> {
    let (spiffe_id, public_key_der) = check_csr_parts(csr_pem, true)?;
    Ok(CheckedCsr {
        spiffe_id: spiffe_id.ok_or(CsrError::NoSpiffeId)?,
        public_key_der,
    })
}

/// The checks of [`check_csr`]; without `id_required`, a CSR may also carry
/// no SAN at all (the CA then puts the SPIFFE ID it derives from the
/// caller's credential, a Kubernetes service account token), every other
/// rule still applying. Returns the requested SPIFFE ID, if any, and the
/// public key (DER SubjectPublicKeyInfo).
pub(crate) fn check_csr_parts(
    csr_pem: &str,
    id_required: bool,
) -> Result<(Option<SpiffeId>, Vec<u8>), CsrError> {
    if csr_pem.len() > MAX_CSR_PEM {
        return Err(CsrError::NotParseable {
            reason: format!("larger than {MAX_CSR_PEM} bytes"),
        });
    }
    let der = CertificateSigningRequestDer::from_pem_slice(csr_pem.as_bytes()).map_err(|e| {
        CsrError::NotParseable {
            reason: match e {
                rustls_pki_types::pem::Error::NoItemsFound => {
                    "no \"-----BEGIN CERTIFICATE REQUEST-----\" block".to_owned()
                }
                other => other.to_string(),
            },
        }
    })?;
    let (rest, csr) =
        X509CertificationRequest::from_der(der.as_ref()).map_err(|e| CsrError::NotParseable {
            reason: e.to_string(),
        })?;
    if !rest.is_empty() {
        return Err(CsrError::NotParseable {
            reason: "trailing data after the request".to_owned(),
        });
    }

    let info = &csr.certification_request_info;
    let spki_der = info.subject_pki.raw.to_vec();
    supported_key(&spki_der)?;
    csr.verify_signature().map_err(|_| CsrError::BadSignature)?;

    let mut uris = Vec::new();
    let mut extras = Vec::new();
    for attr in info.iter_attributes() {
        let ParsedCriAttribute::ExtensionRequest(req) = attr.parsed_attribute() else {
            continue;
        };
        for ext in &req.extensions {
            check_extension(ext.parsed_extension(), &mut uris, &mut extras)?;
        }
    }
    if id_required && uris.is_empty() {
        return Err(CsrError::NoSpiffeId);
    }
    if let [_, more @ ..] = uris.as_slice() {
        for u in more {
            extras.push(format!("a second URI {u:?}"));
        }
    }
    if !extras.is_empty() {
        return Err(CsrError::ExtraSans {
            found: extras.join(", "),
        });
    }
    let spiffe_id = match uris.first() {
        None => None,
        Some(uri) => {
            Some(
                SpiffeId::parse_workload(uri).map_err(|error| CsrError::InvalidSpiffeId {
                    uri: (*uri).to_owned(),
                    error,
                })?,
            )
        }
    };
    Ok((spiffe_id, spki_der))
}

fn check_extension<'a>(
    ext: &ParsedExtension<'a>,
    uris: &mut Vec<&'a str>,
    extras: &mut Vec<String>,
) -> Result<(), CsrError> {
    match ext {
        ParsedExtension::SubjectAlternativeName(san) => {
            for name in &san.general_names {
                match name {
                    GeneralName::URI(u) => uris.push(u),
                    GeneralName::DNSName(d) => extras.push(format!("DNS name {d:?}")),
                    GeneralName::IPAddress(_) => extras.push("an IP address".to_owned()),
                    GeneralName::RFC822Name(m) => extras.push(format!("email {m:?}")),
                    _ => extras.push("another kind of name".to_owned()),
                }
            }
        }
        ParsedExtension::BasicConstraints(bc) if bc.ca => {
            return Err(CsrError::CaRights {
                what: "basicConstraints CA:TRUE",
            })
        }
        ParsedExtension::KeyUsage(ku) if ku.key_cert_sign() || ku.crl_sign() => {
            return Err(CsrError::CaRights {
                what: "keyUsage keyCertSign or cRLSign",
            })
        }
        ParsedExtension::NameConstraints(_) => {
            return Err(CsrError::CaRights {
                what: "nameConstraints",
            })
        }
        ParsedExtension::ParseError { .. } => {
            return Err(CsrError::MalformedExtension {
                extension: "requested",
            })
        }
        _ => {}
    }
    Ok(())
}

/// The accepted key types (by their SubjectPublicKeyInfo algorithm).
const SUPPORTED_KEYS: [&SignatureAlgorithm; 3] = [
    &PKCS_ECDSA_P256_SHA256,
    &PKCS_ECDSA_P384_SHA384,
    &PKCS_ED25519,
];

fn supported_key(spki_der: &[u8]) -> Result<SubjectPublicKeyInfo, CsrError> {
    let unsupported = || {
        let algorithm = x509_parser::x509::SubjectPublicKeyInfo::from_der(spki_der)
            .map(|(_, spki)| {
                let params = spki
                    .algorithm
                    .parameters
                    .as_ref()
                    .and_then(|p| p.as_oid().ok())
                    .map(|o| format!(" ({o})"))
                    .unwrap_or_default();
                format!("{}{params}", spki.algorithm.algorithm)
            })
            .unwrap_or_else(|_| "(unparseable)".to_owned());
        CsrError::UnsupportedKey { algorithm }
    };
    let spki = SubjectPublicKeyInfo::from_der(spki_der).map_err(|_| unsupported())?;
    if SUPPORTED_KEYS
        .iter()
        .any(|alg| rcgen::PublicKeyData::algorithm(&spki) == *alg)
    {
        Ok(spki)
    } else {
        Err(unsupported())
    }
}

impl Ca {
    /// Signs an X.509-SVID for a checked CSR: only its public key and SPIFFE
    /// ID are used, with the same profile as [`Ca::issue`] (one URI SAN,
    /// CA:false, digitalSignature, serverAuth + clientAuth), a random
    /// positive serial, valid from now minus the clock-skew slack for `ttl`.
    pub fn sign_csr(&self, csr: &CheckedCsr, ttl: Duration) -> Result<SignedLeaf, CaError> {
        self.sign_csr_with_serial(csr, ttl, None)
    }

    /// [`Ca::sign_csr`] with a chosen serial (the server picks one that its
    /// issued log has never seen).
    pub(crate) fn sign_csr_with_serial(
        &self,
        csr: &CheckedCsr,
        ttl: Duration,
        serial: Option<[u8; 16]>,
    ) -> Result<SignedLeaf, CaError> {
        let spki = SubjectPublicKeyInfo::from_der(&csr.public_key_der)
            .map_err(crypto("read the CSR's public key"))?;
        let spec = LeafSpec {
            serial,
            ..LeafSpec::new(&csr.spiffe_id, ttl)
        };
        self.sign_leaf(&spec, &spki)
    }
}

#[cfg(test)]
mod tests;
