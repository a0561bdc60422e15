//! One accepted, verified mTLS connection: the target every inbound layer
//! is built for, answering the [`crate::target`] accessors.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::header::HeaderValue;
use tokio_util::sync::CancellationToken;
use usher_ca::SpiffeId;

use crate::observe::ObserveTarget;
use crate::serve::ResetGuard;
use crate::target::{CancelGuard, ClientCertHeader, PeerIdentity, RemoteAddr, TelemetryPeer};
use crate::telemetry::metrics::PLAINTEXT_PEER;
use crate::telemetry::{Direction, Peer, Telemetry};

#[derive(Debug)]
pub struct InboundConn {
    /// The verified caller; `None` for a plain-text caller
    /// (`inbound.mode: permissive`).
    peer: Option<SpiffeId>,
    remote: SocketAddr,
    /// `By=<own>;URI=<peer>`, built once per connection (mTLS only).
    xfcc: Option<HeaderValue>,
    /// The caller as telemetry labels it (its metric label is resolved
    /// once per connection).
    peer_info: Peer,
    /// Closes this connection on a flood of cancelled requests.
    resets: Arc<ResetGuard>,
}

impl InboundConn {
    /// A mesh peer's connection (mTLS), or with `peer` `None` a plain-text
    /// caller's.
    pub fn new(
        own: &SpiffeId,
        peer: Option<SpiffeId>,
        remote: SocketAddr,
        telemetry: &Telemetry,
        close: CancellationToken,
    ) -> InboundConn {
        let (xfcc, peer_info) = match &peer {
            Some(peer) => {
                let value = format!("By={own};URI={peer}");
                // SPIFFE IDs are restricted to visible ASCII, so this cannot
                // fail; fall back to an empty value rather than panic.
                let xfcc = HeaderValue::from_maybe_shared(Bytes::from(value))
                    .unwrap_or_else(|_| HeaderValue::from_static(""));
                let info = Peer {
                    id: Arc::from(peer.as_str()),
                    label: telemetry.metrics.peer_label(peer.as_str()),
                    addr: Some(remote),
                };
                (Some(xfcc), info)
            }
            // No identity: one label for all (and one rate-limit key).
            None => (
                None,
                Peer {
                    id: Arc::from(""),
                    label: Arc::from(PLAINTEXT_PEER),
                    addr: Some(remote),
                },
            ),
        };
        InboundConn {
            peer,
            remote,
            xfcc,
            peer_info,
            resets: Arc::new(ResetGuard::new(close)),
        }
    }
}

impl PeerIdentity for InboundConn {
    fn peer_id(&self) -> Option<&SpiffeId> {
        self.peer.as_ref()
    }
}

impl RemoteAddr for InboundConn {
    fn remote_addr(&self) -> SocketAddr {
        self.remote
    }
}

impl TelemetryPeer for InboundConn {
    fn telemetry_peer(&self) -> &Peer {
        &self.peer_info
    }
}

impl ClientCertHeader for InboundConn {
    fn xfcc(&self) -> Option<&HeaderValue> {
        self.xfcc.as_ref()
    }
}

impl CancelGuard for InboundConn {
    fn reset_guard(&self) -> Option<&Arc<ResetGuard>> {
        Some(&self.resets)
    }
}

impl ObserveTarget for InboundConn {
    fn direction(&self) -> Direction {
        Direction::Inbound
    }

    fn app_client(&self) -> Option<SocketAddr> {
        None
    }
}
