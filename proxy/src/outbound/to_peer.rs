//! The bottom of the outbound stack: the routed request goes to the peer
//! over a pooled mutual-TLS connection.

use std::future::{ready, Future, Ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::future::Either;
use http::uri::{Authority, Scheme};
use http::Response;
use hyper_util::client::legacy::connect::HttpConnector;

use super::connect::PeerConnector;
use super::route::OutboundRequest;
use crate::connect::{classify, Hop};
use crate::forward::{ForwardFuture, Upstream};
use crate::headers;
use crate::respond::{ProxyBody, ProxyError};

/// Cheap to clone: the upstream's clients are `Arc`s inside.
#[derive(Clone)]
pub(crate) struct ToPeer {
    upstream: Upstream<PeerConnector>,
    /// Plain HTTP to an original destination no route covers
    /// (`outbound.unknown: passthrough`); keyed by that IP:port.
    passthrough: Upstream<HttpConnector>,
}

impl ToPeer {
    pub(crate) fn new(
        upstream: Upstream<PeerConnector>,
        passthrough: Upstream<HttpConnector>,
    ) -> ToPeer {
        ToPeer {
            upstream,
            passthrough,
        }
    }
}

impl tower::Service<OutboundRequest> for ToPeer {
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = ToPeerFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: OutboundRequest) -> ToPeerFuture {
        let OutboundRequest {
            route,
            mut http,
            passthrough,
        } = req;
        if let Some(orig) = passthrough {
            // Outside the mesh: plain, to where the app sent it (an IP
            // literal: no name is resolved).
            if let Ok(authority) = Authority::try_from(orig.to_string()) {
                return ToPeerFuture {
                    inner: Either::Left(self.passthrough.forward(http, Scheme::HTTP, authority)),
                };
            }
        }
        let route = match route {
            Ok(route) => route,
            // Refused or unrouted above: the error goes back up.
            Err(err) => {
                return ToPeerFuture {
                    inner: Either::Right(ready(Err(err))),
                }
            }
        };
        // The app is inside the trust boundary, but identity headers are
        // only ever set by the receiving sidecar.
        headers::strip_spoofable(http.headers_mut());
        // The route's pre-parsed authority keys the connection pool, never
        // the request's (`b:1001`, `b:1002`... all take route `b`: one pool,
        // not a connection per spelling). An HTTP/1 request's Host (made the
        // one host by the sanitiser) goes on as is; an HTTP/2 request's
        // `:authority` becomes the route's host.
        let forward = self
            .upstream
            .forward(http, Scheme::HTTPS, route.authority.clone());
        ToPeerFuture {
            inner: Either::Left(forward),
        }
    }
}

pin_project_lite::pin_project! {
    pub(crate) struct ToPeerFuture {
        #[pin]
        inner: Either<ForwardFuture, Ready<Result<Response<ProxyBody>, ProxyError>>>,
    }
}

impl Future for ToPeerFuture {
    type Output = Result<Response<ProxyBody>, ProxyError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().inner.as_pin_mut() {
            Either::Left(forward) => Poll::Ready(match std::task::ready!(forward.poll(cx)) {
                Ok(resp) => Ok(resp.map(ProxyBody::Left)),
                Err(e) => Err(classify(&e, Hop::Peer)),
            }),
            Either::Right(refused) => refused.poll(cx),
        }
    }
}
