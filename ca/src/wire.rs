//! The JSON bodies of the CA server's HTTP API, shared by the server and
//! the client so the two cannot drift apart.

use serde::{Deserialize, Serialize};

/// `POST /v1/enrol`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct EnrolRequest {
    pub token: String,
    pub csr: String,
}

/// `POST /v1/renew`.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RenewRequest {
    pub csr: String,
}

/// 200 answer to enrol and renew.
#[derive(Serialize, Deserialize)]
pub(crate) struct SignedResponse {
    /// Leaf then intermediates, PEM.
    pub cert_chain: String,
    /// Trusted roots, PEM.
    pub bundle: String,
    /// RFC 3339.
    pub not_after: String,
    /// Lowercase hex.
    pub serial: String,
}

/// 200 answer to `GET /v1/bundle`.
#[derive(Serialize, Deserialize)]
pub(crate) struct BundleResponse {
    pub bundle: String,
}

/// Every non-200 answer.
#[derive(Serialize, Deserialize)]
pub(crate) struct ErrorResponse {
    pub error: String,
}

/// Path of the enrolment endpoint.
pub(crate) const ENROL_PATH: &str = "/v1/enrol";
/// Path of the renewal endpoint.
pub(crate) const RENEW_PATH: &str = "/v1/renew";
/// Path of the trust bundle endpoint.
pub(crate) const BUNDLE_PATH: &str = "/v1/bundle";
