//! Certificate validity times: whole Unix seconds, as a certificate holds
//! them, and their conversions from and to `SystemTime` and
//! `time::OffsetDateTime` (rcgen's), every failure the same
//! [`CaError::InvalidValidity`].

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use time::OffsetDateTime;

use crate::error::CaError;

/// How far in the past `not_before` is set, to tolerate clock skew.
pub const CLOCK_SKEW_SLACK: Duration = Duration::from_secs(60);

/// Whole seconds since the Unix epoch (rounded down).
/// `None` (an overflowed time computation) is out of range too.
pub(crate) fn unix_secs(t: Option<SystemTime>) -> Result<i64, CaError> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| i64::try_from(d.as_secs()).ok())
        .ok_or_else(validity_out_of_range)
}

pub(crate) fn system_time(unix_secs: i64) -> Result<SystemTime, CaError> {
    u64::try_from(unix_secs)
        .ok()
        .and_then(|s| UNIX_EPOCH.checked_add(Duration::from_secs(s)))
        .ok_or_else(validity_out_of_range)
}

pub(crate) fn offset_date_time(unix_secs: i64) -> Result<OffsetDateTime, CaError> {
    OffsetDateTime::from_unix_timestamp(unix_secs).map_err(|_| validity_out_of_range())
}

pub(crate) fn validity_out_of_range() -> CaError {
    CaError::InvalidValidity {
        reason: "notBefore and notAfter must lie between the years 1970 and 9999",
    }
}
