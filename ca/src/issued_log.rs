//! The issued log: every certificate the CA server signs, one JSON line each
//! in `CA_DIR/issued.jsonl` (serial, SPIFFE ID, validity, when and how).
//!
//! It is the audit trail of the CA, and it keeps serial numbers unique: the
//! server loads every serial at start, and a freshly drawn serial that is
//! already in the log is drawn again, so a serial is never reused, even
//! across restarts.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::authority::SignedLeaf;
use crate::encode::{hex, random_serial};
use crate::error::CaError;
use crate::files::{append_jsonl, read_jsonl};
use crate::spiffe::SpiffeId;

/// File name of the issued log inside the CA directory.
pub const ISSUED_LOG_FILE: &str = "issued.jsonl";

/// How many times a colliding serial is redrawn before giving up (a
/// collision of 127 random bits means the random generator is broken).
const SERIAL_ATTEMPTS: usize = 8;

/// Why a certificate was issued.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IssuedHow {
    /// First enrolment, authorised by a bootstrap token.
    Token,
    /// Renewal, authorised by the workload's current certificate.
    Renewal,
    /// First enrolment, authorised by a Kubernetes service account token.
    #[serde(rename = "service-account")]
    ServiceAccount,
    /// The CA server's own TLS certificate.
    Server,
}

impl IssuedHow {
    /// The name used in the log: `token`, `renewal`, `service-account` or
    /// `server`.
    pub fn as_str(self) -> &'static str {
        match self {
            IssuedHow::Token => "token",
            IssuedHow::Renewal => "renewal",
            IssuedHow::ServiceAccount => "service-account",
            IssuedHow::Server => "server",
        }
    }
}

/// One line of the issued log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssuedEntry {
    /// The serial number, lowercase hex.
    pub serial: String,
    /// The certificate's SPIFFE ID.
    pub spiffe_id: String,
    /// Start of validity, RFC 3339.
    pub not_before: String,
    /// End of validity, RFC 3339.
    pub not_after: String,
    /// When it was signed, RFC 3339.
    pub issued_at: String,
    /// Why.
    pub how: IssuedHow,
}

/// The issued log of one CA directory, with the set of serials used so far.
#[derive(Debug)]
pub struct IssuedLog {
    path: PathBuf,
    serials: HashSet<String>,
}

impl IssuedLog {
    /// Loads `ca_dir/issued.jsonl` (a missing file is an empty log). A line
    /// that is not an entry is an error naming the line: the log is what
    /// keeps serials unique, so it is not skipped.
    pub fn open(ca_dir: &Path) -> Result<IssuedLog, CaError> {
        let path = ca_dir.join(ISSUED_LOG_FILE);
        let serials = read_entries_at(&path)?
            .into_iter()
            .map(|e| e.serial)
            .collect();
        Ok(IssuedLog { path, serials })
    }

    /// The log file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many serials the log holds.
    pub fn len(&self) -> usize {
        self.serials.len()
    }

    /// True if nothing was issued yet.
    pub fn is_empty(&self) -> bool {
        self.serials.is_empty()
    }

    /// True if `serial_hex` was already issued.
    pub fn contains(&self, serial_hex: &str) -> bool {
        self.serials.contains(serial_hex)
    }

    /// A random positive serial that is not in the log.
    pub fn fresh_serial(&self) -> Result<[u8; 16], CaError> {
        self.fresh_serial_with(|| random_serial("generate a certificate serial number"))
    }

    fn fresh_serial_with(
        &self,
        mut draw: impl FnMut() -> Result<[u8; 16], CaError>,
    ) -> Result<[u8; 16], CaError> {
        for _ in 0..SERIAL_ATTEMPTS {
            let serial = draw()?;
            if !self.contains(&hex(&serial)) {
                return Ok(serial);
            }
        }
        Err(CaError::Random {
            action: "draw a certificate serial number not used before",
        })
    }

    /// Appends an entry for `leaf` (durably) and remembers its serial.
    pub fn record(
        &mut self,
        leaf: &SignedLeaf,
        spiffe_id: &SpiffeId,
        how: IssuedHow,
    ) -> Result<IssuedEntry, CaError> {
        let entry = IssuedEntry {
            serial: leaf.serial_hex.clone(),
            spiffe_id: spiffe_id.to_string(),
            not_before: rfc3339(leaf.not_before),
            not_after: rfc3339(leaf.not_after),
            issued_at: rfc3339(SystemTime::now()),
            how,
        };
        let line = serde_json::to_string(&entry).map_err(|e| CaError::CorruptLog {
            path: self.path.clone(),
            line: 0,
            reason: format!("cannot encode an issued-log entry: {e}"),
        })?;
        append_jsonl(&self.path, &line)?;
        self.serials.insert(entry.serial.clone());
        Ok(entry)
    }
}

/// Every entry of `ca_dir/issued.jsonl`, oldest first.
pub fn read_issued_log(ca_dir: &Path) -> Result<Vec<IssuedEntry>, CaError> {
    read_entries_at(&ca_dir.join(ISSUED_LOG_FILE))
}

fn read_entries_at(path: &Path) -> Result<Vec<IssuedEntry>, CaError> {
    read_jsonl(path)?
        .into_iter()
        .map(|(n, text)| {
            let corrupt = |reason: String| CaError::CorruptLog {
                path: path.to_owned(),
                line: n,
                reason,
            };
            let entry: IssuedEntry = serde_json::from_str(&text).map_err(|e| {
                corrupt(format!(
                    "expected an entry {{\"serial\", \"spiffe_id\", \"not_before\", \
                     \"not_after\", \"issued_at\", \"how\"}}: {e}"
                ))
            })?;
            if entry.serial.is_empty()
                || !entry
                    .serial
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
            {
                return Err(corrupt(
                    "\"serial\" must be lowercase hex digits".to_owned(),
                ));
            }
            Ok(entry)
        })
        .collect()
}

/// RFC 3339, whole seconds, UTC.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

#[cfg(test)]
mod tests;
