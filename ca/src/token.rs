//! Bootstrap tokens: how a workload that has no certificate yet proves it may
//! enrol for a SPIFFE ID.
//!
//! `usher ca token` ([`mint_token`]) makes 32 random bytes, prints them once
//! as `usher-bt-<64 hex digits>`, and stores only their SHA-256 in
//! `CA_DIR/tokens.jsonl` (mode 0600), with the [`IdPattern`] the token is
//! good for, its expiry and whether it is single-use. The server's
//! [`TokenStore`] re-reads that file on every check, so tokens minted while
//! it runs are seen at once, and records a single-use token's consumption by
//! appending a `{"used": ...}` line to the same file, so it stays used across
//! restarts. Both writers append with `O_APPEND` and one `write` per line, so
//! running `usher ca token` next to the server is safe.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::encode::{hex, random_fill, sha256};
use crate::error::CaError;
use crate::files::{append_jsonl, read_jsonl};
use crate::issue::MAX_TTL;
use crate::spiffe::SpiffeId;

pub use crate::id_pattern::{IdPattern, IdPatternError};

/// File name of the token file inside the CA directory.
pub const TOKENS_FILE: &str = "tokens.jsonl";
/// How every bootstrap token starts.
pub const TOKEN_PREFIX: &str = "usher-bt-";

/// What a bootstrap token allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenSpec {
    /// The SPIFFE IDs it may enrol.
    pub pattern: IdPattern,
    /// How long it stays valid (more than zero, at most 365 days).
    pub ttl: Duration,
    /// Whether it is spent by its first successful use.
    pub single_use: bool,
}

/// One line of `tokens.jsonl`: a minted token.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRecord {
    /// SHA-256 of the whole token string, lowercase hex.
    hash: String,
    pattern: String,
    /// Unix seconds.
    created_at: u64,
    /// Unix seconds; the token is refused from this second on.
    expires_at: u64,
    single_use: bool,
}

/// One line of `tokens.jsonl`: a single-use token was spent.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct UsedRecord {
    used: String,
    /// Unix seconds.
    at: u64,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Line {
    Token(TokenRecord),
    Used(UsedRecord),
}

/// Mints a bootstrap token for `spec`, records its hash in
/// `ca_dir/tokens.jsonl`, and returns the token (shown once; it is not
/// stored). `ca_dir` must hold a CA of the pattern's trust domain.
pub fn mint_token(ca_dir: &Path, spec: &TokenSpec) -> Result<String, CaError> {
    mint_token_at(ca_dir, spec, SystemTime::now())
}

/// [`mint_token`] as if run at `now` (so the token expires at `now + ttl`).
/// A `now` in the past makes a token that is already expired, for tests of
/// whatever consumes tokens.
pub fn mint_token_at(ca_dir: &Path, spec: &TokenSpec, now: SystemTime) -> Result<String, CaError> {
    mint_token_in(ca_dir, ca_dir, spec, now)
}

/// [`mint_token_at`], recording the token in `state_dir/tokens.jsonl` (the
/// state directory of a server run with one) instead of the CA directory's.
pub fn mint_token_in(
    ca_dir: &Path,
    state_dir: &Path,
    spec: &TokenSpec,
    now: SystemTime,
) -> Result<String, CaError> {
    if spec.ttl.is_zero() || spec.ttl > MAX_TTL {
        return Err(CaError::InvalidTokenTtl { ttl: spec.ttl });
    }
    let td = crate::store::trust_domain_of(ca_dir)?;
    if spec.pattern.trust_domain() != td {
        let (IdPattern::Exact(id) | IdPattern::Prefix(id)) = &spec.pattern;
        return Err(CaError::WrongTrustDomain {
            id: id.clone(),
            expected: td,
        });
    }
    let mut secret = [0u8; 32];
    random_fill(&mut secret, "generate a bootstrap token")?;
    let token = format!("{TOKEN_PREFIX}{}", hex(&secret));
    let created_at = unix(now);
    let ttl_secs = spec.ttl.as_secs() + u64::from(spec.ttl.subsec_nanos() > 0);
    let record = TokenRecord {
        hash: hex(&sha256(token.as_bytes())),
        pattern: spec.pattern.to_string(),
        created_at,
        expires_at: created_at.saturating_add(ttl_secs),
        single_use: spec.single_use,
    };
    let line = serde_json::to_string(&record).map_err(|e| CaError::CorruptLog {
        path: state_dir.join(TOKENS_FILE),
        line: 0,
        reason: format!("cannot encode a token record: {e}"),
    })?;
    append_jsonl(&state_dir.join(TOKENS_FILE), &line)?;
    Ok(token)
}

/// Why a bootstrap token is refused.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// No token with this hash was ever minted here.
    #[error("unknown bootstrap token")]
    Unknown,
    /// The token's lifetime is over.
    #[error("the bootstrap token expired at {}", humantime::format_rfc3339_seconds(*.expired_at))]
    Expired {
        /// When it expired.
        expired_at: SystemTime,
    },
    /// A single-use token that was already spent.
    #[error("the bootstrap token was single-use and has already been used")]
    AlreadyUsed,
    /// The token does not cover the requested ID.
    #[error("the bootstrap token allows {pattern}, not {requested}")]
    NotAllowed {
        /// What the token allows.
        pattern: String,
        /// What was asked for.
        requested: SpiffeId,
    },
    /// The token file cannot be read or written.
    #[error(transparent)]
    Store(#[from] CaError),
}

/// The clock a [`TokenStore`] judges expiry by.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// The server's view of `tokens.jsonl`: checks presented tokens and records
/// single-use ones as spent.
pub struct TokenStore {
    path: PathBuf,
    clock: Clock,
    /// Serialises check-and-consume within this process.
    lock: Mutex<()>,
}

impl fmt::Debug for TokenStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl TokenStore {
    /// The token store of the CA in `ca_dir`, judging expiry by the system
    /// clock. The file need not exist yet; if it does, it must be readable.
    pub fn open(ca_dir: &Path) -> Result<TokenStore, CaError> {
        Self::with_clock(ca_dir, Arc::new(SystemTime::now))
    }

    /// [`TokenStore::open`] with another clock (tests).
    pub fn with_clock(ca_dir: &Path, clock: Clock) -> Result<TokenStore, CaError> {
        let store = TokenStore {
            path: ca_dir.join(TOKENS_FILE),
            clock,
            lock: Mutex::new(()),
        };
        store.load()?;
        Ok(store)
    }

    /// The token file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Checks that `token` exists, has not expired, is not a spent
    /// single-use token, and covers `id`; then, if it is single-use, records
    /// it as spent (durably) before returning.
    pub fn check_and_consume(&self, token: &str, id: &SpiffeId) -> Result<(), TokenError> {
        let _guard = match self.lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let presented = sha256(token.as_bytes());
        let (records, used) = self.load()?;

        // Compare against every record in constant time, without stopping at
        // the first match, so timing says nothing about the stored hashes.
        let mut found: Option<&TokenRecord> = None;
        for (record, hash) in &records {
            let equal = aws_lc_rs::constant_time::verify_slices_are_equal(hash, &presented).is_ok();
            if equal && found.is_none() {
                found = Some(record);
            }
        }
        let record = found.ok_or(TokenError::Unknown)?;
        let now = unix((self.clock)());
        if now >= record.expires_at {
            return Err(TokenError::Expired {
                expired_at: UNIX_EPOCH + Duration::from_secs(record.expires_at),
            });
        }
        if record.single_use && used.contains(&record.hash) {
            return Err(TokenError::AlreadyUsed);
        }
        let pattern = IdPattern::parse(&record.pattern).map_err(CaError::from)?;
        if !pattern.matches(id) {
            return Err(TokenError::NotAllowed {
                pattern: record.pattern.clone(),
                requested: id.clone(),
            });
        }
        if record.single_use {
            let line = serde_json::to_string(&UsedRecord {
                used: record.hash.clone(),
                at: now,
            })
            .map_err(|e| CaError::CorruptLog {
                path: self.path.clone(),
                line: 0,
                reason: format!("cannot encode a used-token record: {e}"),
            })?;
            append_jsonl(&self.path, &line)?;
        }
        Ok(())
    }

    /// Reads the file: every token record with its decoded hash, and the
    /// hashes of spent tokens.
    #[allow(clippy::type_complexity)]
    fn load(&self) -> Result<(Vec<(TokenRecord, [u8; 32])>, Vec<String>), CaError> {
        let mut records = Vec::new();
        let mut used = Vec::new();
        for (n, text) in read_jsonl(&self.path)? {
            let corrupt = |reason: String| CaError::CorruptLog {
                path: self.path.clone(),
                line: n,
                reason,
            };
            let line: Line = serde_json::from_str(&text).map_err(|e| {
                corrupt(format!(
                    "expected a token record {{\"hash\", \"pattern\", \"created_at\", \
                     \"expires_at\", \"single_use\"}} or {{\"used\", \"at\"}}: {e}"
                ))
            })?;
            match line {
                Line::Token(record) => {
                    let hash = unhex32(&record.hash).ok_or_else(|| {
                        corrupt("\"hash\" must be 64 lowercase hex digits".to_owned())
                    })?;
                    IdPattern::parse(&record.pattern)
                        .map_err(|e| corrupt(format!("\"pattern\": {e}")))?;
                    records.push((record, hash));
                }
                Line::Used(u) => used.push(u.used),
            }
        }
        Ok((records, used))
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn unhex32(s: &str) -> Option<[u8; 32]> {
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; 32];
    for (o, pair) in out.iter_mut().zip(bytes.chunks_exact(2)) {
        *o = (digit(pair[0])? << 4) | digit(pair[1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests;
