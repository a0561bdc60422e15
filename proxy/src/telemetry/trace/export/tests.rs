//! The export thread against the real OTLP receivers of the tests
//! (usher-otlp-sink), over gRPC and HTTP/protobuf. The receiver runs on a
//! runtime of its own; the "request" runtime that makes the spans is not
//! driven once they have ended, so only another thread can export them.

use std::time::{Duration, Instant};

use opentelemetry::trace::{Span as _, Tracer as _};
use usher_otlp_sink::Receiver;

use super::super::Tracing;
use super::THREAD_NAME;
use crate::config::{OtlpConfig, OtlpProtocol};
use crate::telemetry::Metrics;

const PROTOCOLS: [OtlpProtocol; 2] = [OtlpProtocol::Grpc, OtlpProtocol::Http];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A receiver serving from its own threads for as long as the runtime lives.
fn receiver(protocol: OtlpProtocol) -> (tokio::runtime::Runtime, Receiver) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let rx = match protocol {
        OtlpProtocol::Grpc => rt.block_on(Receiver::grpc()),
        OtlpProtocol::Http => rt.block_on(Receiver::http()),
    };
    (rt, rx.unwrap())
}

fn otlp(endpoint: String, protocol: OtlpProtocol, batch_delay: Duration) -> OtlpConfig {
    OtlpConfig {
        endpoint,
        protocol,
        timeout: Duration::from_secs(5),
        queue_size: 64,
        batch_size: 16,
        batch_delay,
    }
}

/// Tracing started on `caller` (as a sidecar starts it on its workers).
fn start(caller: &tokio::runtime::Runtime, otlp: &OtlpConfig) -> Tracing {
    caller.block_on(async {
        Tracing::start(
            otlp,
            1.0,
            "unit",
            "spiffe://td/ns/a/sa/unit",
            Metrics::new(10),
        )
        .unwrap()
    })
}

/// Ends `n` spans on `caller`.
fn end_spans(caller: &tokio::runtime::Runtime, tracing: &Tracing, n: usize) {
    caller.block_on(async {
        for _ in 0..n {
            tracing.tracer.start("GET").end();
        }
    });
}

/// Polls `check` on this thread (blocking it) until true or 10 s pass.
fn wait_blocking(mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

fn thread_names() -> Vec<String> {
    std::fs::read_dir("/proc/self/task")
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .map(|n| n.trim_end().to_owned())
        .collect()
}

#[test]
fn spans_are_exported_while_the_runtime_that_made_them_is_blocked() {
    for protocol in PROTOCOLS {
        let (_sink_rt, rx) = receiver(protocol);
        let caller = runtime();
        let tracing = start(
            &caller,
            &otlp(rx.endpoint(), protocol, Duration::from_millis(20)),
        );
        assert!(thread_names().iter().any(|n| n == THREAD_NAME));
        end_spans(&caller, &tracing, 2);
        // `caller` is never driven again: the export cannot be its task.
        assert!(
            wait_blocking(|| rx.spans().len() == 2),
            "{protocol:?}: spans exported by the export thread, got {:?}",
            rx.spans()
        );
        assert!(rx
            .spans()
            .iter()
            .all(|s| s.service == "unit" && s.name == "GET"));
    }
}

#[test]
fn shutdown_sends_what_is_still_queued() {
    for protocol in PROTOCOLS {
        let (_sink_rt, rx) = receiver(protocol);
        let caller = runtime();
        // No batch would be due for a minute: only the shutdown flush sends.
        let tracing = start(
            &caller,
            &otlp(rx.endpoint(), protocol, Duration::from_secs(60)),
        );
        end_spans(&caller, &tracing, 3);
        let started = Instant::now();
        caller.block_on(tracing.shutdown(Duration::from_secs(5)));
        assert!(started.elapsed() < Duration::from_secs(5), "{protocol:?}");
        assert_eq!(rx.spans().len(), 3, "{protocol:?}: sent at shutdown");
    }
}

#[test]
fn a_config_the_exporter_refuses_still_fails_start() {
    // No runtime here at all: the export thread brings its own.
    let bad = otlp(
        "http://bad host:4317".into(),
        OtlpProtocol::Grpc,
        Duration::from_secs(1),
    );
    let err = Tracing::start(&bad, 1.0, "unit", "spiffe://td/x", Metrics::new(10))
        .err()
        .expect("refused");
    assert!(
        err.to_string()
            .starts_with("telemetry.otlp: cannot set up the exporter: "),
        "{err}"
    );
}
