//! The demo's tracing backend: an OTLP/HTTP receiver (usher-otlp-sink's:
//! protobuf on `POST /v1/traces`, what an OpenTelemetry Collector accepts
//! on 4318) that keeps the spans it gets, and a waterfall to show one trace.

use std::net::SocketAddr;

use usher_otlp_sink::{ReceivedSpan, Receiver, KIND_CLIENT, KIND_SERVER};

/// One received span, reduced to what the waterfall shows.
#[derive(Clone, Debug)]
pub(super) struct DemoSpan {
    pub service: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub kind: &'static str,
    pub name: String,
    pub path: String,
    pub status: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

pub(super) struct Collector {
    pub addr: SocketAddr,
    receiver: Receiver,
}

impl Collector {
    pub(super) async fn start() -> std::io::Result<Collector> {
        let receiver = Receiver::http().await?;
        Ok(Collector {
            addr: receiver.addr(),
            receiver,
        })
    }

    pub(super) fn spans(&self) -> Vec<DemoSpan> {
        self.receiver.spans().into_iter().map(demo_span).collect()
    }
}

fn demo_span(span: ReceivedSpan) -> DemoSpan {
    let attr = |key: &str| span.attr(key).unwrap_or_default().to_string();
    DemoSpan {
        kind: match span.kind {
            KIND_SERVER => "SERVER",
            KIND_CLIENT => "CLIENT",
            _ => "INTERNAL",
        },
        path: attr("url.path"),
        status: attr("http.response.status_code"),
        service: span.service,
        trace_id: span.trace_id,
        span_id: span.span_id,
        parent_span_id: span.parent_span_id,
        name: span.name,
        start_ns: span.start_ns,
        end_ns: span.end_ns,
    }
}

/// The spans of one trace as lines of a waterfall: parents before their
/// children, each bar placed on the trace's time line.
pub(super) fn waterfall(spans: &[DemoSpan]) -> Vec<String> {
    const WIDTH: u64 = 40;
    let Some(start) = spans.iter().map(|s| s.start_ns).min() else {
        return Vec::new();
    };
    let end = spans.iter().map(|s| s.end_ns).max().unwrap_or(start);
    let total = end.saturating_sub(start).max(1);
    let mut ordered: Vec<(usize, &DemoSpan)> = Vec::new();
    let ids: Vec<&str> = spans.iter().map(|s| s.span_id.as_str()).collect();
    let mut stack: Vec<(usize, &DemoSpan)> = spans
        .iter()
        .filter(|s| !ids.contains(&s.parent_span_id.as_str()))
        .map(|s| (0, s))
        .collect();
    while let Some((depth, span)) = stack.pop() {
        ordered.push((depth, span));
        for child in spans.iter().filter(|c| c.parent_span_id == span.span_id) {
            stack.push((depth + 1, child));
        }
    }
    ordered
        .into_iter()
        .map(|(depth, s)| {
            let from = (s.start_ns.saturating_sub(start)) * WIDTH / total;
            let to = ((s.end_ns.saturating_sub(start)) * WIDTH)
                .div_ceil(total)
                .max(from + 1);
            let bar: String = (0..WIDTH)
                .map(|i| if i >= from && i < to { '#' } else { '.' })
                .collect();
            let label = format!(
                "{}{} {} {} {}",
                "  ".repeat(depth),
                s.service,
                s.kind,
                s.name,
                s.path
            );
            let ms = s.end_ns.saturating_sub(s.start_ns) as f64 / 1e6;
            format!("{label:<40} {} |{bar}| {ms:>7.3} ms", s.status)
        })
        .collect()
}
