//! A minimal OTLP/gRPC trace receiver for the mesh benchmark:
//! usher-otlp-sink's counting receiver, which accepts export requests
//! (decoded with opentelemetry-proto's tonic service, so the sidecars do
//! all the work a real collector would make them do), counts spans and
//! forgets them.
//!
//! Prints `otlp-sink listening on ADDR` once bound, and `spans N` when it
//! gets SIGTERM.

use tokio::signal::unix::{signal, SignalKind};
use usher_otlp_sink::Receiver;

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let mut term = signal(SignalKind::terminate())?;
    let sink = Receiver::grpc_counting().await?;
    println!("otlp-sink listening on {}", sink.addr());
    term.recv().await;
    println!("spans {}", sink.span_count());
    Ok(())
}
