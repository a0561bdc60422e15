//! Authorization of inbound requests by Rego policy (the `usher-policy`
//! crate), with hot reload.
//!
//! The compiled policy sits behind an atomic swap: a request takes a
//! snapshot without locking; a reload (file change, SIGHUP) compiles the new
//! policy off the request path and swaps it in only if it compiles, so no
//! request ever sees a half-loaded policy and a broken file never replaces a
//! working one.

mod decision_log;
mod future;
mod layer;
mod watch;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use arc_swap::{ArcSwap, Guard};
use usher_policy::{Limits, Policy, PolicyError, PolicySource, RegoVersion};

pub(crate) use layer::{AuthorizeLayer, AuthzShared};
pub(crate) use watch::spawn_watcher;

use crate::config::{PolicyConfig, PolicyMode, RegoVersionConfig};

/// A compiled policy and when it was loaded.
pub(crate) struct LoadedPolicy {
    pub(crate) policy: Policy,
    pub(crate) loaded_at: SystemTime,
}

/// The policy in force and the history of reloads, for `/policy`.
pub struct PolicyStore {
    current: ArcSwap<LoadedPolicy>,
    config: PolicyConfig,
    reloads: AtomicU64,
    reload_failures: AtomicU64,
    /// Only touched on reload and by the admin view, never per request.
    last_error: Mutex<Option<String>>,
}

pub(crate) fn rego_version(v: RegoVersionConfig) -> RegoVersion {
    match v {
        RegoVersionConfig::V0 => RegoVersion::V0,
        RegoVersionConfig::V1 => RegoVersion::V1,
    }
}

fn compile(config: &PolicyConfig) -> Result<Policy, PolicyError> {
    let source = PolicySource::from_files(&config.files, &config.data)?;
    let limits = Limits {
        eval_timeout: config.eval_timeout,
    };
    let policy = Policy::compile(
        &source,
        &config.query,
        rego_version(config.rego_version),
        limits,
    )?;
    // A new compiled policy, so new (empty) caches: a reload never answers
    // from the decisions of the policy or data it replaces.
    Ok(policy.with_decision_cache(config.decision_cache.entries))
}

/// A warning when the policy in force calls `http.send` and the sidecar
/// has one worker thread: every decision then holds that thread, and so
/// every other request, for as long as the call takes (at most
/// `policy.eval_timeout`).
pub(crate) fn single_thread_warning(
    policy: &usher_policy::Policy,
    workers: usize,
) -> Option<String> {
    (workers <= 1 && policy.calls_out()).then(|| {
        "the policy calls http.send, which holds the sidecar's only worker thread \
(runtime.workers: 1, the default) for as long as each call takes, up to policy.eval_timeout; \
set runtime.workers: 2 or more"
            .to_string()
    })
}

/// What a reload did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// A new revision is in force.
    Swapped { revision: String },
    /// The files compile to the revision already in force.
    Unchanged,
    /// The new files were refused; the old policy stays.
    Refused,
}

impl PolicyStore {
    /// Compiles the configured policy; at start-up a policy that does not
    /// compile is fatal (there is no old one to keep).
    pub(crate) fn load(config: &PolicyConfig) -> Result<Arc<PolicyStore>, PolicyError> {
        let policy = compile(config)?;
        Ok(Arc::new(PolicyStore {
            current: ArcSwap::from_pointee(LoadedPolicy {
                policy,
                loaded_at: SystemTime::now(),
            }),
            config: config.clone(),
            reloads: AtomicU64::new(0),
            reload_failures: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }))
    }

    /// The policy in force; lock-free.
    pub(crate) fn current(&self) -> Guard<Arc<LoadedPolicy>> {
        self.current.load()
    }

    pub(crate) fn config(&self) -> &PolicyConfig {
        &self.config
    }

    pub(crate) fn mode(&self) -> PolicyMode {
        self.config.mode
    }

    /// Recompiles from disk and swaps the new policy in if it compiles.
    /// Blocking (parsing, compiling, a warm-up evaluation): call it off the
    /// async workers.
    pub fn reload(&self, trigger: &str) -> ReloadOutcome {
        match compile(&self.config) {
            Ok(policy) => {
                if policy.revision() == self.current().policy.revision() {
                    return ReloadOutcome::Unchanged;
                }
                let revision = policy.revision().to_string();
                self.current.store(Arc::new(LoadedPolicy {
                    policy,
                    loaded_at: SystemTime::now(),
                }));
                self.reloads.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.last_error.lock() {
                    *last = None;
                }
                tracing::info!(trigger, %revision, "policy reloaded");
                ReloadOutcome::Swapped { revision }
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                let error = e.to_string();
                tracing::error!(
                    trigger,
                    %error,
                    revision = %self.current().policy.revision(),
                    "policy reload refused; the previous policy stays in force"
                );
                if let Ok(mut last) = self.last_error.lock() {
                    *last = Some(error);
                }
                ReloadOutcome::Refused
            }
        }
    }

    /// `/policy` on the admin listener.
    pub(crate) fn status(&self) -> serde_json::Value {
        let current = self.current();
        let last_error = self.last_error.lock().ok().and_then(|e| e.clone());
        serde_json::json!({
            "enabled": true,
            "revision": current.policy.revision(),
            "loaded_at": humantime::format_rfc3339_seconds(current.loaded_at).to_string(),
            "query": current.policy.query(),
            "input_parts": current.policy.input_parts().paths(),
            "decision_cache": {
                "entries": current.policy.decision_cache_entries(),
                "unavailable": current.policy.decision_cache_unavailable(),
            },
            "files": current.policy.files(),
            "mode": match self.config.mode { PolicyMode::Enforce => "enforce", PolicyMode::Audit => "audit" },
            "reloads": self.reloads.load(Ordering::Relaxed),
            "reload_failures": self.reload_failures.load(Ordering::Relaxed),
            "last_error": last_error,
        })
    }
}
