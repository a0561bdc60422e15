//! The destination a redirected connection was sent to (`SO_ORIGINAL_DST`
//! for IPv4, `IP6T_SO_ORIGINAL_DST` for IPv6), read from conntrack.

use std::net::SocketAddr;

use socket2::SockRef;

/// Where the peer of `stream` meant to connect, when netfilter redirected
/// the connection; `None` when it was not redirected (the answer is then
/// the listener's own address, or the kernel has no NAT entry).
pub(crate) fn original_dst(stream: &tokio::net::TcpStream) -> Option<SocketAddr> {
    let local = stream.local_addr().ok()?;
    let sock = SockRef::from(stream);
    // Conntrack knows the connection by its real family: an IPv4
    // connection accepted on a dual-stack IPv6 socket (`[::]:15006`) is
    // asked with the IPv4 option (the kernel hands SOL_IP on an IPv6 socket
    // to IPv4's handler).
    let v4 = canonical(local).is_ipv4();
    let addr = if v4 {
        sock.original_dst_v4()
    } else {
        sock.original_dst_v6()
    }
    .ok()?
    .as_socket()?;
    // An IPv4 connection accepted on a dual-stack IPv6 socket reports its
    // addresses IPv4-mapped: compare like with like.
    (canonical(addr) != canonical(local)).then(|| canonical(addr))
}

/// `addr` with an IPv4-mapped IPv6 address written as IPv4.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => addr,
        },
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection nobody redirected has no original destination.
    #[tokio::test]
    async fn none_without_a_redirect() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        assert_eq!(original_dst(&server), None);
        assert_eq!(original_dst(&client), None);
    }

    #[test]
    fn mapped_addresses_compare_as_ipv4() {
        let mapped: SocketAddr = "[::ffff:10.0.0.1]:80".parse().unwrap();
        assert_eq!(canonical(mapped), "10.0.0.1:80".parse().unwrap());
        let v6: SocketAddr = "[fd00::1]:80".parse().unwrap();
        assert_eq!(canonical(v6), v6);
    }
}
