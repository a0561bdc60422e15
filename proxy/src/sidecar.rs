//! Putting a sidecar together from a [`Config`]: load the identity, build
//! the TLS configs and route table, bind the three listeners, serve.
//!
//! `usher run` and `usher demo` both start sidecars through
//! [`Sidecar::start`]; there is no other way in.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::admin::{self, AdminState};
use crate::authn::{Authn, AuthnError};
use crate::authz::{spawn_watcher, AuthzShared, PolicyStore};
use crate::config::Config;
use crate::forward::Upstream;
use crate::identity::{
    self, renew, watch, Alpn, CertStore, Identity, IdentityError, TlsError, TrustStore,
};
use crate::inbound::{
    self, serve_inbound, AppConnector, Inbound, InboundListener, RateLimits, ToApp,
};
use crate::outbound::{
    serve_outbound, Outbound, OutboundListener, PeerConnector, RouteLayer, RouteTable, ToPeer,
};
use crate::sanitize::Sanitizer;
use crate::serve::{
    accept_loop, http_builder, serve_http, ConnectionLimit, Lifecycle, ServerLimits,
};
use crate::telemetry::{Direction, Telemetry};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("identity: {0}")]
    Identity(#[from] IdentityError),
    /// An identity file named by the config (the key that names it).
    #[error("key `{key}`: {source}")]
    IdentityFile {
        key: &'static str,
        source: IdentityError,
    },
    #[error("{0}")]
    Tls(#[from] TlsError),
    #[error("policy: {0}")]
    Policy(#[from] usher_policy::PolicyError),
    #[error("policy: cannot watch the policy files: {0}")]
    Watch(#[from] notify::Error),
    #[error("{0}")]
    Telemetry(#[from] crate::telemetry::trace::ExporterError),
    #[error("{0}")]
    Authn(#[from] AuthnError),
    #[error("cannot listen on {addr} ({key}): {source}")]
    Bind {
        key: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The addresses the listeners actually bound (useful with port 0).
#[derive(Clone, Copy, Debug)]
pub struct BoundAddrs {
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
}

/// A running sidecar.
pub struct Sidecar {
    pub addrs: BoundAddrs,
    /// The policy in force, when one is configured (`reload` on SIGHUP).
    pub policy: Option<Arc<PolicyStore>>,
    pub admin: Arc<AdminState>,
    pub certs: Arc<CertStore>,
    /// The identity in force (renewed or reloaded in place).
    pub identity: Arc<Identity>,
    pub telemetry: Arc<Telemetry>,
    life: Lifecycle,
    admin_life: Lifecycle,
}

/// What happened to in-flight work at shutdown.
#[derive(Debug, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every connection finished within the drain timeout.
    Complete,
    /// Some connections were still open when the timeout ran out.
    TimedOut,
}

impl Sidecar {
    /// Loads the identity and binds every listener before serving anything;
    /// any failure is returned before a single request is accepted.
    pub async fn start(config: &Config) -> Result<Sidecar, StartError> {
        let provider = identity::crypto_provider(&config.tls);
        // File mode: the files are read and checked before anything binds.
        // CA mode: enrolment happens once the admin listener is up.
        let (file_identity, spiffe_id) = match &config.identity.ca {
            Some(ca) => (None, ca.spiffe_id.clone()),
            None => {
                let loaded =
                    identity::load_identity(&config.identity, &provider).map_err(|source| {
                        StartError::IdentityFile {
                            key: crate::check::identity_key(config, &source),
                            source,
                        }
                    })?;
                let id = loaded.spiffe_id.clone();
                (Some(loaded), id)
            }
        };
        let policy = match &config.policy {
            Some(p) => Some(PolicyStore::load(p)?),
            None => None,
        };

        let bind = |key: &'static str, addr: SocketAddr| async move {
            TcpListener::bind(addr)
                .await
                .map_err(|source| StartError::Bind { key, addr, source })
        };
        let inbound_listener = bind("inbound.listen", config.inbound.listen).await?;
        let outbound_listener = bind("outbound.listen", config.outbound.listen).await?;
        let admin_listener = bind("admin.listen", config.admin.listen).await?;
        let local = |l: &TcpListener, key, addr| {
            l.local_addr()
                .map_err(|source| StartError::Bind { key, addr, source })
        };
        let addrs = BoundAddrs {
            inbound: local(&inbound_listener, "inbound.listen", config.inbound.listen)?,
            outbound: local(
                &outbound_listener,
                "outbound.listen",
                config.outbound.listen,
            )?,
            admin: local(&admin_listener, "admin.listen", config.admin.listen)?,
        };

        let life = Lifecycle::default();
        let admin_life = Lifecycle::default();
        let telemetry = Telemetry::start(&config.telemetry, &config.service, spiffe_id.as_str())?;
        let metrics = telemetry.metrics.clone();
        let state = AdminState::new(
            config.service.clone(),
            spiffe_id.clone(),
            policy.clone(),
            metrics.clone(),
        );
        let inbound_cfg = &config.inbound;
        let builder = Arc::new(http_builder(ServerLimits {
            max_header_bytes: inbound_cfg.max_header_bytes,
            header_read_timeout: inbound_cfg.header_read_timeout,
            http2_max_concurrent_streams: inbound_cfg.http2_max_concurrent_streams,
        }));
        let idle = Some(inbound_cfg.idle_timeout);

        // Admin first: it outlives the drain so probes see `/ready` turn
        // false, and in CA mode it answers while the sidecar enrols.
        {
            let state = state.clone();
            let life2 = admin_life.clone();
            let builder = builder.clone();
            tokio::spawn(accept_loop(
                admin_listener,
                "admin",
                admin_life.clone(),
                ConnectionLimit::new(64, Arc::new(|| {})),
                move |tcp, remote| {
                    let state = state.clone();
                    let builder = builder.clone();
                    let shutdown = life2.shutdown.clone();
                    async move {
                        let svc = hyper::service::service_fn(move |req| {
                            admin::handle(state.clone(), req, remote)
                        });
                        serve_http(&builder, tcp, svc, &shutdown, idle).await;
                    }
                },
            ));
        }

        // The identity: the files read above, or a certificate from the CA.
        let (loaded, ca_credentials) = match (file_identity, &config.identity.ca) {
            (Some(loaded), _) => (loaded, None),
            (None, Some(ca)) => {
                let (loaded, creds) = renew::enrol(ca, &provider, &metrics).await;
                (loaded, Some(creds))
            }
            (None, None) => {
                // Unreachable by construction (no CA means files were loaded).
                let loaded = identity::load_identity(&config.identity, &provider)?;
                (loaded, None)
            }
        };
        let trust = TrustStore::new(loaded.roots.clone(), provider.clone())?;
        let identity = Identity::new(loaded, trust.clone(), metrics.clone());
        state.identity.store(Some(identity.clone()));
        let certs = identity.certs.clone();
        let server_tls =
            identity::server_config(certs.clone(), trust.clone(), &config.tls, provider.clone())?;
        let routes = Arc::new(RouteTable::build(
            &config.outbound.routes,
            &certs,
            &trust,
            &config.tls,
            &provider,
        )?);
        match (ca_credentials, &config.identity.ca) {
            (Some(creds), Some(ca)) => renew::spawn_renewal(
                identity.clone(),
                ca.clone(),
                creds,
                provider.clone(),
                metrics.clone(),
                life.shutdown.clone(),
            ),
            _ if config.identity.watch => watch::spawn_file_watcher(
                identity.clone(),
                config.identity.clone(),
                provider.clone(),
                metrics.clone(),
                life.shutdown.clone(),
            )?,
            _ => {}
        }

        let authz = policy.as_ref().map(|store| {
            AuthzShared::new(
                store.clone(),
                spiffe_id.clone(),
                addrs.inbound,
                metrics.clone(),
            )
        });
        if let (Some(store), Some(p)) = (&policy, &config.policy) {
            if p.watch {
                spawn_watcher(store.clone(), life.shutdown.clone())?;
            }
        }

        // Inbound: mTLS from peers → tower stack → local app.
        let app_timeout = config.inbound.app_connect_timeout;
        let app_connector = AppConnector::new(config.inbound.app, app_timeout);
        let authn = match &config.authentication {
            Some(a) => {
                let authn = Authn::load(a)?;
                authn.spawn_refresh(life.shutdown.clone())?;
                Some(authn)
            }
            None => None,
        };
        let rate_limits = config.rate_limit.as_ref().map(|rl| {
            let limits = RateLimits::new(rl);
            limits.spawn_eviction(rl.evict_after, life.shutdown.clone());
            limits
        });
        let inbound = Inbound {
            to_app: ToApp::new(
                config.inbound.app,
                Upstream::new(
                    app_connector.clone(),
                    app_connector,
                    life.tasks.clone(),
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
            authz,
            telemetry: telemetry.clone(),
        };
        let listener = Arc::new(InboundListener {
            acceptor: TlsAcceptor::from(server_tls),
            own_id: spiffe_id.clone(),
            inbound,
            builder: builder.clone(),
            shutdown: life.shutdown.clone(),
            idle_timeout: inbound_cfg.idle_timeout,
            trust_domains: if inbound_cfg.trust_domains.is_empty() {
                vec![spiffe_id.trust_domain().to_owned()]
            } else {
                inbound_cfg.trust_domains.clone()
            },
        });
        let refused = metrics.clone();
        tokio::spawn(accept_loop(
            inbound_listener,
            "inbound",
            life.clone(),
            ConnectionLimit::new(
                inbound_cfg.max_connections,
                Arc::new(move || refused.connection_refused(Direction::Inbound)),
            ),
            move |tcp, remote| serve_inbound(tcp, remote, listener.clone()),
        ));

        // Outbound: plain HTTP from the app → route → mTLS to the peer.
        let timeout = config.outbound.connect_timeout;
        let outbound = Arc::new(OutboundListener {
            outbound: Outbound {
                route: RouteLayer::new(
                    routes.clone(),
                    Arc::new(Sanitizer::new(
                        config.outbound.upgrades.clone(),
                        None,
                        vec![crate::headers::XFCC.clone()],
                        Vec::new(),
                    )),
                ),
                to_peer: ToPeer::new(Upstream::new(
                    PeerConnector::new(routes.clone(), Alpn::Http1, timeout, metrics.clone()),
                    PeerConnector::new(routes, Alpn::H2, timeout, metrics.clone()),
                    life.tasks.clone(),
                    metrics.clone(),
                    Direction::Outbound,
                )),
                telemetry: telemetry.clone(),
            },
            builder: builder.clone(),
            shutdown: life.shutdown.clone(),
            idle_timeout: inbound_cfg.idle_timeout,
        });
        let refused = metrics.clone();
        tokio::spawn(accept_loop(
            outbound_listener,
            "outbound",
            life.clone(),
            ConnectionLimit::new(
                inbound_cfg.max_connections,
                Arc::new(move || refused.connection_refused(Direction::Outbound)),
            ),
            move |tcp, remote| serve_outbound(tcp, remote, outbound.clone()),
        ));

        state.set_ready(true);
        Ok(Sidecar {
            addrs,
            policy,
            admin: state,
            certs,
            identity,
            telemetry,
            life,
            admin_life,
        })
    }

    /// Stops accepting, turns `/ready` false, lets in-flight requests finish
    /// for up to `timeout`, then stops the admin listener.
    pub async fn shutdown(self, timeout: Duration) -> DrainOutcome {
        self.admin.set_ready(false);
        self.life.shutdown.cancel();
        self.life.tasks.close();
        let outcome = match tokio::time::timeout(timeout, self.life.tasks.wait()).await {
            Ok(()) => DrainOutcome::Complete,
            Err(_) => DrainOutcome::TimedOut,
        };
        // Spans of the drained requests still go out, briefly.
        self.telemetry.shutdown(Duration::from_secs(2)).await;
        self.admin_life.shutdown.cancel();
        self.admin_life.tasks.close();
        let _ = tokio::time::timeout(Duration::from_secs(1), self.admin_life.tasks.wait()).await;
        outcome
    }
}
