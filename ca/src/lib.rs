#![forbid(unsafe_code)]
//! usher's mini-CA.
//!
//! * [`SpiffeId`]: parsing and validating SPIFFE IDs per the SPIFFE-ID
//!   standard, and [`spiffe_id_from_cert_der`] to read the SPIFFE ID of a
//!   peer's X.509-SVID.
//! * [`init_ca`] / [`load_ca`]: create or load an ECDSA P-256 root for one
//!   trust domain, stored as [`CA_CERT_FILE`] and [`CA_KEY_FILE`].
//! * [`Ca::issue`]: issue X.509-SVIDs, and [`write_issued`] to store them.

pub mod issue;
pub mod spiffe;

pub use issue::{
    init_ca, load_ca, write_issued, Ca, CaError, IssueRequest, IssuedCert, CA_CERT_FILE,
    CA_KEY_FILE,
};
pub use spiffe::{spiffe_id_from_cert_der, CertIdentityError, SpiffeId, SpiffeIdError};
