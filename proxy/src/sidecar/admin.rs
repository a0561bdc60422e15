//! The admin listener's builder: `/live`, `/ready`, `/metrics` and the
//! read-only views. Started first, on its own lifecycle: it outlives the
//! drain, so probes see `/ready` turn false, and in CA mode it answers
//! while the sidecar enrols.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;

use super::Http;
use crate::admin::{self, AdminState};
use crate::serve::{accept_loop, serve_http, ConnectionLimit, Lifecycle};

/// Connections the admin listener serves at once (probes and scrapes).
const ADMIN_MAX_CONNECTIONS: usize = 64;
/// Of those, how many one address may hold: in Kubernetes the admin port
/// is reachable from the cluster (the kubelet probes it), and one caller
/// holding every slot would fail the probes and get the pod restarted.
const ADMIN_MAX_PER_ADDRESS: usize = 8;
/// An idle admin connection is closed sooner than a data-plane one.
const ADMIN_IDLE_TIMEOUT: Duration = Duration::from_secs(15);

pub(super) struct AdminBuilder<'a> {
    pub(crate) state: Arc<AdminState>,
    pub(crate) http: &'a Http,
    pub(crate) life: &'a Lifecycle,
}

impl AdminBuilder<'_> {
    pub(crate) fn spawn(self, listener: TcpListener) {
        let AdminBuilder { state, http, life } = self;
        let builder = http.builder.clone();
        let idle = Some(http.limits.idle_timeout.min(ADMIN_IDLE_TIMEOUT));
        let shutdown = life.shutdown.clone();
        let per_address = Arc::new(PerAddress::default());
        tokio::spawn(accept_loop(
            listener,
            "admin",
            life.clone(),
            ConnectionLimit::new(ADMIN_MAX_CONNECTIONS, Arc::new(|| {})),
            move |tcp, remote| {
                let state = state.clone();
                let builder = builder.clone();
                let shutdown = shutdown.clone();
                let slot = per_address.enter(remote.ip());
                async move {
                    // Dropped (closed) when this address holds too many.
                    let Some(_slot) = slot else {
                        return;
                    };
                    let svc = hyper::service::service_fn(move |req| {
                        admin::handle(state.clone(), req, remote)
                    });
                    serve_http(&builder, tcp, svc, &shutdown, idle).await;
                }
            },
        ));
    }
}

/// Admin connections held per remote address.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One admin connection's place in [`PerAddress`], given back on drop.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    fn enter(self: &Arc<Self>, ip: IpAddr) -> Option<AddressSlot> {
        let mut held = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let n = held.entry(ip).or_insert(0);
        if *n >= ADMIN_MAX_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(AddressSlot {
            table: self.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut held = self.table.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = held.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_gets_a_few_slots_and_gives_them_back() {
        let table = Arc::new(PerAddress::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let held: Vec<_> = (0..ADMIN_MAX_PER_ADDRESS)
            .map(|_| table.enter(a).unwrap())
            .collect();
        assert!(table.enter(a).is_none(), "one address cannot take more");
        assert!(table.enter(b).is_some(), "another address still can");
        drop(held);
        assert!(table.enter(a).is_some());
        assert!(table.0.lock().unwrap().get(&a).is_none_or(|n| *n <= 1));
    }
}
