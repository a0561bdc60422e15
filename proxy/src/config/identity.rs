//! `identity:`: where the workload's certificate, key and trust bundle
//! come from: three files (written by `usher ca issue`, SPIRE or
//! cert-manager), or enrolment with `usher ca serve` (`ca`). Exactly one of
//! the two, so the parsed config is an enum, [`IdentitySource`].

use std::path::PathBuf;

use serde::Deserialize;
use usher_ca::SpiffeId;

use super::{de, defaults};

/// The identity source, as parsed and checked.
#[derive(Clone, Debug, Deserialize)]
#[serde(try_from = "IdentityKeys")]
pub enum IdentitySource {
    Files(IdentityFiles),
    Ca(CaIdentityConfig),
}

#[cfg(test)]
impl IdentitySource {
    /// File mode's settings; `None` in CA mode.
    pub(crate) fn files(&self) -> Option<&IdentityFiles> {
        match self {
            IdentitySource::Files(f) => Some(f),
            IdentitySource::Ca(_) => None,
        }
    }

    /// CA mode's settings; `None` in file mode.
    pub(crate) fn ca(&self) -> Option<&CaIdentityConfig> {
        match self {
            IdentitySource::Files(_) => None,
            IdentitySource::Ca(ca) => Some(ca),
        }
    }
}

/// File mode: `identity.cert`, `identity.key`, `identity.bundle`.
#[derive(Clone, Debug)]
pub struct IdentityFiles {
    /// PEM: the leaf certificate first, then any intermediates.
    pub cert: PathBuf,
    /// PEM: the leaf's private key (PKCS#8, SEC1 or PKCS#1).
    pub key: PathBuf,
    /// PEM: the trusted root certificates.
    pub bundle: PathBuf,
    /// Swap in new files when they change on disk.
    pub(crate) watch: bool,
    /// Accept a key file that group or other users can read
    /// (mode & 0o077 != 0), with a warning, instead of refusing it.
    pub(crate) allow_insecure_key_permissions: bool,
}

/// `identity.ca`: get and renew the certificate from `usher ca serve`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaIdentityConfig {
    /// The CA server, `https://host:port`.
    #[serde(deserialize_with = "de::https_url")]
    pub(crate) url: String,
    /// PEM: the roots that verify the CA server (and are trusted for peers
    /// until the CA serves its bundle).
    pub bundle: PathBuf,
    /// What authorises the first enrolment (and a new one after the
    /// certificate expired): a file holding a bootstrap token from `usher
    /// ca token`, or, on Kubernetes, the pod's projected service account
    /// token (audience `usher-ca`; `spiffe_id` must then be
    /// `spiffe://<td>/ns/<namespace>/sa/<service account>`). Re-read at
    /// every enrolment, as the kubelet rotates projected tokens.
    pub token_file: PathBuf,
    /// The identity to ask for.
    #[serde(deserialize_with = "de::spiffe_id")]
    pub(crate) spiffe_id: SpiffeId,
    /// Renew at this fraction of the certificate's lifetime (with ±10 %
    /// jitter), like Linkerd and SPIRE do.
    #[serde(
        default = "defaults::renew_at",
        deserialize_with = "de::renew_fraction"
    )]
    pub(crate) renew_at: f64,
}

/// `identity:` as written: both shapes' keys, checked into one source.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdentityKeys {
    #[serde(default)]
    cert: PathBuf,
    #[serde(default)]
    key: PathBuf,
    #[serde(default)]
    bundle: PathBuf,
    #[serde(default)]
    ca: Option<CaIdentityConfig>,
    #[serde(default = "defaults::yes")]
    watch: bool,
    #[serde(default)]
    allow_insecure_key_permissions: bool,
}

impl TryFrom<IdentityKeys> for IdentitySource {
    /// A message that names the key inside `identity` it is about
    /// (`missing field `cert``, or `at `cert`: …`; see `tidy_error`).
    type Error = String;

    fn try_from(keys: IdentityKeys) -> Result<IdentitySource, String> {
        let files = [
            ("cert", &keys.cert),
            ("key", &keys.key),
            ("bundle", &keys.bundle),
        ];
        match keys.ca {
            None => {
                if let Some((key, _)) = files.iter().find(|(_, p)| p.as_os_str().is_empty()) {
                    return Err(format!(
                        "missing field `{key}` (give identity.cert, identity.key and identity.bundle, or identity.ca)"
                    ));
                }
                Ok(IdentitySource::Files(IdentityFiles {
                    cert: keys.cert,
                    key: keys.key,
                    bundle: keys.bundle,
                    watch: keys.watch,
                    allow_insecure_key_permissions: keys.allow_insecure_key_permissions,
                }))
            }
            Some(ca) => {
                if let Some((key, _)) = files.iter().find(|(_, p)| !p.as_os_str().is_empty()) {
                    return Err(format!(
                        "at `{key}`: cannot be used together with identity.ca (the CA provides the certificate, key and bundle)"
                    ));
                }
                if keys.allow_insecure_key_permissions {
                    return Err("at `allow_insecure_key_permissions`: applies only to identity.key (file mode); with identity.ca the key is made in memory and never written".into());
                }
                Ok(IdentitySource::Ca(ca))
            }
        }
    }
}
