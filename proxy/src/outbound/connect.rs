//! The outbound connector: TCP to the route's address, then mutual TLS
//! whose verifier accepts only the route's SPIFFE ID.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::client::legacy::connect::{Connected, Connection};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use super::routes::RouteTable;
use crate::connect::{tls_failure_reason, ConnectError};
use crate::headers::host_of;
use crate::identity::Alpn;
use crate::telemetry::{Direction, Metrics};

#[derive(Clone)]
pub(crate) struct PeerConnector {
    routes: Arc<RouteTable>,
    alpn: Alpn,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl PeerConnector {
    pub(crate) fn new(
        routes: Arc<RouteTable>,
        alpn: Alpn,
        timeout: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        PeerConnector {
            routes,
            alpn,
            timeout,
            metrics,
        }
    }
}

impl tower::Service<Uri> for PeerConnector {
    type Response = TlsConn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<TlsConn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let host = uri.authority().map(|a| host_of(a.as_str())).unwrap_or("");
        let route = self.routes.get(host).cloned();
        let missing = host.to_owned();
        let (alpn, timeout) = (self.alpn, self.timeout);
        let metrics = self.metrics.clone();
        Box::pin(async move {
            let route = route.ok_or(ConnectError::NoRoute(missing))?;
            let connect = async {
                let addrs: Vec<std::net::SocketAddr> =
                    tokio::net::lookup_host(route.address.as_str())
                        .await
                        .map_err(|source| ConnectError::Resolve {
                            address: route.address.clone(),
                            source,
                        })?
                        .collect();
                let tcp = TcpStream::connect(addrs.as_slice())
                    .await
                    .map_err(ConnectError::Tcp)?;
                let _ = tcp.set_nodelay(true);
                let tls = TlsConnector::from(route.tls(alpn).clone())
                    .connect(route.server_name.clone(), tcp)
                    .await
                    .map_err(|e| {
                        metrics.handshake_failed(Direction::Outbound, tls_failure_reason(&e));
                        ConnectError::from_handshake(e)
                    })?;
                Ok(TlsConn {
                    io: TokioIo::new(tls),
                    alpn,
                })
            };
            tokio::time::timeout(timeout, connect).await.map_err(|_| {
                metrics.handshake_failed(Direction::Outbound, "timeout");
                ConnectError::Timeout
            })?
        })
    }
}

/// An established mTLS connection to a peer, as hyper's client sees it.
pub(crate) struct TlsConn {
    io: TokioIo<TlsStream<TcpStream>>,
    alpn: Alpn,
}

impl Connection for TlsConn {
    fn connected(&self) -> Connected {
        // HTTP/2 framing when the peer chose what was offered for it (`h2`,
        // or the multiplexed hop); otherwise HTTP/1.1 (the mux's fallback).
        let negotiated = self.io.inner().get_ref().1.alpn_protocol();
        let h2_framing = matches!(self.alpn, Alpn::H2 | Alpn::Mux);
        if h2_framing && negotiated == Some(self.alpn.id()) {
            Connected::new().negotiated_h2()
        } else {
            Connected::new()
        }
    }
}

impl hyper::rt::Read for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.io).poll_write_vectored(cx, bufs)
    }
}
