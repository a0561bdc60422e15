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
pub(crate) mod renew;
mod state;
mod tls;
mod trust;
mod verify;
pub(crate) mod watch;

pub use load::IdentityError;
pub(crate) use load::{load_identity, parse_identity, LoadedIdentity, Origin};
pub use state::{CertInfo, Identity};
pub(crate) use tls::{client_config, server_config, Alpn, MUX_ALPN};
pub use tls::{crypto_provider, CertStore, TlsError};
pub use trust::TrustStore;
pub use verify::SpiffeServerVerifier;
pub(crate) use verify::{peer_identity, IdentityMismatch};

#[cfg(test)]
mod tests;
