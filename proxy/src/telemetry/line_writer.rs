//! The buffered stdout writer of the lines usher writes per request (the
//! access log, the policy decision log), so that the request path makes no
//! write syscall: writing each line through `tracing`'s JSON formatter,
//! with its own syscall, cost ~8 µs of CPU per line in the mesh benchmark
//! (BENCHMARKS.md).
//!
//! Each worker thread formats into its own buffer (its own mutex, only
//! ever contended by the flusher); a flusher thread writes all buffers to
//! stdout every [`FLUSH_EVERY`]. Like Envoy's access log flush interval,
//! this delays lines slightly; an [urgent](Kind::is_urgent) line (a policy
//! denial, an audit record an operator waits for) wakes the flusher at
//! once instead. A buffer that the flusher cannot drain (stdout blocked)
//! stops growing at [`MAX_BUFFER`]: further lines are dropped and counted
//! per [`Kind`]. Denials have [`AUDIT_RESERVE`] more room, so a flood of
//! access log lines cannot crowd them out.

use std::cell::RefCell;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

pub(crate) const FLUSH_EVERY: Duration = Duration::from_millis(50);
const MAX_BUFFER: usize = 8 * 1024 * 1024;
const AUDIT_RESERVE: usize = 1024 * 1024;

/// What a line is: its drop counter, and how much room it gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Access,
    DecisionAllow,
    DecisionDeny,
}

impl Kind {
    const ALL: usize = 3;

    /// Written as soon as the flusher can, not at the next interval.
    fn is_urgent(self) -> bool {
        self == Kind::DecisionDeny
    }

    /// The buffer size beyond which a line of this kind is dropped.
    fn limit(self) -> usize {
        match self {
            Kind::DecisionDeny => MAX_BUFFER + AUDIT_RESERVE,
            Kind::Access | Kind::DecisionAllow => MAX_BUFFER,
        }
    }
}

type Buffer = Arc<Mutex<Vec<u8>>>;

struct Registry {
    buffers: Mutex<Vec<Buffer>>,
    dropped: [AtomicU64; Kind::ALL],
    /// Set by an urgent line until the flusher picks it up, so a burst of
    /// denials wakes the flusher once, not once each.
    urgent: AtomicBool,
    flusher: Option<std::thread::Thread>,
}

static REGISTRY: OnceLock<Registry> = OnceLock::new();

thread_local! {
    static MINE: RefCell<Option<Buffer>> = const { RefCell::new(None) };
}

fn registry() -> &'static Registry {
    REGISTRY.get_or_init(|| {
        let flusher = std::thread::Builder::new()
            .name("usher-log-writer".into())
            .spawn(|| loop {
                // Woken early by an urgent line (or spuriously: then it
                // merely flushes early).
                std::thread::park_timeout(FLUSH_EVERY);
                if let Some(reg) = REGISTRY.get() {
                    reg.urgent.store(false, Ordering::Relaxed);
                }
                flush();
            })
            .ok()
            .map(|handle| handle.thread().clone());
        Registry {
            buffers: Mutex::new(Vec::new()),
            dropped: Default::default(),
            urgent: AtomicBool::new(false),
            flusher,
        }
    })
}

/// Appends one line (built by `write`) to this thread's buffer; false when
/// it was dropped (and counted) because stdout does not keep up.
pub(crate) fn append(kind: Kind, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    let reg = registry();
    let appended = MINE.with(|mine| {
        let mut mine = mine.borrow_mut();
        let buffer = mine.get_or_insert_with(|| {
            let b: Buffer = Arc::new(Mutex::new(Vec::with_capacity(16 * 1024)));
            if let Ok(mut all) = reg.buffers.lock() {
                all.push(b.clone());
            }
            b
        });
        let Ok(mut buf) = buffer.lock() else {
            return false;
        };
        try_write(&mut buf, kind, write)
    });
    if !appended {
        reg.dropped[kind as usize].fetch_add(1, Ordering::Relaxed);
    } else if kind.is_urgent() && !reg.urgent.swap(true, Ordering::Relaxed) {
        if let Some(flusher) = &reg.flusher {
            flusher.unpark();
        }
    }
    appended
}

/// Appends the line unless the buffer is past the kind's limit.
fn try_write(buf: &mut Vec<u8>, kind: Kind, write: impl FnOnce(&mut Vec<u8>)) -> bool {
    if buf.len() > kind.limit() {
        return false;
    }
    write(buf);
    true
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

/// Lines of `kind` dropped because stdout did not keep up.
pub(crate) fn dropped(kind: Kind) -> u64 {
    REGISTRY
        .get()
        .map_or(0, |r| r.dropped[kind as usize].load(Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn denials_keep_room_when_other_lines_fill_the_buffer() {
        let line = |b: &mut Vec<u8>| b.extend_from_slice(b"{}\n");
        let mut buf = vec![b' '; MAX_BUFFER + 1];
        assert!(!try_write(&mut buf, Kind::Access, line));
        assert!(!try_write(&mut buf, Kind::DecisionAllow, line));
        assert!(try_write(&mut buf, Kind::DecisionDeny, line));
        assert!(buf.ends_with(b"{}\n"));
        buf.resize(MAX_BUFFER + AUDIT_RESERVE + 1, b' ');
        assert!(!try_write(&mut buf, Kind::DecisionDeny, line));
        let mut empty = Vec::new();
        assert!(try_write(&mut empty, Kind::Access, line));
        assert!(Kind::DecisionDeny.is_urgent());
        assert!(!Kind::DecisionAllow.is_urgent() && !Kind::Access.is_urgent());
    }
}
