//! The sidecar's identity at start: in file mode the files are read and
//! checked before anything binds; in CA mode the sidecar enrols once the
//! admin listener answers. Then the identity is kept current: renewed with
//! the CA, or reloaded when the files change.

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use tokio_util::sync::CancellationToken;
use usher_ca::SpiffeId;

use super::StartError;
use crate::config::{CaIdentityConfig, IdentityFiles, IdentitySource};
use crate::identity::{self, renew, watch, Identity, LoadedIdentity, TrustStore};
use crate::telemetry::Metrics;

/// An identity source, ready to be established.
pub(super) enum PendingIdentity<'a> {
    /// Read and checked already.
    Files(LoadedIdentity, &'a IdentityFiles),
    /// To be obtained from the CA.
    Ca(&'a CaIdentityConfig),
}

impl<'a> PendingIdentity<'a> {
    /// File mode: reads and checks the files now (an error names the key
    /// of the file at fault). CA mode: nothing yet.
    pub(crate) fn prepare(
        source: &'a IdentitySource,
        provider: &Arc<CryptoProvider>,
    ) -> Result<PendingIdentity<'a>, StartError> {
        match source {
            IdentitySource::Ca(ca) => Ok(PendingIdentity::Ca(ca)),
            IdentitySource::Files(files) => {
                let loaded = identity::load_identity(files, provider).map_err(|source| {
                    StartError::IdentityFile {
                        key: crate::check::identity_key(files, &source),
                        source,
                    }
                })?;
                Ok(PendingIdentity::Files(loaded, files))
            }
        }
    }

    /// The SPIFFE ID this sidecar has (files) or asks for (CA).
    pub(crate) fn spiffe_id(&self) -> &SpiffeId {
        match self {
            PendingIdentity::Files(loaded, _) => &loaded.spiffe_id,
            PendingIdentity::Ca(ca) => &ca.spiffe_id,
        }
    }

    /// The identity in force (enrolling with the CA first, which waits for
    /// the CA), kept current until `shutdown`.
    pub(crate) async fn establish(
        self,
        provider: &Arc<CryptoProvider>,
        metrics: &Arc<Metrics>,
        shutdown: &CancellationToken,
    ) -> Result<(Arc<Identity>, Arc<TrustStore>), StartError> {
        match self {
            PendingIdentity::Files(loaded, files) => {
                let trust = TrustStore::new(loaded.roots.clone(), provider.clone())?;
                let identity = Identity::new(loaded, trust.clone(), metrics.clone());
                if files.watch {
                    watch::spawn_file_watcher(
                        identity.clone(),
                        files.clone(),
                        provider.clone(),
                        metrics.clone(),
                        shutdown.clone(),
                    )?;
                }
                Ok((identity, trust))
            }
            PendingIdentity::Ca(ca) => {
                let (loaded, creds) = renew::enrol(ca, provider, metrics).await;
                let trust = TrustStore::new(loaded.roots.clone(), provider.clone())?;
                let identity = Identity::new(loaded, trust.clone(), metrics.clone());
                renew::spawn_renewal(
                    identity.clone(),
                    ca.clone(),
                    creds,
                    provider.clone(),
                    metrics.clone(),
                    shutdown.clone(),
                );
                Ok((identity, trust))
            }
        }
    }
}
