//! The inbound listener: each accepted connection completes the mTLS
//! handshake, is refused unless its peer has a SPIFFE ID from an accepted
//! trust domain, and is then served HTTP through its own [`super::stack`].
//! Where `inbound.mode` is permissive, a plain-text HTTP caller is served
//! too, with no identity; a redirected connection reaches the app on the
//! port the caller dialled.

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

use bytes::Bytes;

use super::mux::RestoreHttp1;
use super::{Inbound, InboundConn};
use crate::config::{Config, InboundMode, InboundModes};
use crate::connect::tls_failure_reason;
use crate::identity;
use crate::sanitize::{Sanitizer, FORWARDED};
use crate::serve::{serve_http, StackService};
use crate::telemetry::Direction;
use crate::transparent::detect::{detect, Protocol};
use crate::transparent::orig_dst::{canonical, original_dst as orig_dst};
use crate::transparent::prefixed::PrefixedIo;

/// How long a peer may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What every connection accepted on the inbound listener shares.
pub(crate) struct InboundListener {
    pub(crate) acceptor: TlsAcceptor,
    pub(crate) own_id: SpiffeId,
    pub(crate) inbound: Inbound,
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) idle_timeout: Duration,
    /// Peers from other trust domains are refused after the handshake.
    pub(crate) trust_domains: Vec<String>,
    /// `inbound.mode` and `inbound.port_modes`.
    pub(crate) modes: InboundModes,
    /// Permissive mode: how long the first bytes may take.
    pub(crate) detect_timeout: Duration,
    /// `inbound.app`'s port: the mode of connections made straight to the
    /// listener.
    pub(crate) app_port: u16,
}

/// An accepted connection, with the bytes protocol detection read.
type Io = PrefixedIo<TcpStream>;

/// The inbound listener's request rules: its upgrades, path normalisation,
/// and the headers only usher may set (identity, claims, and forwarded
/// headers unless trusted).
pub(crate) fn sanitizer(config: &Config) -> Sanitizer {
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

/// Serves one accepted TCP connection. Its original destination (when
/// `usher init-net` redirected it) picks the app port and the mode; in
/// permissive mode its first bytes say whether it is TLS or plain HTTP.
/// Then the TLS handshake (bounded), the peer's identity and trust domain
/// — or, plain text where permitted, no identity — and HTTP through the
/// connection's stack until it ends.
pub(crate) async fn serve_inbound(
    mut tcp: TcpStream,
    remote: SocketAddr,
    listener: Arc<InboundListener>,
) {
    let metrics = &listener.inbound.telemetry.metrics;
    let orig = orig_dst(&tcp);
    // A redirected connection is for the port the caller dialled, on the
    // address the redirect delivered it to — this pod's own. Never the IP
    // the packet named: a neighbour on the link can address a packet to
    // any IP (the metadata service, 127.0.0.1) through this pod, and usher
    // would dial it.
    let dest = orig.and_then(|o| {
        let local = canonical(tcp.local_addr().ok()?);
        Some(SocketAddr::new(local.ip(), o.port()))
    });
    // The mode of the port actually served: a connection straight to the
    // listener (not redirected) is for `inbound.app`'s port.
    let mode = listener
        .modes
        .for_port(Some(dest.map_or(listener.app_port, |d| d.port())));
    let (protocol, prefix) = if listener.modes.any_permissive() {
        match detect(&mut tcp, listener.detect_timeout).await {
            Ok(found) => found,
            Err(_) => return,
        }
    } else {
        // Strict everywhere: whatever comes must be a TLS handshake.
        (Protocol::Tls, Bytes::new())
    };
    let io = PrefixedIo::new(prefix, tcp);
    match (protocol, mode) {
        (Protocol::Tls, _) => serve_tls(io, remote, &listener, dest).await,
        (Protocol::Http1 | Protocol::H2c, InboundMode::Permissive) => {
            serve_plaintext(io, remote, &listener, dest).await
        }
        (Protocol::Http1 | Protocol::H2c, InboundMode::Strict) => {
            metrics.handshake_failed(Direction::Inbound, "plaintext");
            tracing::warn!(target: "usher::audit", direction = "inbound", %remote, ?orig, reason = "plaintext", "plain-text connection refused (inbound.mode: strict)");
        }
        (Protocol::Opaque, _) => {
            metrics.handshake_failed(Direction::Inbound, "not_tls");
            tracing::warn!(target: "usher::audit", direction = "inbound", %remote, ?orig, reason = "not_tls", "connection refused: neither TLS nor HTTP");
        }
    }
}

/// A mesh peer: mTLS, its SPIFFE ID from an accepted trust domain.
async fn serve_tls(
    io: Io,
    remote: SocketAddr,
    listener: &Arc<InboundListener>,
    dest: Option<SocketAddr>,
) {
    let acceptor = &listener.acceptor;
    let metrics = &listener.inbound.telemetry.metrics;
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
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
    // A caller sidecar's multiplexed hop: its streams are HTTP/1 requests.
    let mux = tls.get_ref().1.alpn_protocol() == Some(identity::MUX_ALPN);
    tracing::debug!(direction = "inbound", %remote, %peer, mux, "peer connected");
    serve_conn(tls, Some(peer), remote, listener, dest, mux).await;
}

/// A plain-text caller where `inbound.mode` permits one: no identity.
async fn serve_plaintext(
    io: Io,
    remote: SocketAddr,
    listener: &Arc<InboundListener>,
    dest: Option<SocketAddr>,
) {
    tracing::debug!(direction = "inbound", %remote, "plain-text caller connected (permissive)");
    serve_conn(io, None, remote, listener, dest, false).await;
}

/// HTTP on an accepted connection through its own stack; `mux`: the
/// connection is a caller sidecar's multiplexed hop.
async fn serve_conn<I>(
    io: I,
    peer: Option<SpiffeId>,
    remote: SocketAddr,
    listener: &Arc<InboundListener>,
    dest: Option<SocketAddr>,
    mux: bool,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // Only an accepted caller makes a new app path (and its pool).
    let Some(to_app) = listener.inbound.apps.for_connection(dest) else {
        listener
            .inbound
            .telemetry
            .metrics
            .connection_refused(Direction::Inbound);
        tracing::warn!(target: "usher::audit", direction = "inbound", %remote, ?dest, "connection refused: too many app ports");
        return;
    };
    let _open = listener
        .inbound
        .telemetry
        .metrics
        .connection_opened(Direction::Inbound);
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
    let stack = RestoreHttp1 {
        restore: mux,
        inner: StackService::new(super::stack(conn, &listener.inbound, to_app)),
    };
    serve_http(
        &listener.builder,
        io,
        stack,
        &close,
        Some(listener.idle_timeout),
    )
    .await;
}
