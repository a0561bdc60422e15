//! The inbound side's builder: mTLS from peers → the inbound stack → the
//! local app. Builds what every inbound connection shares (the app
//! upstream, the sanitiser, the optional guards) from `inbound:`,
//! `authentication:`, `rate_limit:` and the policy, and starts the accept
//! loop.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use usher_ca::SpiffeId;

use super::{Http, StartError};
use crate::authn::Authn;
use crate::authz::AuthzShared;
use crate::config::Config;
use crate::config::InboundModes;
use crate::forward::Upstream;
use crate::inbound::{
    self, serve_inbound, AppConnector, AppTargets, Inbound, InboundListener, RateLimits, ToApp,
};
use crate::serve::{accept_loop, ConnectionLimit, Lifecycle};
use crate::telemetry::{Direction, Telemetry};

pub(super) struct InboundBuilder<'a> {
    pub(crate) config: &'a Config,
    pub(crate) own_id: &'a SpiffeId,
    pub(crate) server_tls: Arc<ServerConfig>,
    pub(crate) authz: Option<Arc<AuthzShared>>,
    pub(crate) telemetry: &'a Arc<Telemetry>,
    pub(crate) http: &'a Http,
    pub(crate) life: &'a Lifecycle,
}

impl InboundBuilder<'_> {
    pub(crate) fn spawn(self, listener: TcpListener) -> Result<(), StartError> {
        let config = self.config;
        let listen = Arc::new(InboundListener {
            acceptor: TlsAcceptor::from(self.server_tls.clone()),
            own_id: self.own_id.clone(),
            inbound: self.shared()?,
            builder: self.http.builder.clone(),
            shutdown: self.life.shutdown.clone(),
            idle_timeout: self.http.limits.idle_timeout,
            trust_domains: if config.inbound.trust_domains.is_empty() {
                vec![self.own_id.trust_domain().to_owned()]
            } else {
                config.inbound.trust_domains.clone()
            },
            modes: InboundModes {
                default: config.inbound.mode,
                ports: config.inbound.port_modes.clone(),
            },
            detect_timeout: config.inbound.detect_timeout,
            app_port: config.inbound.app.port(),
        });
        let refused = self.telemetry.metrics.clone();
        tokio::spawn(accept_loop(
            listener,
            "inbound",
            self.life.clone(),
            ConnectionLimit::new(
                self.http.limits.max_connections,
                Arc::new(move || refused.connection_refused(Direction::Inbound)),
            ),
            move |tcp, remote| serve_inbound(tcp, remote, listen.clone()),
        ));
        Ok(())
    }

    /// What every inbound connection's stack is built from; the guards'
    /// background tasks (key set refresh, bucket eviction) start here.
    fn shared(&self) -> Result<Inbound, StartError> {
        let config = self.config;
        let metrics = &self.telemetry.metrics;
        let shutdown = &self.life.shutdown;
        // The path to one app address: its own connector and pool.
        let tasks = self.life.tasks.clone();
        let pool_metrics = metrics.clone();
        let inbound = config.inbound.clone();
        let make: Arc<dyn Fn(SocketAddr) -> ToApp + Send + Sync> = Arc::new(move |addr| {
            let app = AppConnector::new(addr, inbound.app_connect_timeout);
            ToApp::new(
                addr,
                Upstream::new(
                    app.clone(),
                    app,
                    tasks.clone(),
                    pool_metrics.clone(),
                    Direction::Inbound,
                ),
                inbound.request_timeout,
                inbound.app_protocol,
            )
        });
        let authn = match &config.authentication {
            Some(a) => {
                let authn = Authn::load(a)?;
                authn.spawn_refresh(shutdown.clone())?;
                Some(authn)
            }
            None => None,
        };
        let rate_limits = config.rate_limit.as_ref().map(|rl| {
            let limits = RateLimits::new(rl);
            limits.spawn_eviction(rl.evict_after, shutdown.clone());
            limits
        });
        Ok(Inbound {
            apps: AppTargets::new(config.inbound.app, make(config.inbound.app), make),
            sanitizer: Arc::new(inbound::sanitizer(config)),
            max_request_body: config.inbound.max_request_body,
            rate_limits,
            authn,
            authz: self.authz.clone(),
            telemetry: self.telemetry.clone(),
        })
    }
}
