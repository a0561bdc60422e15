//! The workload's identity: its certificate chain and key, the trust bundle,
//! and the TLS configurations built from them.
//!
//! The current certificate sits behind an atomic swap ([`CertStore`]) so that
//! a renewed certificate can be installed without rebuilding the TLS configs
//! (which would throw away their session caches).

mod load;
mod tls;
mod verify;

pub use load::{load_identity, IdentityError, LoadedIdentity};
pub use tls::{client_config, crypto_provider, server_config, Alpn, CertStore, TlsError};
pub use verify::{peer_identity, IdentityMismatch, SpiffeServerVerifier};

#[cfg(test)]
mod tests;
