//! The admin listener's builder: `/live`, `/ready`, `/metrics` and the
//! read-only views. Started first, on its own lifecycle: it outlives the
//! drain, so probes see `/ready` turn false, and in CA mode it answers
//! while the sidecar enrols.

use std::sync::Arc;

use tokio::net::TcpListener;

use super::Http;
use crate::admin::{self, AdminState};
use crate::serve::{accept_loop, serve_http, ConnectionLimit, Lifecycle};

/// Connections the admin listener serves at once (probes and scrapes).
const ADMIN_MAX_CONNECTIONS: usize = 64;

pub(super) struct AdminBuilder<'a> {
    pub(crate) state: Arc<AdminState>,
    pub(crate) http: &'a Http,
    pub(crate) life: &'a Lifecycle,
}

impl AdminBuilder<'_> {
    pub(crate) fn spawn(self, listener: TcpListener) {
        let AdminBuilder { state, http, life } = self;
        let builder = http.builder.clone();
        let idle = Some(http.limits.idle_timeout);
        let shutdown = life.shutdown.clone();
        tokio::spawn(accept_loop(
            listener,
            "admin",
            life.clone(),
            ConnectionLimit::new(ADMIN_MAX_CONNECTIONS, Arc::new(|| {})),
            move |tcp, remote| {
                let state = state.clone();
                let builder = builder.clone();
                let shutdown = shutdown.clone();
                async move {
                    let svc = hyper::service::service_fn(move |req| {
                        admin::handle(state.clone(), req, remote)
                    });
                    serve_http(&builder, tcp, svc, &shutdown, idle).await;
                }
            },
        ));
    }
}
