//! The names of the files usher's CA reads and writes: those of a CA
//! directory (see [`crate::store`]) and those [`crate::write_issued`]
//! writes for a workload. Nothing here depends on another module, so that
//! every module (errors included) can name them.

/// File name of the CA certificate inside the CA directory.
pub const CA_CERT_FILE: &str = "ca.pem";
/// File name of the CA private key inside the CA directory.
pub const CA_KEY_FILE: &str = "ca-key.pem";
/// File name of the intermediates above `ca.pem` (root excluded).
pub const CA_CHAIN_FILE: &str = "chain.pem";
/// File name of the trusted roots inside the CA directory (the same name as
/// the workload's [`BUNDLE_FILE`], and the same meaning).
pub const CA_BUNDLE_FILE: &str = "bundle.pem";
/// File name of an imported CA's trust domain (when its certificate has no
/// SPIFFE ID to say it).
pub const TRUST_DOMAIN_FILE: &str = "trust-domain";

/// File name of the leaf certificate chain written by [`crate::write_issued`].
pub const LEAF_CERT_FILE: &str = "cert.pem";
/// File name of the leaf private key written by [`crate::write_issued`].
pub const LEAF_KEY_FILE: &str = "key.pem";
/// File name of the trust bundle written by [`crate::write_issued`].
pub const BUNDLE_FILE: &str = "bundle.pem";
