//! `authentication:` (end-user JWTs) and `rate_limit:` (per-caller token
//! buckets): what the inbound side checks before the policy runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::de;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthenticationConfig {
    /// Trusted token issuers; a token is checked against the one its `iss` names.
    pub(crate) jwt: Vec<JwtIssuerConfig>,
    /// Clock skew allowed on `exp` and `nbf`.
    #[serde(default = "leeway", deserialize_with = "de::duration")]
    pub(crate) leeway: Duration,
    /// Longer tokens are refused before any parsing.
    #[serde(default = "max_token_bytes", deserialize_with = "token_bytes")]
    pub(crate) max_token_bytes: usize,
}

impl AuthenticationConfig {
    /// What `authentication:` must hold beyond its shape: the key at fault
    /// and what was expected, for the first problem.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        if self.jwt.is_empty() {
            return Err((
                "authentication.jwt".into(),
                "expected at least one issuer".into(),
            ));
        }
        for (i, issuer) in self.jwt.iter().enumerate() {
            if issuer.jwks_file.is_none() && issuer.jwks_url.is_none() {
                return Err((
                    format!("authentication.jwt[{i}]"),
                    "expected jwks_file or jwks_url (where the issuer's public keys are)".into(),
                ));
            }
            if issuer.from_headers.is_empty() {
                return Err((
                    format!("authentication.jwt[{i}].from_headers"),
                    "expected at least one header".into(),
                ));
            }
            if let Some(j) = self.jwt[..i].iter().position(|o| o.issuer == issuer.issuer) {
                return Err((
                    format!("authentication.jwt[{i}].issuer"),
                    format!(
                        "issuer {:?} is already configured by authentication.jwt[{j}]",
                        issuer.issuer
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtIssuerConfig {
    /// Must equal the token's `iss`.
    pub(crate) issuer: String,
    /// The token's `aud` must contain one of these (empty: not checked).
    #[serde(default)]
    pub(crate) audiences: Vec<String>,
    /// The issuer's JSON Web Key Set on disk, reloaded when it changes.
    #[serde(default)]
    pub(crate) jwks_file: Option<PathBuf>,
    /// Or fetched from the issuer, every `jwks_refresh`.
    #[serde(default, deserialize_with = "url_opt")]
    pub(crate) jwks_url: Option<String>,
    #[serde(default = "jwks_refresh", deserialize_with = "de::duration")]
    pub(crate) jwks_refresh: Duration,
    /// Where the token is: default `Authorization: Bearer <token>`.
    #[serde(default = "default_locations")]
    pub(crate) from_headers: Vec<TokenLocation>,
    /// Refuse requests without a token (401). Otherwise they go on without
    /// claims and the policy decides.
    #[serde(default)]
    pub(crate) required: bool,
    /// Pass the token on to the app (default: removed).
    #[serde(default)]
    pub(crate) forward: bool,
    /// Claim → request header for the app (like Istio's outputClaimToHeaders).
    /// These headers are always removed from incoming requests first.
    #[serde(default, deserialize_with = "claim_headers")]
    pub(crate) claims_to_headers: BTreeMap<String, String>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct TokenLocation {
    #[serde(deserialize_with = "header_name")]
    pub(crate) name: String,
    /// Stripped from the header value; `Bearer ` by default for Authorization.
    #[serde(default)]
    pub(crate) prefix: String,
}

fn default_locations() -> Vec<TokenLocation> {
    vec![TokenLocation {
        name: "authorization".into(),
        prefix: "Bearer ".into(),
    }]
}

fn leeway() -> Duration {
    Duration::from_secs(60)
}
fn max_token_bytes() -> usize {
    8192
}
fn jwks_refresh() -> Duration {
    Duration::from_secs(300)
}

fn token_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    use serde::de::Error;
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 64..=65536) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a token size limit from 64 to 65536 bytes, got {n}"
        ))),
    }
}

fn header_name<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    http::HeaderName::from_bytes(s.as_bytes())
        .map(|h| h.as_str().to_owned())
        .map_err(|_| D::Error::custom(format!("expected an HTTP header name, got {s:?}")))
}

fn claim_headers<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    use serde::de::Error;
    let map = BTreeMap::<String, String>::deserialize(d)?;
    let mut out = BTreeMap::new();
    for (claim, header) in map {
        if claim.is_empty() {
            return Err(D::Error::custom("a claim name is empty"));
        }
        let h = http::HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
            D::Error::custom(format!(
                "claim {claim:?}: expected an HTTP header name, got {header:?}"
            ))
        })?;
        out.insert(claim, h.as_str().to_owned());
    }
    Ok(out)
}

fn url_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    use serde::de::Error;
    let s = String::deserialize(d)?;
    let ok = s
        .parse::<http::Uri>()
        .ok()
        .filter(|u| matches!(u.scheme_str(), Some("https" | "http")) && u.authority().is_some())
        .is_some();
    if ok {
        Ok(Some(s))
    } else {
        Err(D::Error::custom(format!(
            "expected the issuer's JWKS URL such as https://login.example.org/.well-known/jwks.json, got {s:?}"
        )))
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RateLimitConfig {
    /// One bucket per caller SPIFFE ID.
    #[serde(default)]
    pub(crate) per_caller: Option<BucketConfig>,
    /// Buckets per caller *and* path prefix (the first matching prefix).
    #[serde(default)]
    pub(crate) routes: Vec<RouteLimitConfig>,
    /// Buckets idle this long are forgotten (memory stays bounded).
    #[serde(default = "idle_eviction", deserialize_with = "de::duration")]
    pub(crate) evict_after: Duration,
}

impl RateLimitConfig {
    /// What `rate_limit:` must hold beyond its shape: the key at fault and
    /// what was expected, for the first problem.
    pub(super) fn check(&self) -> Result<(), (String, String)> {
        for (i, route) in self.routes.iter().enumerate() {
            if !route.path_prefix.starts_with('/') {
                return Err((
                    format!("rate_limit.routes[{i}].path_prefix"),
                    format!(
                        "expected a path prefix starting with /, got {:?}",
                        route.path_prefix
                    ),
                ));
            }
        }
        if self.per_caller.is_none() && self.routes.is_empty() {
            return Err(("rate_limit".into(), "expected per_caller or routes".into()));
        }
        Ok(())
    }
}

#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct BucketConfig {
    #[serde(deserialize_with = "rate")]
    pub(crate) requests_per_second: u32,
    #[serde(deserialize_with = "rate")]
    pub(crate) burst: u32,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RouteLimitConfig {
    pub(crate) path_prefix: String,
    #[serde(deserialize_with = "rate")]
    pub(crate) requests_per_second: u32,
    #[serde(deserialize_with = "rate")]
    pub(crate) burst: u32,
}

fn idle_eviction() -> Duration {
    Duration::from_secs(300)
}

fn rate<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    use serde::de::Error;
    let n = u64::deserialize(d)?;
    match u32::try_from(n) {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number from 1 to 1000000, got {n}"
        ))),
    }
}
