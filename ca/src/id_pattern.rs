//! [`IdPattern`]: which SPIFFE IDs a bootstrap token may enrol (one ID, or
//! every ID below a path), and why a pattern is refused
//! ([`IdPatternError`]). Separate from [`crate::token`] because
//! [`crate::CaError`] carries its error, and tokens depend on that.

use std::fmt;
use std::str::FromStr;

use crate::spiffe::{SpiffeId, SpiffeIdError};

/// Which SPIFFE IDs a token may enrol: one ID, or every ID below a path.
#[derive(Clone, PartialEq, Eq, Hash)]
pub enum IdPattern {
    /// Exactly this workload ID.
    Exact(SpiffeId),
    /// Any workload ID strictly below this one, by whole path segments:
    /// written `spiffe://td/ns/shop/*`, it matches `spiffe://td/ns/shop/sa/x`
    /// but neither `spiffe://td/ns/shopping` nor `spiffe://td/ns/shop`
    /// itself. `spiffe://td/*` matches every workload of the trust domain.
    Prefix(SpiffeId),
}

/// Why a string is not a valid [`IdPattern`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdPatternError {
    /// The ID (or the part before `/*`) is not a valid SPIFFE ID.
    #[error("invalid SPIFFE ID pattern {pattern:?}: {error}")]
    InvalidId {
        /// The rejected pattern.
        pattern: String,
        /// Which rule it breaks.
        error: SpiffeIdError,
    },
    /// A `*` anywhere but as the whole last segment.
    #[error(
        "invalid SPIFFE ID pattern {pattern:?}: a wildcard is allowed only as the whole \
         last path segment, as in spiffe://example.org/ns/shop/*"
    )]
    MisplacedWildcard {
        /// The rejected pattern.
        pattern: String,
    },
    /// An exact pattern naming only a trust domain.
    #[error(
        "invalid SPIFFE ID pattern {pattern:?}: it names a trust domain, not a workload; \
         write {pattern}/* to allow every workload of the trust domain"
    )]
    TrustDomainOnly {
        /// The rejected pattern.
        pattern: String,
    },
}

impl IdPattern {
    /// Parses `spiffe://td/path` (exact) or `spiffe://td/path/*` (prefix).
    pub fn parse(s: &str) -> Result<IdPattern, IdPatternError> {
        let (base, prefix) = match s.strip_suffix("/*") {
            Some(base) => (base, true),
            None => (s, false),
        };
        if base.contains('*') {
            return Err(IdPatternError::MisplacedWildcard {
                pattern: s.to_owned(),
            });
        }
        let id = SpiffeId::parse(base).map_err(|error| IdPatternError::InvalidId {
            pattern: s.to_owned(),
            error,
        })?;
        if prefix {
            Ok(IdPattern::Prefix(id))
        } else if id.is_trust_domain_id() {
            Err(IdPatternError::TrustDomainOnly {
                pattern: s.to_owned(),
            })
        } else {
            Ok(IdPattern::Exact(id))
        }
    }

    /// True if `id` is covered by this pattern.
    pub fn matches(&self, id: &SpiffeId) -> bool {
        match self {
            IdPattern::Exact(exact) => exact == id,
            IdPattern::Prefix(base) => {
                base.trust_domain() == id.trust_domain()
                    && id
                        .path()
                        .strip_prefix(base.path())
                        .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/'))
            }
        }
    }

    /// The trust domain the pattern is in.
    pub fn trust_domain(&self) -> &str {
        match self {
            IdPattern::Exact(id) | IdPattern::Prefix(id) => id.trust_domain(),
        }
    }
}

impl fmt::Display for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdPattern::Exact(id) => write!(f, "{id}"),
            IdPattern::Prefix(id) => write!(f, "{id}/*"),
        }
    }
}

impl fmt::Debug for IdPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdPattern({self})")
    }
}

impl FromStr for IdPattern {
    type Err = IdPatternError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        IdPattern::parse(s)
    }
}
