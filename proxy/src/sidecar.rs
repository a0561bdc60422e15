//! Putting a sidecar together from a [`Config`]: load the identity, build
//! the TLS configs and route table, bind the three listeners, serve. Each
//! listener has its builder: `sidecar/admin.rs`, `sidecar/inbound.rs`,
//! `sidecar/outbound.rs`; the identity's start-up is in `sidecar/identity.rs`.
//!
//! `usher run` and `usher demo` both start sidecars through
//! [`Sidecar::start`]; there is no other way in.

mod admin;
mod identity;
mod inbound;
mod listeners;
mod outbound;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;

use self::admin::AdminBuilder;
use self::identity::PendingIdentity;
use self::inbound::InboundBuilder;
use self::listeners::Listeners;
use self::outbound::OutboundBuilder;
use crate::admin::AdminState;
use crate::authn::AuthnError;
use crate::authz::{spawn_watcher, AuthzShared, PolicyStore};
use crate::config::{Config, ServerConfig};
use crate::identity::{crypto_provider, server_config, Identity, IdentityError, TlsError};
use crate::outbound::RouteTable;
use crate::serve::{http_builder, Lifecycle, ServerLimits};
use crate::telemetry::Telemetry;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
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

/// The HTTP server every listener runs: hyper's builder with the
/// `server:` limits applied, and those limits.
pub(crate) struct Http {
    pub(crate) builder: Arc<auto::Builder<TokioExecutor>>,
    pub(crate) limits: ServerConfig,
}

impl Http {
    fn new(limits: ServerConfig) -> Http {
        Http {
            builder: Arc::new(http_builder(ServerLimits {
                max_header_bytes: limits.max_header_bytes,
                header_read_timeout: limits.header_read_timeout,
                http2_max_concurrent_streams: limits.http2_max_concurrent_streams,
            })),
            limits,
        }
    }
}

impl Sidecar {
    /// Loads the identity and binds every listener before serving anything;
    /// any failure is returned before a single request is accepted. The
    /// steps: identity files and policy checked, listeners bound, admin
    /// serving, identity established (CA mode: enrolled), then the
    /// inbound and outbound sides.
    pub async fn start(config: &Config) -> Result<Sidecar, StartError> {
        for warning in &config.warnings {
            tracing::warn!(key = %warning.key, "config: {}", warning.message);
        }
        let provider = crypto_provider(&config.tls);
        let pending = PendingIdentity::prepare(&config.identity, &provider)?;
        let spiffe_id = pending.spiffe_id().clone();
        let policy = match &config.policy {
            Some(p) => Some(PolicyStore::load(p)?),
            None => None,
        };
        if let Some(store) = &policy {
            let current = store.current();
            if let Some(warning) =
                crate::authz::single_thread_warning(&current.policy, config.runtime.workers)
            {
                tracing::warn!(key = "runtime.workers", "{warning}");
            }
        }
        let listeners = Listeners::bind(config).await?;
        let addrs = listeners.addrs;

        let life = Lifecycle::default();
        let admin_life = Lifecycle::default();
        let telemetry = Telemetry::start(&config.telemetry, &config.service, spiffe_id.as_str())?;
        let metrics = telemetry.metrics.clone();
        let http = Http::new(config.server);
        let state = AdminState::new(
            config.service.clone(),
            spiffe_id.clone(),
            policy.clone(),
            metrics.clone(),
        );
        // A fresh state: the cell is empty, so this cannot fail.
        let _ = state.app_probes.set(config.app_probes.clone());
        AdminBuilder {
            state: state.clone(),
            http: &http,
            life: &admin_life,
        }
        .spawn(listeners.admin);

        let (identity, trust) = pending
            .establish(&provider, &metrics, &life.shutdown)
            .await?;
        state.identity.store(Some(identity.clone()));
        let certs = identity.certs.clone();
        let server_tls =
            server_config(certs.clone(), trust.clone(), &config.tls, provider.clone())?;
        let routes = Arc::new(RouteTable::build(
            &config.outbound.routes,
            &certs,
            &trust,
            &config.tls,
            &provider,
        )?);

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
        InboundBuilder {
            config,
            own_id: &spiffe_id,
            server_tls,
            authz,
            telemetry: &telemetry,
            http: &http,
            life: &life,
        }
        .spawn(listeners.inbound)?;
        OutboundBuilder {
            config,
            routes,
            telemetry: &telemetry,
            http: &http,
            life: &life,
        }
        .spawn(listeners.outbound, listeners.outbound_ipv6);

        state.set_ready(true);
        Ok(Sidecar {
            addrs,
            policy,
            admin: state,
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
