//! The trust bundle of a CA directory (`bundle.pem`): read and checked
//! when a CA is loaded, set when one is made, re-read on demand
//! ([`Ca::reload_bundle`]) so that roots can rotate without a restart.

use std::path::Path;

use super::check::chains_to;
use crate::authority::Ca;
use crate::encode::{pem_certs, pem_chain};
use crate::error::CaError;
use crate::files::read_optional;
use crate::layout::{CA_BUNDLE_FILE, CA_CERT_FILE, CA_CHAIN_FILE};

impl Ca {
    /// Re-reads `bundle.pem` from the CA directory (so an operator can add a
    /// new root, or drop an old one, during a root rotation without a
    /// restart) and returns it. On error the previous bundle is kept.
    pub fn reload_bundle(&self) -> Result<String, CaError> {
        let Some(dir) = &self.dir else {
            return Ok(self.trust_bundle_pem());
        };
        let fresh = read_bundle(dir, self)?;
        match self.bundle.write() {
            Ok(mut b) => b.clone_from(&fresh),
            Err(poisoned) => poisoned.into_inner().clone_from(&fresh),
        }
        Ok(fresh)
    }
}

/// Reads and checks `dir/bundle.pem` for `ca`: every block a certificate,
/// and `ca` chaining to one of them. A root without the file is its own
/// bundle.
pub(super) fn read_bundle(dir: &Path, ca: &Ca) -> Result<String, CaError> {
    let bundle_path = dir.join(CA_BUNDLE_FILE);
    let bundle = match read_optional(&bundle_path)? {
        Some(bytes) => pem_chain(&pem_certs(&bytes, &bundle_path, false)?),
        None if ca.self_signed => return Ok(ca.cert_pem.clone()),
        None => return Err(CaError::Missing { path: bundle_path }),
    };
    let roots = pem_certs(bundle.as_bytes(), &bundle_path, false)?;
    let chain = pem_certs(ca.chain_pem.as_bytes(), &dir.join(CA_CHAIN_FILE), true)?;
    chains_to(&ca.cert_der, &chain, &roots).map_err(|reason| CaError::NotChained {
        path: dir.join(CA_CERT_FILE),
        bundle_path,
        reason,
    })?;
    Ok(bundle)
}

pub(super) fn set_bundle(ca: &Ca, bundle: String) {
    match ca.bundle.write() {
        Ok(mut b) => *b = bundle,
        Err(poisoned) => *poisoned.into_inner() = bundle,
    }
}

/// Checks that `ca` chains through its chain to its current bundle.
pub(super) fn check_chain(ca: &Ca, cert_path: &Path, bundle_path: &Path) -> Result<(), CaError> {
    let bundle = ca.trust_bundle_pem();
    let roots = pem_certs(bundle.as_bytes(), bundle_path, false)?;
    let chain = pem_certs(ca.chain_pem.as_bytes(), bundle_path, true)?;
    chains_to(&ca.cert_der, &chain, &roots).map_err(|reason| CaError::NotChained {
        path: cert_path.to_owned(),
        bundle_path: bundle_path.to_owned(),
        reason,
    })
}
