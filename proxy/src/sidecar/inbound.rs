//! The inbound side's builder: mTLS from peers → the inbound stack → the
//! local app. Builds what every inbound connection shares (the app
//! upstream, the sanitiser, the optional guards) from `inbound:`,
//! `authentication:`, `rate_limit:` and the policy, and starts the accept
//! loop.

use std::sync::Arc;

use rustls::ServerConfig;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use usher_ca::SpiffeId;

use super::{Http, StartError};
use crate::authn::Authn;
use crate::authz::AuthzShared;
use crate::config::Config;
use crate::forward::Upstream;
use crate::inbound::{
    self, serve_inbound, AppConnector, Inbound, InboundListener, RateLimits, ToApp,
};
use crate::serve::{accept_loop, ConnectionLimit, Lifecycle};
use crate::telemetry::{Direction, Telemetry};

pub(super) struct InboundBuilder<'a> {
    pub config: &'a Config,
    pub own_id: &'a SpiffeId,
    pub server_tls: Arc<ServerConfig>,
    pub authz: Option<Arc<AuthzShared>>,
    pub telemetry: &'a Arc<Telemetry>,
    pub http: &'a Http,
    pub life: &'a Lifecycle,
}

impl InboundBuilder<'_> {
    pub fn spawn(self, listener: TcpListener) -> Result<(), StartError> {
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
        let app = AppConnector::new(config.inbound.app, config.inbound.app_connect_timeout);
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
            to_app: ToApp::new(
                config.inbound.app,
                Upstream::new(
                    app.clone(),
                    app,
                    self.life.tasks.clone(),
                    metrics.clone(),
                    Direction::Inbound,
                ),
                config.inbound.request_timeout,
                config.inbound.app_protocol,
            ),
            sanitizer: Arc::new(inbound::sanitizer(config)),
            max_request_body: config.inbound.max_request_body,
            rate_limits,
            authn,
            authz: self.authz.clone(),
            telemetry: self.telemetry.clone(),
        })
    }
}
