//! Request authentication with JWTs (`authentication.jwt`): mTLS says which
//! service calls, a JWT says on behalf of which end user.
//!
//! [`Authn`] holds the issuers and their key sets (reloaded from disk on
//! change, or fetched from a URL periodically); [`layer::Authenticate`] is
//! the inbound stack's step that finds the token, verifies it
//! ([`verify::verify`]) and hands the claims to the policy.

pub(crate) mod jwks;
pub(crate) mod layer;
mod refresh;
pub mod verify;

use std::sync::Arc;

use arc_swap::ArcSwap;
use http::header::HeaderName;

pub use jwks::{Jwks, JwksError};
pub(crate) use layer::{AuthenticateLayer, VerifiedClaims};
pub use verify::{Issuer, Reject};

use crate::config::AuthenticationConfig;

/// What every inbound connection shares when authentication is configured.
pub(crate) struct Authn {
    pub(crate) issuers: Vec<Issuer>,
    rules: Vec<Rule>,
    /// Where tokens are looked for, in order: header and value prefix.
    locations: Vec<(HeaderName, String)>,
    /// Some issuer requires a token.
    required: bool,
    /// Every header a claim is copied into: removed from incoming requests.
    output_headers: Vec<HeaderName>,
    leeway_secs: u64,
    max_token_bytes: usize,
    config: AuthenticationConfig,
}

struct Rule {
    forward: bool,
    claims_to_headers: Vec<(String, HeaderName)>,
}

#[derive(Debug, thiserror::Error)]
pub enum AuthnError {
    #[error("authentication.jwt[{index}].jwks_file {path}: {why}", path = .path.display())]
    JwksFile {
        index: usize,
        path: std::path::PathBuf,
        why: String,
    },
}

impl Authn {
    /// Reads the key set files (a broken one stops the start, naming it);
    /// URL key sets start empty and are fetched by [`Authn::spawn_refresh`].
    pub(crate) fn load(config: &AuthenticationConfig) -> Result<Arc<Authn>, AuthnError> {
        let mut issuers = Vec::with_capacity(config.jwt.len());
        let mut rules = Vec::with_capacity(config.jwt.len());
        let mut locations: Vec<(HeaderName, String)> = Vec::new();
        let mut output_headers: Vec<HeaderName> = Vec::new();
        for (index, c) in config.jwt.iter().enumerate() {
            let jwks = match &c.jwks_file {
                Some(path) => {
                    let bytes = std::fs::read(path).map_err(|e| AuthnError::JwksFile {
                        index,
                        path: path.clone(),
                        why: e.to_string(),
                    })?;
                    Jwks::parse(&bytes).map_err(|e| AuthnError::JwksFile {
                        index,
                        path: path.clone(),
                        why: e.to_string(),
                    })?
                }
                None => Jwks { keys: Vec::new() },
            };
            issuers.push(Issuer {
                issuer: c.issuer.clone(),
                audiences: c.audiences.clone(),
                jwks: Arc::new(ArcSwap::from_pointee(jwks)),
            });
            let mut claims = Vec::new();
            for (claim, header) in &c.claims_to_headers {
                // Validated when the config was parsed.
                if let Ok(h) = HeaderName::from_bytes(header.as_bytes()) {
                    if !output_headers.contains(&h) {
                        output_headers.push(h.clone());
                    }
                    claims.push((claim.clone(), h));
                }
            }
            rules.push(Rule {
                forward: c.forward,
                claims_to_headers: claims,
            });
            for loc in &c.from_headers {
                if let Ok(h) = HeaderName::from_bytes(loc.name.as_bytes()) {
                    if !locations.iter().any(|(n, p)| *n == h && *p == loc.prefix) {
                        locations.push((h, loc.prefix.clone()));
                    }
                }
            }
        }
        Ok(Arc::new(Authn {
            issuers,
            rules,
            locations,
            required: config.jwt.iter().any(|c| c.required),
            output_headers,
            leeway_secs: config.leeway.as_secs(),
            max_token_bytes: config.max_token_bytes,
            config: config.clone(),
        }))
    }
}
