//! `usher check`: loads and verifies everything `usher run` would — the
//! config, the identity files (readable, key matching the certificate,
//! SPIFFE ID, validity), the TLS settings and routes, the policies (the
//! same compile path and checks as the sidecar), JWKS files — and binds
//! nothing. Every problem found is reported with the config key it comes
//! from, not just the first.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::config::{CaIdentityConfig, Config, IdentityFiles, IdentitySource};
use crate::identity::{self, CertStore, IdentityError, TrustStore};

/// One thing `usher run` would refuse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The config key the problem comes from (empty: the file as a whole).
    pub key: String,
    pub message: String,
}

/// What a successful check found, for the one-line summary.
#[derive(Debug)]
pub struct Summary {
    pub service: String,
    /// The SPIFFE ID of the certificate (file mode) or the one to request.
    pub spiffe_id: String,
    pub routes: usize,
    pub policy_revision: Option<String>,
}

fn problem(key: impl Into<String>, message: impl Into<String>) -> Problem {
    Problem {
        key: key.into(),
        message: message.into(),
    }
}

/// What `usher check` found: the verdict, and what works but should be
/// changed (old spellings of moved keys, a policy calling out on the only
/// worker thread), reported either way.
#[derive(Debug)]
pub struct Checked {
    pub warnings: Vec<Problem>,
    pub result: Result<Summary, Vec<Problem>>,
}

/// Checks the config at `path`. A config that does not parse stops there
/// (nothing else can be known); otherwise every later check runs.
pub fn check(path: &Path) -> Checked {
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(e) => {
            return Checked {
                warnings: Vec::new(),
                result: Err(vec![problem(e.key, e.message)]),
            }
        }
    };
    let mut warnings: Vec<Problem> = config
        .warnings
        .iter()
        .map(|w| problem(w.key.clone(), w.message.clone()))
        .collect();
    let result = check_config(&config, &mut warnings);
    Checked { warnings, result }
}

fn check_config(config: &Config, warnings: &mut Vec<Problem>) -> Result<Summary, Vec<Problem>> {
    let mut problems = Vec::new();
    let spiffe_id = check_identity(config, &mut problems);
    let routes = config.outbound.routes.len();
    let policy_revision = check_policy(config, &mut problems, warnings);
    check_jwks(config, &mut problems);
    if problems.is_empty() {
        Ok(Summary {
            service: config.service.clone(),
            spiffe_id,
            routes,
            policy_revision,
        })
    } else {
        Err(problems)
    }
}

fn readable(key: &str, path: &Path, problems: &mut Vec<Problem>) -> bool {
    match std::fs::File::open(path) {
        Ok(_) => true,
        Err(e) => {
            problems.push(problem(key, format!("cannot read {}: {e}", path.display())));
            false
        }
    }
}

/// The identity key an error is about, found by the file it names.
pub(crate) fn identity_key(id: &IdentityFiles, err: &IdentityError) -> &'static str {
    let named = |p: &PathBuf| {
        if *p == id.key {
            "identity.key"
        } else if *p == id.bundle {
            "identity.bundle"
        } else {
            "identity.cert"
        }
    };
    match err {
        IdentityError::ReadCerts { path, .. } | IdentityError::NoCerts { path } => named(path),
        IdentityError::ReadKey { .. }
        | IdentityError::KeyMismatch { .. }
        | IdentityError::InsecureKeyPermissions { .. } => "identity.key",
        IdentityError::NoSpiffeId { .. } | IdentityError::BadCert { .. } => "identity.cert",
        IdentityError::BadRoot { .. } => "identity.bundle",
    }
}

/// CA mode: the CA's bundle (with a certificate in it) and the token file
/// can be read.
fn check_ca(ca: &CaIdentityConfig, problems: &mut Vec<Problem>) -> String {
    if readable("identity.ca.bundle", &ca.bundle, problems) {
        let pems = std::fs::read(&ca.bundle).unwrap_or_default();
        if !String::from_utf8_lossy(&pems).contains("-----BEGIN CERTIFICATE-----") {
            problems.push(problem(
                "identity.ca.bundle",
                format!("{}: no PEM certificate found", ca.bundle.display()),
            ));
        }
    }
    readable("identity.ca.token_file", &ca.token_file, problems);
    ca.spiffe_id.to_string()
}

/// File mode: the three files, the key, the certificate's SPIFFE ID and
/// validity, the TLS configs and routes. CA mode: the CA's bundle and the
/// token file. Returns the SPIFFE ID found or asked for.
fn check_identity(config: &Config, problems: &mut Vec<Problem>) -> String {
    let provider = identity::crypto_provider(&config.tls);
    let id = match &config.identity {
        IdentitySource::Files(files) => files,
        IdentitySource::Ca(ca) => return check_ca(ca, problems),
    };
    let all_readable = [
        ("identity.cert", &id.cert),
        ("identity.key", &id.key),
        ("identity.bundle", &id.bundle),
    ]
    .into_iter()
    .fold(true, |ok, (key, path)| readable(key, path, problems) && ok);
    if !all_readable {
        return String::new();
    }
    let loaded = match identity::load_identity(id, &provider) {
        Ok(loaded) => loaded,
        Err(e) => {
            problems.push(problem(identity_key(id, &e), e.to_string()));
            return String::new();
        }
    };
    let now = SystemTime::now();
    if loaded.not_after <= now {
        problems.push(problem(
            "identity.cert",
            format!(
                "{}: the certificate expired at {}",
                id.cert.display(),
                humantime::format_rfc3339_seconds(loaded.not_after)
            ),
        ));
    } else if loaded.not_before > now {
        problems.push(problem(
            "identity.cert",
            format!(
                "{}: the certificate is not valid before {}",
                id.cert.display(),
                humantime::format_rfc3339_seconds(loaded.not_before)
            ),
        ));
    }
    let spiffe_id = loaded.spiffe_id.to_string();
    let trust = match TrustStore::new(loaded.roots.clone(), provider.clone()) {
        Ok(trust) => trust,
        Err(e) => {
            problems.push(problem("identity.bundle", e.to_string()));
            return spiffe_id;
        }
    };
    let certs: Arc<CertStore> = CertStore::new(loaded.certified_key.clone());
    if let Err(e) =
        identity::server_config(certs.clone(), trust.clone(), &config.tls, provider.clone())
    {
        problems.push(problem("tls", e.to_string()));
    }
    if let Err(e) = crate::outbound::RouteTable::build(
        &config.outbound.routes,
        &certs,
        &trust,
        &config.tls,
        &provider,
    ) {
        problems.push(problem("outbound.routes", e.to_string()));
    }
    spiffe_id
}

/// Every file readable, then the very load the sidecar does at start.
fn check_policy(
    config: &Config,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<Problem>,
) -> Option<String> {
    let policy = config.policy.as_ref()?;
    let mut ok = true;
    for (i, f) in policy.files.iter().enumerate() {
        ok &= readable(&format!("policy.files[{i}]"), f, problems);
    }
    for (i, f) in policy.data.iter().enumerate() {
        ok &= readable(&format!("policy.data[{i}]"), f, problems);
    }
    if !ok {
        return None;
    }
    match crate::authz::PolicyStore::load(policy) {
        Ok(store) => {
            let current = store.current();
            let workers = config.runtime.workers;
            if let Some(w) = crate::authz::single_thread_warning(&current.policy, workers) {
                warnings.push(problem("runtime.workers", w));
            }
            Some(current.policy.revision().to_string())
        }
        Err(e) => {
            problems.push(problem("policy", e.to_string()));
            None
        }
    }
}

fn check_jwks(config: &Config, problems: &mut Vec<Problem>) {
    let Some(authn) = &config.authentication else {
        return;
    };
    for (i, rule) in authn.jwt.iter().enumerate() {
        let Some(path) = &rule.jwks_file else {
            continue;
        };
        let key = format!("authentication.jwt[{i}].jwks_file");
        match std::fs::read(path) {
            Err(e) => problems.push(problem(key, format!("cannot read {}: {e}", path.display()))),
            Ok(bytes) => {
                if let Err(e) = crate::authn::Jwks::parse(&bytes) {
                    problems.push(problem(key, format!("{}: {e}", path.display())));
                }
            }
        }
    }
}
