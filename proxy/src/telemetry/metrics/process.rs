//! The standard `process_*` metrics (the names and meanings of the Go and
//! Python Prometheus clients), read from `/proc/self` at scrape time.
//! Linux only: elsewhere the collector is not registered. A file that
//! cannot be read leaves out the metrics that come from it, never the
//! scrape.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Unit;

/// Clock ticks per second in `/proc/<pid>/stat` (`USER_HZ`). Fixed at 100
/// by the kernel ABI on every architecture Rust targets on Linux; the Go
/// client's procfs hard-codes it for the same reason.
const USER_HZ: f64 = 100.0;

/// What one scrape read; `None` for what could not be read.
#[derive(Debug, Default, PartialEq)]
pub(super) struct ProcessStats {
    pub cpu_seconds: Option<f64>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub start_time_seconds: Option<f64>,
}

/// Fields of `/proc/self/stat` after the command name.
#[derive(Debug, PartialEq)]
pub(super) struct Stat {
    pub utime: u64,
    pub stime: u64,
    pub starttime: u64,
    pub vsize: u64,
}

/// Parses `/proc/<pid>/stat`. The command name (field 2) is in parentheses
/// and may itself hold spaces and parentheses: fields are counted from
/// the last `)`.
pub(super) fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    // After ")": state is field 3, so field N is at index N - 3.
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
    Some(Stat {
        utime: field(14)?,
        stime: field(15)?,
        starttime: field(22)?,
        vsize: field(23)?,
    })
}

/// `btime` (boot time, Unix seconds) from `/proc/stat`.
pub(super) fn parse_btime(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("btime "))
        .and_then(|v| v.trim().parse().ok())
}

/// `VmRSS` from `/proc/<pid>/status`, in bytes.
pub(super) fn parse_rss(text: &str) -> Option<u64> {
    let kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kib * 1024)
}

/// The soft limit of "Max open files" in `/proc/<pid>/limits`; `None`
/// when unlimited or unreadable.
pub(super) fn parse_max_fds(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Reads the process's figures from `/proc/self` now.
pub(super) fn read() -> ProcessStats {
    let proc = std::path::Path::new("/proc/self");
    let stat = std::fs::read_to_string(proc.join("stat"))
        .ok()
        .and_then(|t| parse_stat(&t));
    let btime = std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|t| parse_btime(&t));
    ProcessStats {
        cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / USER_HZ),
        resident_bytes: std::fs::read_to_string(proc.join("status"))
            .ok()
            .and_then(|t| parse_rss(&t)),
        virtual_bytes: stat.as_ref().map(|s| s.vsize),
        open_fds: std::fs::read_dir(proc.join("fd"))
            .ok()
            .map(|d| d.count() as u64),
        max_fds: std::fs::read_to_string(proc.join("limits"))
            .ok()
            .and_then(|t| parse_max_fds(&t)),
        start_time_seconds: match (&stat, btime) {
            (Some(s), Some(boot)) => Some(boot as f64 + s.starttime as f64 / USER_HZ),
            _ => None,
        },
    }
}

/// Registered at the root of the registry (no `usher_` prefix), so the
/// names are the ones every dashboard knows.
#[derive(Debug)]
pub(super) struct ProcessCollector;

impl Collector for ProcessCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        encode_stats(&read(), &mut encoder)
    }
}

pub(super) fn encode_stats(
    s: &ProcessStats,
    encoder: &mut DescriptorEncoder,
) -> Result<(), std::fmt::Error> {
    if let Some(v) = s.cpu_seconds {
        let c = ConstCounter::new(v);
        c.encode(encoder.encode_descriptor(
            "process_cpu",
            "Total user and system CPU time spent in seconds.",
            Some(&Unit::Seconds),
            c.metric_type(),
        )?)?;
    }
    let gauges: [(&str, &str, Option<Unit>, Option<u64>); 4] = [
        (
            "process_resident_memory",
            "Resident memory size in bytes.",
            Some(Unit::Bytes),
            s.resident_bytes,
        ),
        (
            "process_virtual_memory",
            "Virtual memory size in bytes.",
            Some(Unit::Bytes),
            s.virtual_bytes,
        ),
        (
            "process_open_fds",
            "Number of open file descriptors.",
            None,
            s.open_fds,
        ),
        (
            "process_max_fds",
            "Maximum number of open file descriptors.",
            None,
            s.max_fds,
        ),
    ];
    for (name, help, unit, value) in &gauges {
        if let Some(v) = value {
            let g = ConstGauge::new(*v);
            g.encode(encoder.encode_descriptor(name, help, unit.as_ref(), g.metric_type())?)?;
        }
    }
    if let Some(v) = s.start_time_seconds {
        let g = ConstGauge::new(v);
        g.encode(encoder.encode_descriptor(
            "process_start_time",
            "Start time of the process since unix epoch in seconds.",
            Some(&Unit::Seconds),
            g.metric_type(),
        )?)?;
    }
    Ok(())
}
