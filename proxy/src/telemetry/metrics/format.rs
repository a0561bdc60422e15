//! The exposition formats of `/metrics`, chosen from the scraper's
//! `Accept` header the way Prometheus' client libraries choose
//! (client_golang's `expfmt.NegotiateIncludingOpenMetrics`): the acceptable
//! media range with the highest `q` wins; anything else gets the
//! Prometheus text format 0.0.4, which every scraper reads.

/// A text exposition format.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4: counters under their `_total` names,
    /// no `info` type, no `# UNIT`, no `# EOF`.
    Prometheus,
    /// OpenMetrics 1.0.0 text.
    OpenMetrics,
}

impl Format {
    pub const PROMETHEUS_CONTENT_TYPE: &'static str = "text/plain; version=0.0.4; charset=utf-8";
    pub const OPENMETRICS_CONTENT_TYPE: &'static str =
        "application/openmetrics-text; version=1.0.0; charset=utf-8";

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => Format::PROMETHEUS_CONTENT_TYPE,
            Format::OpenMetrics => Format::OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format for a request with this `Accept` header (absent: 0.0.4).
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else {
            return Format::Prometheus;
        };
        let mut ranges: Vec<(f32, Option<Format>)> = accept
            .split(',')
            .map(|range| {
                let mut parts = range.split(';');
                let media = parts.next().unwrap_or("").trim().to_ascii_lowercase();
                let mut q = 1.0f32;
                let mut version = String::new();
                for param in parts {
                    let Some((k, v)) = param.split_once('=') else {
                        continue;
                    };
                    let v = v.trim().trim_matches('"');
                    match k.trim().to_ascii_lowercase().as_str() {
                        // An unreadable weight counts as 0 (not acceptable).
                        "q" => q = v.parse().unwrap_or(0.0),
                        "version" => version = v.to_owned(),
                        _ => {}
                    }
                }
                let format = match (media.as_str(), version.as_str()) {
                    ("application/openmetrics-text", "" | "1.0.0" | "0.0.1") => {
                        Some(Format::OpenMetrics)
                    }
                    ("text/plain", "" | "0.0.4") => Some(Format::Prometheus),
                    _ => None,
                };
                (q, format)
            })
            .collect();
        // Stable: among equal weights the header's order decides.
        ranges.sort_by(|a, b| b.0.total_cmp(&a.0));
        ranges
            .into_iter()
            .filter(|(q, _)| *q > 0.0)
            .find_map(|(_, f)| f)
            .unwrap_or(Format::Prometheus)
    }
}
