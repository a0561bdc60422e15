//! Span export off the request workers: a sidecar pair on a one-thread
//! runtime exports to a real OTLP receiver (gRPC and HTTP/protobuf) that
//! serves from a runtime of its own, while the test blocks the sidecars'
//! only thread; and the last spans still go out at shutdown.

use std::time::{Duration, Instant};

use crate::support::backend::Backend;
use crate::support::client::{self, read};
use crate::support::{assert_status, Mesh};

const PROTOCOLS: [&str; 2] = ["grpc", "http"];

/// A receiver serving from its own thread, so the test can block its own
/// runtime and still have spans received.
struct Sink {
    runtime: Option<tokio::runtime::Runtime>,
    rx: usher_otlp_sink::Receiver,
}

impl Sink {
    fn start(protocol: &'static str) -> Sink {
        // Built on a thread of its own: a runtime cannot be entered from
        // inside the test's.
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .enable_all()
                .build()
                .unwrap();
            let rx = match protocol {
                "grpc" => runtime.block_on(usher_otlp_sink::Receiver::grpc()),
                _ => runtime.block_on(usher_otlp_sink::Receiver::http()),
            }
            .unwrap();
            Sink {
                runtime: Some(runtime),
                rx,
            }
        })
        .join()
        .unwrap()
    }

    fn count(&self, trace_id: &str) -> usize {
        self.rx
            .spans()
            .iter()
            .filter(|s| s.trace_id == trace_id)
            .count()
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        // Dropped inside the test's runtime: a plain drop would block.
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

fn config(sink: &Sink, protocol: &str, batching: &str) -> String {
    format!(
        "telemetry:\n  otlp: {{ endpoint: \"{}\", protocol: {protocol}, timeout: 2s, {batching} }}\n",
        sink.rx.endpoint()
    )
}

/// Sends `GET /headers` through a; returns the trace id the app saw.
async fn traced_request(mesh: &Mesh) -> String {
    let mut sender = client::h1::<http_body_util::Empty<bytes::Bytes>>(mesh.a.addrs.outbound).await;
    let req = http::Request::get("/headers")
        .header("host", "b")
        .body(http_body_util::Empty::new())
        .unwrap();
    let body = assert_status(
        read(sender.send_request(req).await.unwrap()).await,
        200,
        "GET /headers",
    );
    let seen: std::collections::HashMap<String, String> = serde_json::from_str(&body).unwrap();
    seen["traceparent"].split('-').nth(1).unwrap().to_owned()
}

/// Blocks this thread (and with it every task of a one-thread runtime)
/// until `check` holds or 10 s pass.
fn block_until(mut check: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + Duration::from_secs(10);
    while Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    check()
}

#[tokio::test(flavor = "current_thread")]
async fn spans_are_exported_while_the_request_runtime_is_blocked() {
    for protocol in PROTOCOLS {
        let sink = Sink::start(protocol);
        let app = Backend::start().await;
        // Batches go out on the 1 s timer only (they never fill): with the
        // export on the sidecars' runtime, its timer would have to fire
        // in the few milliseconds between the spans' end and the block
        // below for the spans to go out (checked: this test fails when
        // the export loop is spawned on the caller's runtime, as before).
        let otlp = config(&sink, protocol, "batch_delay: 1s");
        let mesh = Mesh::start_full(app.addr, &[], &otlp, &otlp).await;
        let trace = traced_request(&mesh).await;
        // Both spans ended before the last byte reached the client (the
        // server side ends a span when it writes the body's end).
        for (sidecar, direction) in [(&mesh.a, "outbound"), (&mesh.b, "inbound")] {
            let metrics = sidecar.telemetry.metrics.encode();
            assert!(
                metrics.contains(&format!("usher_requests_total{{direction=\"{direction}\"")),
                "{direction} request recorded: {metrics}"
            );
        }
        // From here on nothing on the sidecars' runtime (this thread) runs.
        assert!(
            block_until(|| sink.count(&trace) == 2),
            "{protocol}: both spans exported while the request runtime was blocked; got {:#?}",
            sink.rx.spans()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_spans_are_sent_at_shutdown() {
    for protocol in PROTOCOLS {
        let sink = Sink::start(protocol);
        let app = Backend::start().await;
        // No batch is due for a minute: only the shutdown flush sends.
        let otlp = config(&sink, protocol, "batch_delay: 60s");
        let mesh = Mesh::start_full(app.addr, &[], &otlp, &otlp).await;
        let trace = traced_request(&mesh).await;
        assert_eq!(sink.count(&trace), 0, "{protocol}: nothing sent before");
        let Mesh { pki: _pki, a, b } = mesh;
        a.shutdown(Duration::from_secs(5)).await;
        b.shutdown(Duration::from_secs(5)).await;
        assert_eq!(sink.count(&trace), 2, "{protocol}: sent at shutdown");
    }
}
