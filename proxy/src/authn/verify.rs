//! Verifying one bearer token against the configured issuers.
//!
//! The token's header and `iss` are read before any signature check only
//! to pick the issuer and key; nothing from an unverified token is trusted
//! beyond that. `alg: none` and HMAC algorithms are refused outright (all
//! keys are public keys), the key must fit the algorithm, and `exp` is
//! required.

use std::sync::Arc;

use arc_swap::ArcSwap;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, Validation};

use super::jwks::Jwks;

/// Why a token was refused. The reason goes to the log and to
/// `WWW-Authenticate`'s description; the token itself never does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reject {
    TooLarge,
    Malformed,
    AlgNone,
    /// An HMAC algorithm where only public keys exist (key confusion).
    SymmetricAlg,
    UnsupportedAlg,
    UnknownIssuer,
    UnknownKey,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    MissingClaim,
    /// More than one token (two values, or two locations): which one the
    /// app would read is not known.
    Ambiguous,
}

impl Reject {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Reject::TooLarge => "token too large",
            Reject::Malformed => "malformed token",
            Reject::AlgNone => "unsigned token (alg none)",
            Reject::SymmetricAlg => "HMAC algorithm refused",
            Reject::UnsupportedAlg => "unsupported algorithm",
            Reject::UnknownIssuer => "unknown issuer",
            Reject::UnknownKey => "unknown key id",
            Reject::BadSignature => "bad signature",
            Reject::Expired => "token expired",
            Reject::NotYetValid => "token not yet valid",
            Reject::WrongAudience => "wrong audience",
            Reject::MissingClaim => "required claim missing",
            Reject::Ambiguous => "more than one token",
        }
    }

    /// A metric label: the same set, in snake case.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Reject::TooLarge => "too_large",
            Reject::Malformed => "malformed",
            Reject::AlgNone => "alg_none",
            Reject::SymmetricAlg => "hmac_refused",
            Reject::UnsupportedAlg => "unsupported_alg",
            Reject::UnknownIssuer => "unknown_issuer",
            Reject::UnknownKey => "unknown_key",
            Reject::BadSignature => "bad_signature",
            Reject::Expired => "expired",
            Reject::NotYetValid => "not_yet_valid",
            Reject::WrongAudience => "wrong_audience",
            Reject::MissingClaim => "missing_claim",
            Reject::Ambiguous => "ambiguous",
        }
    }
}

/// One trusted issuer.
pub struct Issuer {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks: Arc<ArcSwap<Jwks>>,
}

/// A verified token: which issuer (index) and its claims.
pub struct Verified {
    pub(crate) issuer: usize,
    pub(crate) claims: serde_json::Value,
}

/// Largest header or payload segment decoded before the signature check.
const MAX_SEGMENT: usize = 64 * 1024;

pub fn verify(
    token: &str,
    issuers: &[Issuer],
    leeway_secs: u64,
    max_bytes: usize,
) -> Result<Verified, (Option<usize>, Reject)> {
    if token.len() > max_bytes {
        return Err((None, Reject::TooLarge));
    }
    let mut parts = token.split('.');
    let (Some(header), Some(payload), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err((None, Reject::Malformed));
    };
    let header: serde_json::Value = decode_segment(header).ok_or((None, Reject::Malformed))?;
    let alg = match header.get("alg").and_then(|a| a.as_str()) {
        None => return Err((None, Reject::Malformed)),
        Some(a) if a.eq_ignore_ascii_case("none") => return Err((None, Reject::AlgNone)),
        Some("HS256" | "HS384" | "HS512") => return Err((None, Reject::SymmetricAlg)),
        Some(a) => a
            .parse::<Algorithm>()
            .map_err(|_| (None, Reject::UnsupportedAlg))?,
    };
    let kid = header.get("kid").and_then(|k| k.as_str());
    let payload: serde_json::Value = decode_segment(payload).ok_or((None, Reject::Malformed))?;
    let iss = payload.get("iss").and_then(|i| i.as_str());
    let (index, issuer) = issuers
        .iter()
        .enumerate()
        .find(|(_, i)| Some(i.issuer.as_str()) == iss)
        .ok_or((None, Reject::UnknownIssuer))?;
    let fail = |r| (Some(index), r);

    let jwks = issuer.jwks.load();
    if let Some(kid) = kid {
        if !jwks.has_kid(kid) {
            return Err(fail(Reject::UnknownKey));
        }
    }
    let mut validation = Validation::new(alg);
    validation.leeway = leeway_secs;
    validation.validate_nbf = true;
    validation.set_issuer(&[issuer.issuer.as_str()]);
    if issuer.audiences.is_empty() {
        validation.validate_aud = false;
    } else {
        validation.set_audience(&issuer.audiences);
    }
    validation.set_required_spec_claims(&["exp", "iss"]);

    let mut last = Reject::UnknownKey;
    for key in jwks.candidates(kid, alg) {
        match jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation) {
            Ok(data) => {
                return Ok(Verified {
                    issuer: index,
                    claims: data.claims,
                })
            }
            Err(e) => {
                use jsonwebtoken::errors::ErrorKind as K;
                last = match e.kind() {
                    K::InvalidSignature => Reject::BadSignature,
                    K::ExpiredSignature => Reject::Expired,
                    K::ImmatureSignature => Reject::NotYetValid,
                    K::InvalidAudience => Reject::WrongAudience,
                    K::InvalidIssuer => Reject::UnknownIssuer,
                    K::MissingRequiredClaim(_) => Reject::MissingClaim,
                    K::InvalidAlgorithm => Reject::UnsupportedAlg,
                    _ => Reject::Malformed,
                };
                // A bad signature may just be the wrong key of several;
                // anything else is about the token itself.
                if last != Reject::BadSignature {
                    return Err(fail(last));
                }
            }
        }
    }
    Err(fail(last))
}

fn decode_segment(segment: &str) -> Option<serde_json::Value> {
    if segment.len() > MAX_SEGMENT {
        return None;
    }
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(segment)
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}
