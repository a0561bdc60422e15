//! Failed enrolments per client address.
//!
//! A bootstrap token is a bearer secret, so `POST /v1/enrol` invites
//! guessing. Each client address gets a fixed window (starting at its first
//! failure) in which it may fail `limit` times; after that, until the window
//! ends, its enrolments are answered 429 with `Retry-After` before the token
//! is even looked at. Only failures count: an address that enrols
//! successfully is never slowed down.
//!
//! The log is aggregated the same way, so that a flood cannot fill the
//! disk: the first failure of a window is logged in full, reaching the limit
//! is logged once, and the rest are counted and summed up in one line when
//! the window ends (or at shutdown).
//!
//! IPv6 clients are grouped by /64 (one host usually owns a whole /64), and
//! the table is bounded: beyond [`MAX_SOURCES`] addresses with an open
//! window, new ones share a single window.

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Most client addresses (or /64s) tracked at once.
pub(crate) const MAX_SOURCES: usize = 65_536;

/// Default number of failed enrolments an address may make per window.
pub const DEFAULT_ENROL_FAILURE_LIMIT: u32 = 10;
/// Default length of the window.
pub const DEFAULT_ENROL_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Whom a window belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Source {
    /// An IPv4 address, or an IPv6 /64.
    Addr(IpAddr),
    /// Addresses that arrived while the table was full.
    Overflow,
}

impl Source {
    fn of(ip: IpAddr) -> Source {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                Source::Addr(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Source::Addr(v4),
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Addr(IpAddr::V6(v6)) => write!(f, "{v6}/64"),
            Source::Addr(v4) => write!(f, "{v4}"),
            Source::Overflow => f.write_str("other addresses (too many to track one by one)"),
        }
    }
}

struct Window {
    start: Instant,
    /// Failures in this window.
    failures: u32,
    /// Enrolments answered 429 in this window.
    limited: u64,
}

/// What a window that ended had to say, when more happened than was logged.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Summary {
    pub(crate) source: Source,
    pub(crate) failures: u32,
    /// Failures not logged one by one (all but the first).
    pub(crate) not_logged: u32,
    /// Enrolments answered 429.
    pub(crate) rate_limited: u64,
}

impl Summary {
    pub(crate) fn log(&self, window: Duration) {
        tracing::warn!(
            target: "usher::audit",
            peer = %self.source,
            failures = self.failures,
            not_logged = self.not_logged,
            rate_limited = self.rate_limited,
            window_secs = window.as_secs(),
            "CA enrolment failures from this address in the last window: only the first was logged"
        );
    }
}

/// What one more failure means.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Failure {
    pub(crate) source: Source,
    /// The first of its window: log it in full.
    pub(crate) first: bool,
    /// This failure reached the limit: the address is answered 429 for
    /// this long.
    pub(crate) limited_for: Option<Duration>,
    /// The address's previous window, which had ended.
    pub(crate) ended: Option<Summary>,
}

/// The per-address windows of one CA server.
pub(crate) struct EnrolLimits {
    limit: u32,
    window: Duration,
    table: Mutex<HashMap<Source, Window>>,
}

impl EnrolLimits {
    /// `limit` failures per `window` (both more than zero).
    pub(crate) fn new(limit: u32, window: Duration) -> EnrolLimits {
        EnrolLimits {
            limit: limit.max(1),
            window,
            table: Mutex::new(HashMap::new()),
        }
    }

    pub(crate) fn window(&self) -> Duration {
        self.window
    }

    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Source, Window>> {
        self.table.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether `ip` may try to enrol now; `Err`: how long until it may.
    pub(crate) fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut table = self.table();
        let source = match table.contains_key(&Source::of(ip)) {
            true => Source::of(ip),
            false if table.len() >= MAX_SOURCES => Source::Overflow,
            false => return Ok(()),
        };
        let Some(w) = table.get_mut(&source) else {
            return Ok(());
        };
        let end = w.start + self.window;
        if now < end && w.failures >= self.limit {
            w.limited += 1;
            return Err(end - now);
        }
        Ok(())
    }

    /// Counts a failed enrolment from `ip`.
    pub(crate) fn failed(&self, ip: IpAddr, now: Instant) -> Failure {
        let mut table = self.table();
        let mut source = Source::of(ip);
        let mut ended = None;
        if let Some(w) = table.get(&source) {
            if now >= w.start + self.window {
                ended = summary(source, w);
                table.remove(&source);
            }
        } else if table.len() >= MAX_SOURCES {
            // Make room from windows that ended (their summaries are the
            // sweeper's; they are logged here instead).
            for s in ended_windows(&mut table, now, self.window) {
                s.log(self.window);
            }
            if table.len() >= MAX_SOURCES {
                source = Source::Overflow;
            }
        }
        let w = table.entry(source).or_insert(Window {
            start: now,
            failures: 0,
            limited: 0,
        });
        w.failures = w.failures.saturating_add(1);
        let end = w.start + self.window;
        Failure {
            source,
            first: w.failures == 1,
            limited_for: (w.failures == self.limit).then(|| end.saturating_duration_since(now)),
            ended,
        }
    }

    /// Drops the windows that ended by `now`; returns the summaries of
    /// those with more to say than their first line.
    pub(crate) fn sweep(&self, now: Instant) -> Vec<Summary> {
        ended_windows(&mut self.table(), now, self.window)
    }

    /// Every open window's summary (at shutdown).
    pub(crate) fn drain(&self) -> Vec<Summary> {
        self.table()
            .drain()
            .filter_map(|(source, w)| summary(source, &w))
            .collect()
    }
}

fn summary(source: Source, w: &Window) -> Option<Summary> {
    (w.failures > 1 || w.limited > 0).then_some(Summary {
        source,
        failures: w.failures,
        not_logged: w.failures.saturating_sub(1),
        rate_limited: w.limited,
    })
}

fn ended_windows(
    table: &mut HashMap<Source, Window>,
    now: Instant,
    window: Duration,
) -> Vec<Summary> {
    let mut summaries = Vec::new();
    table.retain(|source, w| {
        if now < w.start + window {
            return true;
        }
        summaries.extend(summary(*source, w));
        false
    });
    summaries
}

/// `Retry-After` for `wait`: whole seconds, rounded up, at least one.
pub(crate) fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests;
