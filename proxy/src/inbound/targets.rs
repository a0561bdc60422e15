//! Which app port an inbound connection is for.
//!
//! Without interception every connection goes to `inbound.app`. When `usher
//! init-net` redirected it, the caller dialled the pod on some port: the
//! request goes to that port. The configured app port keeps the configured
//! address (often loopback); any other port is reached at the pod's own
//! address the connection was delivered to (as Istio does), not at
//! loopback, so that a service the app binds to 127.0.0.1 only (a debug
//! port) is not opened to the mesh by the redirect. Paths are made only
//! for accepted callers (after the handshake).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use super::ToApp;

/// At most this many app addresses get a pool (a pod listens on a few).
const MAX_TARGETS: usize = 256;

/// The app's addresses, each with its own connection pool, made on first
/// use. Looked up once per connection, not per request.
pub(crate) struct AppTargets {
    default_app: SocketAddr,
    default: ToApp,
    make: Arc<dyn Fn(SocketAddr) -> ToApp + Send + Sync>,
    others: Mutex<HashMap<SocketAddr, ToApp>>,
}

impl AppTargets {
    /// `default` serves `default_app`; `make` builds the path to any other
    /// address.
    pub(crate) fn new(
        default_app: SocketAddr,
        default: ToApp,
        make: Arc<dyn Fn(SocketAddr) -> ToApp + Send + Sync>,
    ) -> AppTargets {
        AppTargets {
            default_app,
            default,
            make,
            others: Mutex::new(HashMap::new()),
        }
    }

    /// Where a connection whose original destination is `orig` (`None`:
    /// not redirected) goes; `None` past [`MAX_TARGETS`] addresses.
    pub(crate) fn for_connection(&self, orig: Option<SocketAddr>) -> Option<ToApp> {
        let Some(orig) = orig.filter(|o| o.port() != self.default_app.port()) else {
            return Some(self.default.clone());
        };
        // A poisoned lock only means another connection panicked while
        // inserting: the map itself is still sound.
        let mut others = self.others.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(to_app) = others.get(&orig) {
            return Some(to_app.clone());
        }
        if others.len() >= MAX_TARGETS {
            return None;
        }
        let to_app = (self.make)(orig);
        others.insert(orig, to_app.clone());
        Some(to_app)
    }
}
