//! The decision line usher formats itself against what `tracing`'s JSON
//! formatter (usher's real subscriber) writes for the same event.

use std::io;
use std::sync::{Arc, Mutex};

use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::EnvFilter;

use super::*;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl io::Write for Buf {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

/// What usher's JSON subscriber writes for [`emit_event`].
fn through_tracing(r: &Record<'_>) -> String {
    let buf = Buf::default();
    let (subscriber, _handle) = logs::json_subscriber(EnvFilter::new("off"), buf.clone());
    tracing::subscriber::with_default(subscriber, || emit_event(r));
    let bytes = buf.0.lock().unwrap().clone();
    String::from_utf8(bytes).unwrap()
}

fn ours(r: &Record<'_>) -> String {
    let mut buf = Vec::new();
    write_line(&mut buf, r, SystemTime::now());
    String::from_utf8(buf).unwrap()
}

/// The line without its timestamp's value (the rest must be identical).
fn split_timestamp(line: &str) -> (&str, &str) {
    let rest = line
        .strip_prefix("{\"timestamp\":\"")
        .unwrap_or_else(|| panic!("starts with the timestamp: {line}"));
    rest.split_once('"').unwrap()
}

fn record<'a>(decision: &'a Decision, path: &'a str) -> Record<'a> {
    Record {
        principal: "spiffe://mesh.test/ns/shop/sa/orders",
        method: "POST",
        path,
        mode: "enforce",
        revision: "3f2a9c",
        decision,
    }
}

#[test]
fn allow_and_deny_lines_are_byte_for_byte_what_tracing_writes() {
    let mut allow = Decision::deny("");
    allow.allowed = true;
    allow.http_status = 200;
    allow.reason = None;
    allow.eval_micros = 17;
    let mut deny = Decision::deny("not \"yours\"\nsecond line \u{7} é");
    deny.http_status = 451;
    deny.eval_micros = 4;
    let mut deny_no_reason = Decision::deny("");
    deny_no_reason.reason = None;
    let hostile_path = "/a\"b\\c?q={\"injected\":1}&x=%00";
    for (decision, path) in [
        (&allow, "/orders/1?x=1"),
        (&deny, hostile_path),
        (&deny_no_reason, "/"),
    ] {
        let r = record(decision, path);
        let (expected, ours) = (through_tracing(&r), ours(&r));
        assert_eq!(expected.lines().count(), 1, "{expected}");
        let (t_expected, rest_expected) = split_timestamp(&expected);
        let (t_ours, rest_ours) = split_timestamp(&ours);
        assert_eq!(rest_ours, rest_expected, "same line as tracing writes");
        // Same timestamp format: RFC 3339, UTC, microseconds.
        assert_eq!(t_ours.len(), t_expected.len(), "{t_ours} / {t_expected}");
        assert_eq!(&t_ours[10..11], "T");
        assert!(t_ours.ends_with('Z') && t_expected.ends_with('Z'));
        assert_eq!(t_ours.rsplit_once('.').unwrap().1.len(), "123456Z".len());

        let v: serde_json::Value = serde_json::from_str(&ours).unwrap();
        assert_eq!(v["target"], "usher::audit");
        assert_eq!(v["message"], "decision");
        assert_eq!(v["path"], path);
    }
    let v: serde_json::Value = serde_json::from_str(&ours(&record(&deny, "/x"))).unwrap();
    assert_eq!(v["level"], "WARN");
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["reason"], "not \"yours\"\nsecond line \u{7} é");
    assert_eq!(v["status"], 451);
    assert_eq!(v["eval_us"], 4);
    let v: serde_json::Value = serde_json::from_str(&ours(&record(&allow, "/x"))).unwrap();
    assert_eq!(v["level"], "INFO");
    assert_eq!(v["decision"], "allow");
    assert_eq!(v["eval_us"], 17);
    assert!(
        v.get("reason").is_none() && v.get("status").is_none(),
        "{v}"
    );
}
