#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]
//! usher's mini-CA, as a library and as a service.
//!
//! * [`SpiffeId`]: parsing and validating SPIFFE IDs per the SPIFFE-ID
//!   standard, and [`spiffe_id_from_cert_der`] to read the SPIFFE ID of a
//!   peer's X.509-SVID.
//! * The CA directory ([`store`]): [`init_ca`] creates a root,
//!   [`init_intermediate`] an intermediate below another CA, [`import_ca`]
//!   takes a CA from another PKI; [`load_ca`] loads any of them.
//! * Issuing: [`Ca::issue`] makes a key and an X.509-SVID (`usher ca issue`),
//!   [`write_issued`] stores them; [`make_key_and_csr`], [`check_csr`] and
//!   [`Ca::sign_csr`] do the same with the key made by the workload.
//! * Enrolment: bootstrap tokens ([`mint_token`], [`TokenStore`]) or
//!   Kubernetes service account tokens ([`k8s`]), the
//!   issued-certificate log ([`IssuedLog`]), the HTTPS CA server
//!   ([`CaServer`], `usher ca serve`) and its client ([`CaClient`]).

mod authority;
pub mod client;
pub mod csr;
mod encode;
mod error;
mod files;
mod id_pattern;
pub mod issue;
pub mod issued_log;
pub mod k8s;
mod layout;
pub mod server;
pub mod spiffe;
pub mod store;
pub mod token;
mod validity;
mod wire;

#[cfg(test)]
mod test_support;

pub use client::{CaClient, CaClientError, SignedCert};
pub use csr::{check_csr, make_key_and_csr, CheckedCsr, CsrError};
pub use error::CaError;
pub use issue::{Ca, IssueRequest, IssuedCert, SignedLeaf, CLOCK_SKEW_SLACK, DEFAULT_TTL, MAX_TTL};
pub use issued_log::{read_issued_log, IssuedEntry, IssuedHow, IssuedLog, ISSUED_LOG_FILE};
pub use k8s::{JwksSource, K8sAuthConfig};
pub use server::{CaServer, CaServerConfig, CaServerError};
pub use spiffe::{spiffe_id_from_cert_der, CertIdentityError, SpiffeId, SpiffeIdError};
pub use store::{
    import_ca, init_ca, init_intermediate, load_ca, load_ca_with, trust_domain_of, write_issued,
    BUNDLE_FILE, CA_BUNDLE_FILE, CA_CERT_FILE, CA_CHAIN_FILE, CA_KEY_FILE, LEAF_CERT_FILE,
    LEAF_KEY_FILE, TRUST_DOMAIN_FILE,
};
pub use token::{
    mint_token, mint_token_at, mint_token_in, IdPattern, IdPatternError, TokenError, TokenSpec,
    TokenStore, TOKENS_FILE, TOKEN_PREFIX,
};
