//! The export side of [`super::ExportQueue`]: one OS thread, `usher-otlp`,
//! with its own current-thread Tokio runtime, that builds the OTLP
//! exporter and sends batches with it.
//!
//! Why a thread of its own: the exporter's work (converting `SpanData` to
//! protobuf, encoding, HTTP/2 through tonic or HTTP/1.1 through hyper, and
//! the background tasks both clients spawn on whatever runtime builds or
//! drives them) ran on the sidecar's request workers, and a batch of 512
//! spans held a worker long enough to lift p99 at 2,000 req/s from 0.8 to
//! 2.6 ms (BENCHMARKS.md). Here no export work can run on a request worker:
//! the request path only does the queue's `try_send`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry_otlp::{
    Protocol, WithExportConfig as _, WithHttpConfig as _, WithTonicConfig as _,
};
use opentelemetry_sdk::trace::{SpanData, SpanExporter as _};
use opentelemetry_sdk::Resource;
use tokio::sync::{mpsc, oneshot, Notify};

use super::super::metrics::{Metrics, SpanDrop};
use super::ExporterError;
use crate::config::{OtlpConfig, OtlpProtocol};

/// The export thread's name (in `top -H`, `perf`, panics).
const THREAD_NAME: &str = "usher-otlp";

/// Asks the export thread to send what is queued and stop; it answers on
/// the enclosed sender when done.
pub(super) type FlushRequest = oneshot::Sender<oneshot::Sender<()>>;

/// What the export thread needs.
pub(super) struct Job {
    pub(super) otlp: OtlpConfig,
    pub(super) resource: Resource,
    pub(super) rx: mpsc::Receiver<SpanData>,
    /// Notified by the queue when it holds a full batch.
    pub(super) full: Arc<Notify>,
    pub(super) metrics: Arc<Metrics>,
}

/// Starts the export thread and waits until it has built the exporter, so
/// that a bad exporter config fails start-up with the exporter's own
/// message. Blocks the caller for that long (a thread start and the
/// exporter's construction; nothing connects yet).
pub(super) fn spawn(job: Job) -> Result<FlushRequest, ExporterError> {
    let (ready_tx, ready_rx) = std::sync::mpsc::sync_channel(1);
    let (flush_tx, flush_rx) = oneshot::channel();
    std::thread::Builder::new()
        .name(THREAD_NAME.into())
        .spawn(move || run(job, flush_rx, ready_tx))
        .map_err(|e| ExporterError(format!("cannot start the export thread: {e}")))?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(flush_tx),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(ExporterError(
            "the export thread ended while starting".into(),
        )),
    }
}

/// The thread's body: a runtime, the exporter built on it (tonic's channel
/// spawns its worker task there), then the export loop until shutdown.
fn run(
    job: Job,
    flush: oneshot::Receiver<oneshot::Sender<()>>,
    ready: std::sync::mpsc::SyncSender<Result<(), ExporterError>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(ExporterError(format!(
                "cannot start the export runtime: {e}"
            ))));
            return;
        }
    };
    runtime.block_on(async move {
        let exporter = match build_exporter(&job.otlp, &job.resource) {
            Ok(exporter) => exporter,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let batching = Batching {
            size: job.otlp.batch_size,
            delay: job.otlp.batch_delay,
            // A hung collector must not stall the queue for longer than
            // the exporter's own deadline (plus its retries).
            deadline: job.otlp.timeout + Duration::from_secs(5),
        };
        export_loop(exporter, job.rx, job.full, flush, batching, job.metrics).await;
    });
}

/// The OTLP exporter of the config; must run inside the export runtime.
fn build_exporter(
    otlp: &OtlpConfig,
    resource: &Resource,
) -> Result<opentelemetry_otlp::SpanExporter, ExporterError> {
    let retry = opentelemetry_otlp::RetryPolicy::recommended();
    let mut exporter = match otlp.protocol {
        OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(otlp.endpoint.clone())
            .with_timeout(otlp.timeout)
            .with_retry_policy(retry)
            .build(),
        OtlpProtocol::Http => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(otlp.traces_url())
            .with_timeout(otlp.timeout)
            .with_retry_policy(retry)
            .build(),
    }
    .map_err(|e| ExporterError(e.to_string()))?;
    exporter.set_resource(resource);
    Ok(exporter)
}

struct Batching {
    size: usize,
    delay: Duration,
    deadline: Duration,
}

async fn export_loop(
    exporter: opentelemetry_otlp::SpanExporter,
    mut rx: mpsc::Receiver<SpanData>,
    full: Arc<Notify>,
    mut flush: oneshot::Receiver<oneshot::Sender<()>>,
    batching: Batching,
    metrics: Arc<Metrics>,
) {
    let mut batch = Vec::with_capacity(batching.size);
    let mut failing = false;
    let mut tick = tokio::time::interval(batching.delay);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Sleep until a batch is due (timer) or full (notified), or the
        // sidecar stops (flush what is left, then end). A dropped flush
        // sender (the tracer gone without a shutdown) also ends the loop.
        let stopping = tokio::select! {
            _ = tick.tick() => None,
            _ = full.notified() => None,
            done = &mut flush => Some(done),
        };
        if stopping.is_some() {
            rx.close();
        }
        // Send everything queued, a batch at a time.
        loop {
            while batch.len() < batching.size {
                match rx.try_recv() {
                    Ok(span) => batch.push(span),
                    Err(_) => break,
                }
            }
            if batch.is_empty() {
                break;
            }
            let partial = batch.len() < batching.size;
            send(&exporter, &mut batch, &batching, &metrics, &mut failing).await;
            if partial {
                break;
            }
        }
        if let Some(done) = stopping {
            if let Ok(done) = done {
                let _ = done.send(());
            }
            return;
        }
    }
}

/// Exports one batch. Failures are logged when they start and when they
/// end, not per batch (a dead collector would flood the log).
async fn send(
    exporter: &opentelemetry_otlp::SpanExporter,
    batch: &mut Vec<SpanData>,
    batching: &Batching,
    metrics: &Metrics,
    failing: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    let n = batch.len() as u64;
    let spans = std::mem::replace(batch, Vec::with_capacity(batching.size));
    let error = match tokio::time::timeout(batching.deadline, exporter.export(spans)).await {
        Ok(Ok(())) => {
            metrics.spans_exported(n);
            if std::mem::take(failing) {
                tracing::info!("span export recovered");
            }
            return;
        }
        Ok(Err(e)) => e.to_string(),
        Err(_) => "timed out".to_string(),
    };
    metrics.spans_dropped(SpanDrop::ExportFailed, n);
    if !std::mem::replace(failing, true) {
        tracing::warn!(spans = n, error = %error, "span export failed; spans are dropped (counted in usher_trace_spans_dropped_total) until the collector answers");
    } else {
        tracing::debug!(spans = n, error = %error, "span export failed");
    }
}

#[cfg(test)]
mod tests;
