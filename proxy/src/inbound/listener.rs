//! The inbound listener: each accepted connection completes the mTLS
//! handshake, is refused unless its peer has a SPIFFE ID from an accepted
//! trust domain, and is then served HTTP through its own [`super::stack`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::HeaderName;
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use usher_ca::SpiffeId;

use super::{Inbound, InboundConn};
use crate::config::Config;
use crate::connect::tls_failure_reason;
use crate::identity;
use crate::sanitize::{Sanitizer, FORWARDED};
use crate::serve::{serve_http, StackService};
use crate::telemetry::Direction;

/// How long a peer may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection accepted on the inbound listener shares.
pub struct InboundListener {
    pub acceptor: TlsAcceptor,
    pub own_id: SpiffeId,
    pub inbound: Inbound,
    pub builder: Arc<auto::Builder<TokioExecutor>>,
    pub shutdown: CancellationToken,
    pub idle_timeout: Duration,
    /// Peers from other trust domains are refused after the handshake.
    pub trust_domains: Vec<String>,
}

/// The inbound listener's request rules: its upgrades, path normalisation,
/// and the headers only usher may set (identity, claims, and forwarded
/// headers unless trusted).
pub fn sanitizer(config: &Config) -> Sanitizer {
    let inbound = &config.inbound;
    let mut protected = vec![crate::headers::XFCC.clone()];
    if !inbound.trust_forwarded_headers {
        protected.extend(FORWARDED.iter().map(|n| HeaderName::from_static(n)));
    }
    if let Some(authn) = &config.authentication {
        for rule in &authn.jwt {
            protected.extend(
                rule.claims_to_headers
                    .values()
                    .filter_map(|h| HeaderName::from_bytes(h.as_bytes()).ok()),
            );
        }
    }
    let prefixes = if inbound.trust_forwarded_headers {
        Vec::new()
    } else {
        vec![crate::sanitize::FORWARDED_PREFIX]
    };
    Sanitizer::new(
        inbound.upgrades.clone(),
        Some(inbound.path_normalization.options()),
        protected,
        prefixes,
    )
}

/// Serves one accepted TCP connection: the TLS handshake (bounded), the
/// peer's identity and trust domain, then HTTP through the connection's
/// stack until it ends.
pub async fn serve_inbound(tcp: TcpStream, remote: SocketAddr, listener: Arc<InboundListener>) {
    let acceptor = &listener.acceptor;
    let metrics = &listener.inbound.telemetry.metrics;
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            let reason = tls_failure_reason(&e);
            metrics.handshake_failed(Direction::Inbound, reason);
            tracing::warn!(target: "usher::audit", direction = "inbound", %remote, reason, error = %e, "TLS handshake refused");
            return;
        }
        Err(_) => {
            metrics.handshake_failed(Direction::Inbound, "timeout");
            tracing::warn!(target: "usher::audit", direction = "inbound", %remote, reason = "timeout", "TLS handshake refused");
            return;
        }
    };
    // The verifier already required a SPIFFE ID; this reads the same leaf.
    let Some(peer) = identity::peer_identity(tls.get_ref().1) else {
        metrics.handshake_failed(Direction::Inbound, "no_spiffe_id");
        tracing::warn!(target: "usher::audit", direction = "inbound", %remote, reason = "no_spiffe_id", "TLS handshake refused");
        return;
    };
    if !listener
        .trust_domains
        .iter()
        .any(|td| td.eq_ignore_ascii_case(peer.trust_domain()))
    {
        metrics.handshake_failed(Direction::Inbound, "trust_domain");
        tracing::warn!(target: "usher::audit", direction = "inbound", %remote, %peer, reason = "trust_domain", "TLS handshake refused: the peer's trust domain is not accepted");
        return;
    }
    tracing::debug!(direction = "inbound", %remote, %peer, "peer connected");
    let _open = metrics.connection_opened(Direction::Inbound);
    // Per connection: the listener's shutdown, or a flood of cancelled
    // requests (ResetGuard), finishes it.
    let close = listener.shutdown.child_token();
    let conn = Arc::new(InboundConn::new(
        &listener.own_id,
        peer,
        remote,
        &listener.inbound.telemetry,
        close.clone(),
    ));
    // Built once for the connection and called in place per request.
    let stack = StackService::new(super::stack(conn, &listener.inbound));
    serve_http(
        &listener.builder,
        tls,
        stack,
        &close,
        Some(listener.idle_timeout),
    )
    .await;
}
