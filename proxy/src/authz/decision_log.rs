//! The policy decision log: one JSON line per decision (target
//! `usher::audit`, message `decision`), every denial at warn and allows
//! at info, sampled by `decision_log.allow_sample_rate`.
//!
//! When usher's own JSON log is on stdout (`usher run`), the line is
//! formatted here, in exactly the shape `tracing`'s JSON formatter gives
//! the event (same keys in the same order, same timestamp format; a test
//! holds the two side by side), and handed to the buffered writer of the
//! access log, so an allowed request makes no write syscall. A denial
//! wakes that writer at once, so it reaches stdout promptly; if stdout
//! blocks, a line that cannot be buffered is counted in
//! `usher_decision_log_dropped_total`. Decision lines are audit records:
//! like the `usher::audit` events, no log filter applies to them.
//!
//! Anywhere else (a sidecar inside another program, the demo, the tests'
//! in-process sidecars) they stay `tracing` events for whatever subscriber
//! is installed, as before.

use std::io::Write as _;
use std::time::SystemTime;

use usher_ca::SpiffeId;
use usher_policy::Decision;

use crate::config::PolicyMode;
use crate::telemetry::line_writer::{self, Kind};
use crate::telemetry::logs;

/// What one decision line says.
pub(super) struct Record<'a> {
    pub(super) principal: &'a str,
    pub(super) method: &'a str,
    pub(super) path: &'a str,
    pub(super) mode: &'static str,
    pub(super) revision: &'a str,
    pub(super) decision: &'a Decision,
}

/// Logs the decision (allows sampled by `allow_sample_rate`).
pub(super) fn log_decision(
    peer: Option<&SpiffeId>,
    parts: &http::request::Parts,
    decision: &Decision,
    revision: &str,
    mode: PolicyMode,
    allow_sample_rate: f64,
) {
    if decision.allowed
        && !(allow_sample_rate >= 1.0
            || (allow_sample_rate > 0.0 && fastrand::f64() < allow_sample_rate))
    {
        return;
    }
    let record = Record {
        principal: peer.map_or("", SpiffeId::as_str),
        method: parts.method.as_str(),
        path: parts.uri.path_and_query().map_or("/", |p| p.as_str()),
        mode: match mode {
            PolicyMode::Enforce => "enforce",
            PolicyMode::Audit => "audit",
        },
        revision,
        decision,
    };
    if logs::json_on_stdout() {
        let kind = if decision.allowed {
            Kind::DecisionAllow
        } else {
            Kind::DecisionDeny
        };
        line_writer::append(kind, |buf| write_line(buf, &record, SystemTime::now()));
    } else {
        emit_event(&record);
    }
}

/// The decision as a `tracing` event.
pub(super) fn emit_event(r: &Record<'_>) {
    if r.decision.allowed {
        tracing::info!(
            target: "usher::audit",
            principal = r.principal,
            method = r.method,
            path = r.path,
            decision = "allow",
            mode = r.mode,
            revision = r.revision,
            eval_us = r.decision.eval_micros,
            "decision"
        );
    } else {
        tracing::warn!(
            target: "usher::audit",
            principal = r.principal,
            method = r.method,
            path = r.path,
            decision = "deny",
            mode = r.mode,
            reason = r.decision.reason.as_deref().unwrap_or("policy denied"),
            status = r.decision.http_status,
            revision = r.revision,
            eval_us = r.decision.eval_micros,
            "decision"
        );
    }
}

/// The decision as the JSON line `tracing`'s formatter would write for
/// [`emit_event`]: `timestamp`, `level`, `message`, the fields in the
/// event's order, `target`. Strings go through serde_json's escaping (the
/// path and the policy's reason come from outside).
pub(super) fn write_line(buf: &mut Vec<u8>, r: &Record<'_>, now: SystemTime) {
    let level = if r.decision.allowed { "INFO" } else { "WARN" };
    let _ = write!(
        buf,
        "{{\"timestamp\":\"{}\",\"level\":\"{level}\",\"message\":\"decision\"",
        humantime::format_rfc3339_micros(now)
    );
    string(buf, "principal", r.principal);
    string(buf, "method", r.method);
    string(buf, "path", r.path);
    if r.decision.allowed {
        string(buf, "decision", "allow");
        string(buf, "mode", r.mode);
    } else {
        string(buf, "decision", "deny");
        string(buf, "mode", r.mode);
        let reason = r.decision.reason.as_deref().unwrap_or("policy denied");
        string(buf, "reason", reason);
        let _ = write!(buf, ",\"status\":{}", r.decision.http_status);
    }
    string(buf, "revision", r.revision);
    let _ = writeln!(
        buf,
        ",\"eval_us\":{},\"target\":\"usher::audit\"}}",
        r.decision.eval_micros
    );
}

fn string(buf: &mut Vec<u8>, key: &str, value: &str) {
    let _ = write!(buf, ",\"{key}\":");
    let _ = serde_json::to_writer(&mut *buf, value);
}

#[cfg(test)]
mod tests;
