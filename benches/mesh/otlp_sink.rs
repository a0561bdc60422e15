//! A minimal OTLP/gRPC trace receiver for the mesh benchmark: accepts
//! export requests (decoded with opentelemetry-proto's tonic service, so
//! the sidecars do all the work a real collector would make them do),
//! counts spans and forgets them.
//!
//! Prints `otlp-sink listening on ADDR` once bound, and `spans N` when it
//! gets SIGTERM or stdin closes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};

struct Sink(Arc<AtomicU64>);

#[tonic::codegen::async_trait]
impl TraceService for Sink {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let n: usize = request
            .get_ref()
            .resource_spans
            .iter()
            .flat_map(|r| &r.scope_spans)
            .map(|s| s.spans.len())
            .sum();
        self.0.fetch_add(n as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("otlp-sink listening on {}", listener.local_addr()?);
    let count = Arc::new(AtomicU64::new(0));
    let service = TraceServiceServer::new(Sink(count.clone()));
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let svc = TowerToHyperService::new(service.clone());
                tokio::spawn(async move {
                    let _ = auto::Builder::new(TokioExecutor::new())
                        .http2_only()
                        .serve_connection(TokioIo::new(tcp), svc)
                        .await;
                });
            }
        }
    }
    println!("spans {}", count.load(Ordering::Relaxed));
    Ok(())
}
