//! The access log writer: one JSON line per request on stdout, in the
//! same shape as usher's other log lines (`timestamp`, `level`, `target`,
//! fields, `message`), but not through the `tracing` formatter, which cost
//! ~8 µs of CPU per line in the mesh benchmark (BENCHMARKS.md).
//!
//! Each worker thread formats into its own buffer (its own mutex, only
//! ever contended by the flusher); a flusher thread writes all buffers to
//! stdout every [`FLUSH_EVERY`], so the request path makes no syscall. Like
//! Envoy's access log flush interval, this delays lines slightly. A buffer
//! that the flusher cannot drain (stdout blocked) stops growing at
//! [`MAX_BUFFER`]: further lines are dropped and counted.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);
const MAX_BUFFER: usize = 8 * 1024 * 1024;

type Buffer = Arc<Mutex<Vec<u8>>>;

struct Registry {
    buffers: Mutex<Vec<Buffer>>,
    dropped: AtomicU64,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

thread_local! {
    static MINE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        std::thread::Builder::new()
            .name("usher-access-log".into())
            .spawn(|| loop {
                std::thread::sleep(FLUSH_EVERY);
                flush();
            })
            .ok();
        Registry {
            buffers: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    })
}

/// Appends one line (built by `write`) to this thread's buffer.
pub(crate) fn append(write: impl FnOnce(&mut Vec<u8>)) {
    let reg = registry();
    MINE.with(|mine| {
        let mut mine = mine.borrow_mut();
        let buffer = mine.get_or_insert_with(|| {
            let b: Buffer = Arc::new(Mutex::new(Vec::with_capacity(16 * 1024)));
            if let Ok(mut all) = reg.buffers.lock() {
                all.push(b.clone());
            }
            b
        });
        let Ok(mut buf) = buffer.lock() else { return };
        if buf.len() > MAX_BUFFER {
            reg.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        write(&mut buf);
    });
}

/// Writes every buffered line to stdout (also called at shutdown).
pub(crate) fn flush() {
    let Some(reg) = REGISTRY.get() else { return };
    let buffers: Vec<Buffer> = match reg.buffers.lock() {
        Ok(all) => all.clone(),
        Err(_) => return,
    };
    let mut out = std::io::stdout().lock();
    for b in buffers {
        let chunk = match b.lock() {
            Ok(mut buf) if !buf.is_empty() => std::mem::take(&mut *buf),
            _ => continue,
        };
        let _ = out.write_all(&chunk);
    }
    let _ = out.flush();
}

/// Lines dropped because stdout did not keep up.
pub(crate) fn dropped() -> u64 {
    REGISTRY
        .get()
        .map_or(0, |r| r.dropped.load(Ordering::Relaxed))
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
