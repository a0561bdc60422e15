//! The connector to the local application: plain TCP to one fixed address,
//! whatever authority the request names.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::connect::ConnectError;

#[derive(Clone, Debug)]
pub(crate) struct AppConnector {
    addr: SocketAddr,
    timeout: Duration,
}

impl AppConnector {
    pub(crate) fn new(addr: SocketAddr, timeout: Duration) -> Self {
        AppConnector { addr, timeout }
    }
}

impl tower::Service<Uri> for AppConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        let (addr, timeout) = (self.addr, self.timeout);
        Box::pin(async move {
            let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
                .await
                .map_err(|_| ConnectError::Timeout)?
                .map_err(ConnectError::Tcp)?;
            // Latency over batching: requests are small and interactive.
            let _ = stream.set_nodelay(true);
            Ok(TokioIo::new(stream))
        })
    }
}
