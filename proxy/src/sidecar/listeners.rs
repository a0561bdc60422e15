//! The three listeners, bound before anything is served: a port that is
//! taken stops the start, naming its key.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use super::{BoundAddrs, StartError};
use crate::config::Config;

pub(super) struct Listeners {
    pub(crate) inbound: TcpListener,
    pub(crate) outbound: TcpListener,
    /// `outbound.listen_ipv6`, when set: the app's redirected IPv6 traffic.
    pub(crate) outbound_ipv6: Option<TcpListener>,
    pub(crate) admin: TcpListener,
    pub(crate) addrs: BoundAddrs,
}

impl Listeners {
    pub(crate) async fn bind(config: &Config) -> Result<Listeners, StartError> {
        let (inbound, inbound_addr) = bind("inbound.listen", config.inbound.listen).await?;
        let (outbound, outbound_addr) = bind("outbound.listen", config.outbound.listen).await?;
        let outbound_ipv6 = match config.outbound.listen_ipv6 {
            Some(addr) => Some(bind("outbound.listen_ipv6", addr).await?.0),
            None => None,
        };
        let (admin, admin_addr) = bind("admin.listen", config.admin.listen).await?;
        Ok(Listeners {
            inbound,
            outbound,
            outbound_ipv6,
            admin,
            addrs: BoundAddrs {
                inbound: inbound_addr,
                outbound: outbound_addr,
                admin: admin_addr,
            },
        })
    }
}

/// Binds `addr` and reads back the address it got (port 0: the OS picks).
async fn bind(
    key: &'static str,
    addr: SocketAddr,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let err = |source| StartError::Bind { key, addr, source };
    let listener = TcpListener::bind(addr).await.map_err(err)?;
    let local = listener.local_addr().map_err(err)?;
    Ok((listener, local))
}
