//! The outbound side's builder: plain HTTP from the app → route → mTLS to
//! the peer, from `outbound:`.

use std::sync::Arc;

use hyper_util::client::legacy::connect::HttpConnector;
use tokio::net::TcpListener;

use super::Http;
use crate::config::Config;
use crate::forward::Upstream;
use crate::identity::Alpn;
use crate::outbound::{
    serve_outbound, Outbound, OutboundListener, PeerConnector, RouteLayer, RouteTable, ToPeer,
};
use crate::sanitize::Sanitizer;
use crate::serve::{accept_loop, ConnectionLimit, Lifecycle};
use crate::telemetry::{Direction, Telemetry};

pub(super) struct OutboundBuilder<'a> {
    pub(crate) config: &'a Config,
    pub(crate) routes: Arc<RouteTable>,
    pub(crate) telemetry: &'a Arc<Telemetry>,
    pub(crate) http: &'a Http,
    pub(crate) life: &'a Lifecycle,
}

impl OutboundBuilder<'_> {
    /// Serves `listener` (and `listener_ipv6`, the same way) until shutdown.
    pub(crate) fn spawn(self, listener: TcpListener, listener_ipv6: Option<TcpListener>) {
        let outbound = &self.config.outbound;
        let listen = Arc::new(OutboundListener {
            outbound: self.shared(),
            builder: self.http.builder.clone(),
            shutdown: self.life.shutdown.clone(),
            idle_timeout: self.http.limits.idle_timeout,
            unknown: outbound.unknown.clone(),
            detect_timeout: outbound.detect_timeout,
            connect_timeout: outbound.connect_timeout,
        });
        let refused = self.telemetry.metrics.clone();
        // One limit for both families: it bounds the app's connections.
        let limit = ConnectionLimit::new(
            self.http.limits.max_connections,
            Arc::new(move || refused.connection_refused(Direction::Outbound)),
        );
        for listener in std::iter::once(listener).chain(listener_ipv6) {
            let listen = listen.clone();
            tokio::spawn(accept_loop(
                listener,
                "outbound",
                self.life.clone(),
                limit.clone(),
                move |tcp, remote| serve_outbound(tcp, remote, listen.clone()),
            ));
        }
    }

    /// What every outbound connection's stack is built from.
    fn shared(&self) -> Outbound {
        let outbound = &self.config.outbound;
        let metrics = &self.telemetry.metrics;
        let timeout = outbound.connect_timeout;
        // The app may ask for the configured upgrades; it can never set
        // x-forwarded-client-cert (only the receiving sidecar does).
        let sanitizer = Sanitizer::new(
            outbound.upgrades.clone(),
            None,
            vec![crate::headers::XFCC.clone()],
            Vec::new(),
        );
        let connector =
            |alpn| PeerConnector::new(self.routes.clone(), alpn, timeout, metrics.clone());
        let mut plain = HttpConnector::new();
        plain.set_connect_timeout(Some(timeout));
        plain.set_nodelay(true);
        Outbound::new(
            RouteLayer::new(
                self.routes.clone(),
                Arc::new(sanitizer),
                Arc::new(outbound.unknown.clone()),
                metrics.clone(),
            ),
            ToPeer::new(
                {
                    let peers = Upstream::new(
                        connector(Alpn::Http1),
                        connector(Alpn::H2),
                        self.life.tasks.clone(),
                        metrics.clone(),
                        Direction::Outbound,
                    );
                    if outbound.multiplex {
                        peers.with_mux(connector(Alpn::Mux))
                    } else {
                        peers
                    }
                },
                Upstream::new(
                    plain.clone(),
                    plain,
                    self.life.tasks.clone(),
                    metrics.clone(),
                    Direction::Outbound,
                ),
            ),
            self.telemetry.clone(),
        )
    }
}
