//! The outbound route table: host → peer address, expected identity and
//! the TLS client configurations that enforce it.

use std::collections::HashMap;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;

use crate::config::{RouteConfig, TlsConfig};
use crate::identity::{client_config, Alpn, CertStore, TlsError, TrustStore};
use crate::telemetry::Peer;

/// One destination the local app may call.
pub struct Route {
    /// The route's host as a URI authority: the connection pool's key for HTTP/1
    /// requests to this route.
    pub(crate) authority: http::uri::Authority,
    pub(crate) address: String,
    /// Sent as SNI and used as the session-resumption key; not verified
    /// (peers are verified by SPIFFE ID).
    pub(crate) server_name: ServerName<'static>,
    pub(crate) tls_h1: Arc<ClientConfig>,
    pub(crate) tls_h2: Arc<ClientConfig>,
    /// The multiplexed hop (`usher-mux/h1`, falling back to `http/1.1`).
    pub(crate) tls_mux: Arc<ClientConfig>,
    /// The peer as telemetry names it: its identity (the label too: routes
    /// are a bounded set) and, when the address is an IP, that address.
    pub(crate) peer: Peer,
}

impl Route {
    pub(crate) fn tls(&self, alpn: Alpn) -> &Arc<ClientConfig> {
        match alpn {
            Alpn::Http1 => &self.tls_h1,
            Alpn::H2 => &self.tls_h2,
            Alpn::Mux => &self.tls_mux,
        }
    }
}

/// Routes by lower-case host name.
#[derive(Default)]
pub struct RouteTable {
    routes: HashMap<Box<str>, Arc<Route>>,
}

impl RouteTable {
    pub fn build(
        configs: &[RouteConfig],
        certs: &Arc<CertStore>,
        trust: &Arc<TrustStore>,
        tls: &TlsConfig,
        provider: &Arc<CryptoProvider>,
    ) -> Result<RouteTable, TlsError> {
        let mut routes = HashMap::with_capacity(configs.len());
        for rc in configs {
            let make = |alpn| {
                client_config(
                    certs.clone(),
                    trust.clone(),
                    rc.identity.clone(),
                    alpn,
                    tls,
                    provider.clone(),
                )
            };
            let server_name = ServerName::try_from(rc.host.clone()).map_err(|_| {
                TlsError::Rustls(rustls::Error::General(format!("bad host {}", rc.host)))
            })?;
            let authority = rc.host.parse().map_err(|_| {
                TlsError::Rustls(rustls::Error::General(format!("bad host {}", rc.host)))
            })?;
            let id: Arc<str> = Arc::from(rc.identity.as_str());
            let peer = Peer {
                id: id.clone(),
                label: id,
                addr: rc.address.parse().ok(),
            };
            let route = Route {
                peer,
                authority,
                address: rc.address.clone(),
                server_name,
                tls_h1: make(Alpn::Http1)?,
                tls_h2: make(Alpn::H2)?,
                tls_mux: make(Alpn::Mux)?,
            };
            routes.insert(rc.host.clone().into_boxed_str(), Arc::new(route));
        }
        Ok(RouteTable { routes })
    }

    /// Case-insensitive lookup; allocates only for a host with capitals.
    pub fn get(&self, host: &str) -> Option<&Arc<Route>> {
        if host.bytes().any(|b| b.is_ascii_uppercase()) {
            self.routes.get(host.to_ascii_lowercase().as_str())
        } else {
            self.routes.get(host)
        }
    }
}
