//! The access log: one JSON line per request on stdout, in the same shape
//! as usher's other log lines (`timestamp`, `level`, `target`, fields,
//! `message`), formatted here and written by [`line_writer`], not through
//! the `tracing` formatter (see there why).

use std::io::Write as _;
use std::time::SystemTime;

use super::line_writer::{self, Kind};

/// Appends one line (built by `write`) to this thread's buffer.
pub(crate) fn append(write: impl FnOnce(&mut Vec<u8>)) {
    line_writer::append(Kind::Access, write);
}

/// Lines dropped because stdout did not keep up.
pub(crate) fn dropped() -> u64 {
    line_writer::dropped(Kind::Access)
}

/// Builds one line. Strings go through serde_json's escaping (paths and
/// authorities come from callers).
pub(crate) struct Line<'a>(&'a mut Vec<u8>);

impl<'a> Line<'a> {
    pub(crate) fn start(buf: &'a mut Vec<u8>) -> Line<'a> {
        let _ = write!(
            buf,
            "{{\"timestamp\":\"{}\",\"level\":\"INFO\",\"target\":\"usher::access\"",
            humantime::format_rfc3339_micros(SystemTime::now())
        );
        Line(buf)
    }

    pub(crate) fn str(self, key: &str, value: &str) -> Self {
        let _ = write!(self.0, ",\"{key}\":");
        let _ = serde_json::to_writer(&mut *self.0, value);
        self
    }

    pub(crate) fn num(self, key: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.0, ",\"{key}\":{value}");
        self
    }

    pub(crate) fn end(self) {
        self.0.extend_from_slice(b",\"message\":\"request\"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_json_whatever_the_caller_sent() {
        let mut buf = Vec::new();
        Line::start(&mut buf)
            .str("path", "/a\"b\\c\n{\"injected\":1}\u{7}")
            .num("status", 200)
            .num("duration_ms", format_args!("{:.3}", 1.23456))
            .end();
        assert_eq!(buf.last(), Some(&b'\n'));
        assert_eq!(buf.iter().filter(|b| **b == b'\n').count(), 1, "one line");
        let v: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\n{\"injected\":1}\u{7}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["duration_ms"], 1.235);
        assert_eq!(v["target"], "usher::access");
        assert_eq!(v["level"], "INFO");
        assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    }
}
