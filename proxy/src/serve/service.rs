//! hyper's view of a connection's service: the tower stack called in place
//! ([`StackService`]), and upgrade requests handed the connection's
//! [`TunnelSlot`].

use std::cell::RefCell;
use std::convert::Infallible;
use std::task::{Context, Poll};

use http::Request;
use hyper::body::Incoming;

use super::TunnelSlot;

/// Hands upgrade requests the connection's [`TunnelSlot`].
pub(super) struct WithTunnelSlot<S> {
    pub(super) slot: TunnelSlot,
    pub(super) inner: S,
}

impl<S> hyper::service::Service<Request<Incoming>> for WithTunnelSlot<S>
where
    S: hyper::service::Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> S::Future {
        if crate::headers::is_upgrade(&req) {
            req.extensions_mut().insert(self.slot.clone());
        }
        self.inner.call(req)
    }
}

/// A connection's tower stack as hyper's service, called in place: no
/// clone of the stack per request, no lock.
///
/// hyper calls its service from the connection's own task, one request at
/// a time (HTTP/2 streams are spawned after `call` returns their future),
/// and a service that owns its stack must be `Send` but need not be
/// `Sync`: a `RefCell` borrowed for the length of `call` is enough. The
/// steps of usher's stacks are always ready (none applies backpressure),
/// so readiness is asked with a no-op waker; a stack that ever were not
/// ready would fail that one request ([`NotReady`]) rather than stall the
/// connection.
pub(crate) struct StackService<S> {
    stack: RefCell<S>,
}

impl<S> StackService<S> {
    pub(crate) fn new(stack: S) -> Self {
        StackService {
            stack: RefCell::new(stack),
        }
    }
}

/// A stack was not ready for a request (see [`StackService`]).
#[derive(Debug, thiserror::Error)]
#[error("the request stack was not ready")]
pub(crate) struct NotReady;

fn never(e: Infallible) -> NotReady {
    match e {}
}

type StackFuture<F, R> = futures_util::future::Either<
    futures_util::future::MapErr<F, fn(Infallible) -> NotReady>,
    std::future::Ready<Result<R, NotReady>>,
>;

impl<S> hyper::service::Service<Request<Incoming>> for StackService<S>
where
    S: tower::Service<Request<crate::body::RequestBody>, Error = Infallible>,
{
    type Response = S::Response;
    type Error = NotReady;
    type Future = StackFuture<S::Future, S::Response>;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        use futures_util::future::Either;
        use futures_util::TryFutureExt;
        // Only a re-entrant call could find it borrowed; hyper makes none.
        let Ok(mut stack) = self.stack.try_borrow_mut() else {
            return Either::Right(std::future::ready(Err(NotReady)));
        };
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match stack.poll_ready(&mut cx) {
            Poll::Ready(Ok(())) => Either::Left(
                stack
                    .call(req.map(crate::body::RequestBody::new))
                    .map_err(never as fn(Infallible) -> NotReady),
            ),
            Poll::Ready(Err(e)) => match e {},
            Poll::Pending => Either::Right(std::future::ready(Err(NotReady))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Response;
    use hyper_util::rt::TokioIo;

    /// A stack that is never ready: the request fails instead of stalling.
    struct NeverReady;

    impl tower::Service<Request<crate::body::RequestBody>> for NeverReady {
        type Response = Response<String>;
        type Error = Infallible;
        type Future = std::future::Ready<Result<Response<String>, Infallible>>;

        fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
            Poll::Pending
        }

        fn call(&mut self, _req: Request<crate::body::RequestBody>) -> Self::Future {
            unreachable!("called without being ready")
        }
    }

    #[tokio::test]
    async fn a_stack_that_is_not_ready_fails_the_request() {
        use hyper::service::Service as _;
        // A real `Incoming` comes from a connection: serve one request.
        let (client, server) = tokio::io::duplex(4096);
        let served = tokio::spawn(async move {
            let svc = StackService::new(NeverReady);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(
                    TokioIo::new(server),
                    hyper::service::service_fn(move |req| {
                        let fut = svc.call(req);
                        async move { fut.await.map_err(|e| e.to_string()) }
                    }),
                )
                .await;
        });
        let (mut send, conn) =
            hyper::client::conn::http1::handshake::<_, String>(TokioIo::new(client))
                .await
                .unwrap();
        tokio::spawn(conn);
        let resp = send.send_request(Request::new(String::new())).await;
        assert!(resp.is_err(), "the connection fails the request: {resp:?}");
        served.abort();
    }
}
