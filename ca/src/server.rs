//! The CA server (`usher ca serve`): HTTPS with rustls (aws-lc-rs, TLS 1.3
//! only, ALPN http/1.1) and a small JSON API over hyper:
//!
//! * `POST /v1/enrol` `{"token", "csr"}`: a bootstrap token covering the
//!   CSR's SPIFFE ID buys a certificate; so does, when configured, a
//!   Kubernetes projected service account token for the SPIFFE ID it names
//!   (see [`crate::k8s`]);
//! * `POST /v1/renew` `{"csr"}`: a client certificate for the same SPIFFE ID
//!   (verified by rustls against the trust bundle) buys a fresh one;
//! * `GET /v1/bundle`: the trusted roots, re-read from `bundle.pem`.
//!
//! The server's own certificate is issued by the CA at start (key in memory
//! only) for `spiffe://<td>/usher/ca`, `localhost`, `127.0.0.1`, the listen
//! address and each configured DNS name, and re-issued in the background
//! before it expires.
//!
//! Signing and the issued-log append happen under one lock, so serials stay
//! unique and no certificate leaves the server without being logged (the
//! server's own certificates too, as `how: "server"`).
//!
//! `bundle.pem` is re-read for every answer, so a root added during a
//! rotation is handed out at once; the roots that verify renewing clients'
//! certificates are those of the bundle at start.
//!
//! Failed enrolments are limited per client address, and their log lines
//! aggregated (see [`limit`]). Refusals and refused handshakes are audit
//! records (target `usher::audit`).
//!
//! What the server writes (`issued.jsonl`, and the spent single-use tokens
//! in `tokens.jsonl`) goes to the state directory, the CA directory unless
//! configured otherwise, so that the CA directory may be read-only (a
//! Kubernetes Secret).

mod api;
mod limit;
mod tls;

pub use limit::{DEFAULT_ENROL_FAILURE_LIMIT, DEFAULT_ENROL_FAILURE_WINDOW};

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};
use tokio_rustls::TlsAcceptor;

use crate::authority::{Ca, SignedLeaf};
use crate::csr::CheckedCsr;
use crate::error::CaError;
use crate::issue::{DEFAULT_TTL, MAX_TTL};
use crate::issued_log::{IssuedHow, IssuedLog};
use crate::k8s::{K8sAuthConfig, K8sVerifier};
use crate::spiffe::{spiffe_id_from_cert_der, SpiffeId};
use crate::token::TokenStore;

/// How long a client has to finish the TLS handshake, and to send request
/// headers.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long in-flight requests get to finish at shutdown.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// What `usher ca serve` is given.
#[derive(Clone, Debug)]
pub struct CaServerConfig {
    /// The CA directory (see [`crate::store`]).
    pub ca_dir: PathBuf,
    /// Where to listen; port 0 picks a free port (see [`CaServer::addr`]).
    pub listen: SocketAddr,
    /// Lifetime of the workload certificates it signs.
    pub cert_ttl: Duration,
    /// Extra DNS names for the server's own certificate (besides
    /// `localhost`).
    pub dns_names: Vec<String>,
    /// Failed enrolments one client address (IPv6: one /64) may make per
    /// `enrol_failure_window`; after that its enrolments are answered 429
    /// until the window ends, without the token being checked.
    pub enrol_failure_limit: u32,
    /// See `enrol_failure_limit`.
    pub enrol_failure_window: Duration,
    /// Where the server writes `issued.jsonl` and reads (and marks spent)
    /// bootstrap tokens (`tokens.jsonl`); `None`: the CA directory. Created
    /// (0700) if missing.
    pub state_dir: Option<PathBuf>,
    /// Accept a CA key file its group may read (mode 0440 or 0640, as a
    /// Kubernetes Secret volume with `fsGroup` makes it); never one others
    /// may read or anyone but its owner may write.
    pub allow_group_readable_key: bool,
    /// Also enrol with Kubernetes service account tokens.
    pub k8s: Option<K8sAuthConfig>,
}

impl CaServerConfig {
    /// A configuration with the default certificate lifetime (24 hours) and
    /// no extra DNS names.
    pub fn new(ca_dir: impl Into<PathBuf>, listen: SocketAddr) -> Self {
        CaServerConfig {
            ca_dir: ca_dir.into(),
            listen,
            cert_ttl: DEFAULT_TTL,
            dns_names: Vec::new(),
            enrol_failure_limit: DEFAULT_ENROL_FAILURE_LIMIT,
            enrol_failure_window: DEFAULT_ENROL_FAILURE_WINDOW,
            state_dir: None,
            allow_group_readable_key: false,
            k8s: None,
        }
    }
}

/// Why the CA server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaServerError {
    /// The CA directory, its token file or its issued log is unusable.
    #[error(transparent)]
    Ca(#[from] CaError),

    /// `cert_ttl` is zero or too long.
    #[error("invalid --cert-ttl {ttl:?}: it must be more than zero and at most 365 days")]
    InvalidCertTtl {
        /// The rejected lifetime.
        ttl: Duration,
    },

    /// The failed-enrolment limit or its window is zero.
    #[error("invalid enrolment failure limit {limit} per {window:?}: both must be more than zero")]
    InvalidEnrolLimit {
        /// The rejected limit.
        limit: u32,
        /// The rejected window.
        window: Duration,
    },

    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The underlying error.
        error: io::Error,
    },

    /// Service account token verification cannot be set up (a bad option,
    /// or the issuer's keys cannot be loaded).
    #[error("cannot verify Kubernetes service account tokens: {reason}")]
    K8s {
        /// What went wrong.
        reason: String,
    },

    /// The TLS configuration cannot be built (for instance, the trust bundle
    /// holds a certificate rustls refuses).
    #[error("cannot set up TLS for the CA server: {reason}")]
    Tls {
        /// What went wrong.
        reason: String,
    },
}

/// A running CA server.
#[derive(Debug)]
pub struct CaServer {
    /// The address it listens on (with the real port when 0 was asked for).
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
    /// Dropped (or sent) once the connections have drained.
    stop_sweeper: tokio::sync::oneshot::Sender<()>,
    sweeper: JoinHandle<()>,
}

/// Everything request handlers share.
pub(crate) struct State {
    pub(crate) ca: Ca,
    pub(crate) tokens: TokenStore,
    /// The issued log; its lock serialises signing.
    pub(crate) log: tokio::sync::Mutex<IssuedLog>,
    pub(crate) cert_ttl: Duration,
    /// Failed enrolments per client address.
    pub(crate) enrol_limits: limit::EnrolLimits,
    /// Service account token verification, when configured.
    pub(crate) k8s: Option<K8sVerifier>,
}

impl State {
    /// Signs `csr` and logs it, under the signing lock.
    pub(crate) async fn sign(
        &self,
        csr: &CheckedCsr,
        how: IssuedHow,
    ) -> Result<SignedLeaf, CaError> {
        self.sign_with(&csr.spiffe_id, how, |serial| {
            self.ca
                .sign_csr_with_serial(csr, self.cert_ttl, Some(serial))
        })
        .await
    }

    /// Draws a fresh serial, signs with it, and logs the result (the
    /// certificate is returned only once it is logged).
    pub(crate) async fn sign_with(
        &self,
        id: &SpiffeId,
        how: IssuedHow,
        sign: impl FnOnce([u8; 16]) -> Result<SignedLeaf, CaError>,
    ) -> Result<SignedLeaf, CaError> {
        let mut log = self.log.lock().await;
        let serial = log.fresh_serial()?;
        let leaf = sign(serial)?;
        log.record(&leaf, id, how)?;
        tracing::info!(
            serial = %leaf.serial_hex,
            spiffe_id = %id,
            not_after = %humantime::format_rfc3339_seconds(leaf.not_after),
            how = how.as_str(),
            "certificate issued"
        );
        Ok(leaf)
    }

    /// The trust bundle, re-read from disk (root rotation); on a read error
    /// the last good one, with a warning.
    pub(crate) fn current_bundle(&self) -> String {
        match self.ca.reload_bundle() {
            Ok(b) => b,
            Err(error) => {
                tracing::warn!(%error, "cannot re-read the trust bundle; serving the last good one");
                self.ca.trust_bundle_pem()
            }
        }
    }
}

impl CaServer {
    /// Loads the CA in `cfg.ca_dir`, issues the server's certificate, binds
    /// `cfg.listen`, and spawns the accept loop on the current Tokio runtime.
    /// The server runs until [`CaServer::shutdown`] (or until the `CaServer`
    /// is dropped).
    pub async fn start(cfg: CaServerConfig) -> Result<CaServer, CaServerError> {
        if cfg.cert_ttl.is_zero() || cfg.cert_ttl > MAX_TTL {
            return Err(CaServerError::InvalidCertTtl { ttl: cfg.cert_ttl });
        }
        if cfg.enrol_failure_limit == 0 || cfg.enrol_failure_window.is_zero() {
            return Err(CaServerError::InvalidEnrolLimit {
                limit: cfg.enrol_failure_limit,
                window: cfg.enrol_failure_window,
            });
        }
        let ca = crate::store::load_ca_with(&cfg.ca_dir, cfg.allow_group_readable_key)?;
        let state_dir = cfg.state_dir.as_deref().unwrap_or(&cfg.ca_dir);
        if cfg.state_dir.is_some() {
            crate::files::create_dir(state_dir)?;
        }
        let tokens = TokenStore::open(state_dir)?;
        let log = IssuedLog::open(state_dir)?;
        let k8s = match cfg.k8s.clone() {
            Some(k8s) => Some(
                K8sVerifier::start(k8s, ca.trust_domain())
                    .await
                    .map_err(|reason| CaServerError::K8s { reason })?,
            ),
            None => None,
        };
        let state = Arc::new(State {
            ca,
            k8s,
            tokens,
            log: tokio::sync::Mutex::new(log),
            cert_ttl: cfg.cert_ttl,
            enrol_limits: limit::EnrolLimits::new(
                cfg.enrol_failure_limit,
                cfg.enrol_failure_window,
            ),
        });

        let listener =
            TcpListener::bind(cfg.listen)
                .await
                .map_err(|error| CaServerError::Bind {
                    addr: cfg.listen,
                    error,
                })?;
        let addr = listener.local_addr().map_err(|error| CaServerError::Bind {
            addr: cfg.listen,
            error,
        })?;

        let identity = tls::ServerIdentity::new(&state.ca, addr, &cfg.dns_names)?;
        let (first, renew_at) = identity.issue(&state).await?;
        let resolver = Arc::new(tls::Resolver::new(first));
        let config = tls::server_config(&state.current_bundle(), resolver.clone())?;
        let acceptor = TlsAcceptor::from(Arc::new(config));

        let (shutdown, shutdown_rx) = watch::channel(false);
        tokio::spawn(tls::renew_server_cert(
            state.clone(),
            identity,
            resolver,
            renew_at,
            shutdown_rx.clone(),
        ));
        let (stop_sweeper, sweeper_stop) = tokio::sync::oneshot::channel();
        let sweeper = tokio::spawn(sweep_enrol_limits(state.clone(), sweeper_stop));
        let task = tokio::spawn(accept_loop(listener, acceptor, state, shutdown_rx));
        tracing::info!(%addr, ca_dir = %cfg.ca_dir.display(), "CA server listening");
        Ok(CaServer {
            addr,
            shutdown,
            task,
            stop_sweeper,
            sweeper,
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), logs
    /// the failed-enrolment summaries still pending, and returns once the
    /// listener is closed.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
        let _ = self.stop_sweeper.send(());
        let _ = self.sweeper.await;
    }
}

/// Logs the summaries of failed-enrolment windows as they end, and those
/// still open when `stop` fires (at shutdown, once the connections have
/// drained, or when the server is dropped).
async fn sweep_enrol_limits(state: Arc<State>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    let limits = &state.enrol_limits;
    let period = limits
        .window()
        .clamp(Duration::from_secs(1), Duration::from_secs(60));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = tick.tick() => {
                for summary in limits.sweep(std::time::Instant::now()) {
                    summary.log(limits.window());
                }
            }
        }
    }
    for summary in limits.drain() {
        summary.log(limits.window());
    }
}

async fn accept_loop(
    listener: TcpListener,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    break;
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((tcp, peer)) => {
                    conns.spawn(serve_conn(
                        tcp,
                        peer,
                        acceptor.clone(),
                        state.clone(),
                        shutdown.clone(),
                    ));
                }
                Err(error) => {
                    // Typically out of file descriptors: back off briefly
                    // rather than spin.
                    tracing::warn!(%error, "CA server cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    let drained = tokio::time::timeout(DRAIN_TIMEOUT, async {
        while conns.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!("CA server: connections still open after the drain timeout; closing them");
    }
    conns.shutdown().await;
}

/// What a request handler knows about the connection it came on.
pub(crate) struct Peer {
    pub(crate) addr: SocketAddr,
    /// `None`: no client certificate. `Some(Err)`: a chain-valid
    /// certificate without a usable SPIFFE ID.
    pub(crate) id: Option<Result<SpiffeId, String>>,
}

async fn serve_conn(
    tcp: TcpStream,
    addr: SocketAddr,
    acceptor: TlsAcceptor,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
) {
    let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            tracing::warn!(target: "usher::audit", peer = %addr, %error, "CA server: TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(target: "usher::audit", peer = %addr, "CA server: TLS handshake timed out");
            return;
        }
    };
    let id = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|certs| certs.first())
        .map(|leaf| spiffe_id_from_cert_der(leaf).map_err(|e| e.to_string()));
    let peer = Arc::new(Peer { addr, id });

    let service = hyper::service::service_fn(move |req| {
        let state = state.clone();
        let peer = peer.clone();
        async move { Ok::<_, std::convert::Infallible>(api::handle(req, &state, &peer).await) }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HANDSHAKE_TIMEOUT);
    let conn = builder.serve_connection(TokioIo::new(tls), service);
    tokio::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(peer = %addr, %error, "CA server connection ended with an error");
            }
        }
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}
