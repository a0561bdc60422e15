//! What a layer may ask about the connection a request came on: small
//! accessor traits, one per fact, instead of a concrete connection type.
//!
//! A layer names only what it reads (the policy step: the peer's identity
//! and address; the rate limit: the caller's key), so layers do not depend
//! on the listener that built them, and a test can hand a layer a target
//! of its own. The inbound listener's [`InboundConn`] implements them all.
//!
//! [`InboundConn`]: crate::inbound::InboundConn

use std::net::SocketAddr;
use std::sync::Arc;

use http::HeaderValue;
use usher_ca::SpiffeId;

use crate::serve::ResetGuard;
use crate::telemetry::Peer;

/// The verified SPIFFE ID of the peer's certificate; `None` for a
/// plain-text caller (`inbound.mode: permissive`).
pub(crate) trait PeerIdentity {
    fn peer_id(&self) -> Option<&SpiffeId>;
}

/// The network address the connection came from.
pub(crate) trait RemoteAddr {
    fn remote_addr(&self) -> SocketAddr;
}

/// The other end as telemetry names it (ID, metric label, address); its
/// `id` is also the key of per-caller state such as rate-limit buckets.
pub(crate) trait TelemetryPeer {
    fn telemetry_peer(&self) -> &Peer;
}

/// `x-forwarded-client-cert` for requests on this connection, built once;
/// `None` without a client certificate (plain text).
pub(crate) trait ClientCertHeader {
    fn xfcc(&self) -> Option<&HeaderValue>;
}

/// Where a request dropped before its response is reported (the
/// connection's rapid-reset guard), if anywhere.
pub(crate) trait CancelGuard {
    fn reset_guard(&self) -> Option<&Arc<ResetGuard>>;
}
