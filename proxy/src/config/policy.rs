//! `policy:`: which Rego files decide on inbound requests, and how.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::{de, defaults};

/// `policy:`: which Rego files decide, and how.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Rego files (relative to this config file's folder).
    pub files: Vec<PathBuf>,
    /// JSON or YAML data files, merged under `data`.
    #[serde(default)]
    pub data: Vec<PathBuf>,
    /// The rule whose value is the decision: a boolean or an OPA-Envoy
    /// decision object.
    #[serde(default = "defaults::policy_query", deserialize_with = "de::query")]
    pub(crate) query: String,
    #[serde(default)]
    pub(crate) mode: PolicyMode,
    /// `v1` (default) or `v0` for older OPA policies (`allow { ... }`).
    #[serde(default)]
    pub(crate) rego_version: RegoVersionConfig,
    /// A decision that takes longer is a deny.
    #[serde(default = "defaults::eval_timeout", deserialize_with = "de::duration")]
    pub(crate) eval_timeout: Duration,
    /// Hand the request body to the policy (up to `max_bytes`).
    #[serde(default)]
    pub(crate) with_body: Option<WithBodyConfig>,
    #[serde(default)]
    pub(crate) decision_log: DecisionLogConfig,
    /// Decisions remembered per worker thread, for policies that qualify
    /// (see usher-policy's README: "The decision cache").
    #[serde(default)]
    pub(crate) decision_cache: DecisionCacheConfig,
    /// Reload when a policy or data file changes on disk (SIGHUP always does).
    #[serde(default = "defaults::yes")]
    pub(crate) watch: bool,
}

impl PolicyConfig {
    /// What `policy:` must hold beyond its shape: the key at fault and what
    /// was expected.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.files.is_empty() {
            return Err((
                "policy.files".into(),
                "expected at least one .rego file".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum PolicyMode {
    /// Denied requests get 403 (or the policy's status) and never reach the app.
    #[default]
    Enforce,
    /// Decisions are evaluated and logged; every request goes through.
    Audit,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum RegoVersionConfig {
    V0,
    #[default]
    V1,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct WithBodyConfig {
    /// At most this many bytes are read before the decision; a longer body
    /// is handed over truncated (`input.truncated_body`) and streamed on whole.
    #[serde(deserialize_with = "de::body_limit")]
    pub(crate) max_bytes: usize,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionLogConfig {
    /// Fraction of allowed requests logged (0.0 to 1.0); denials are always logged.
    #[serde(default = "defaults::sample_rate", deserialize_with = "de::fraction")]
    pub(crate) allow_sample_rate: f64,
}

impl Default for DecisionLogConfig {
    fn default() -> Self {
        DecisionLogConfig {
            allow_sample_rate: defaults::sample_rate(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionCacheConfig {
    /// At most this many decisions per worker thread; 0 turns the cache off.
    #[serde(
        default = "defaults::decision_cache_entries",
        deserialize_with = "de::cache_entries"
    )]
    pub(crate) entries: usize,
}

impl Default for DecisionCacheConfig {
    fn default() -> Self {
        DecisionCacheConfig {
            entries: defaults::decision_cache_entries(),
        }
    }
}
