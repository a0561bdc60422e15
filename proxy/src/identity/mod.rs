//! The workload's identity: its certificate chain and key, the trust bundle,
//! the TLS configurations built from them, and how they are kept fresh.
//!
//! The current certificate sits behind an atomic swap ([`CertStore`]) and
//! so do the trusted roots ([`TrustStore`]), so that a renewed certificate
//! or a rotated bundle is installed without rebuilding the TLS configs
//! (which would throw away their session caches). [`renew`] gets and
//! renews certificates from `usher ca serve`; [`watch`] follows identity
//! files on disk.

mod load;
pub mod renew;
mod state;
mod tls;
mod trust;
mod verify;
pub mod watch;

pub use load::{load_identity, parse_identity, IdentityError, LoadedIdentity, Origin};
pub use state::{CertInfo, Identity, InstallError};
pub use tls::{client_config, crypto_provider, server_config, Alpn, CertStore, TlsError};
pub use trust::{Trust, TrustStore};
pub use verify::{peer_identity, IdentityMismatch, SpiffeServerVerifier};

#[cfg(test)]
mod tests;
