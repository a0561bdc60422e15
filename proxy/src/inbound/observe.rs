//! The outermost inbound layer: a SERVER span, request metrics and the
//! access log line for every request (see [`crate::telemetry::observe`]).

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use super::InboundConn;
use crate::body::RequestBody;
use crate::respond::{ProxyBody, ProxyError, Side};
use crate::telemetry::{ConnMetrics, Observation, ObservedBody, Telemetry};

/// Built per connection: the caller is known, and so are its counters.
#[derive(Clone)]
pub struct Observe<S> {
    conn: Arc<InboundConn>,
    telemetry: Arc<Telemetry>,
    metrics: Arc<ConnMetrics>,
    policy_on: bool,
    inner: S,
}

impl<S> Observe<S> {
    pub fn new(
        conn: Arc<InboundConn>,
        telemetry: Arc<Telemetry>,
        metrics: Arc<ConnMetrics>,
        policy_on: bool,
        inner: S,
    ) -> Self {
        Observe {
            conn,
            telemetry,
            metrics,
            policy_on,
            inner,
        }
    }
}

impl<S> tower::Service<Request<RequestBody>> for Observe<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
    S::Future: Unpin,
{
    type Response = Response<ObservedBody<ProxyBody>>;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            // The layers below are never unready for good: none fails here.
            Poll::Ready(Err(_)) | Poll::Ready(Ok(())) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut req: Request<RequestBody>) -> Self::Future {
        let mut obs = Observation::start(
            &self.telemetry,
            &self.metrics,
            &mut req,
            self.conn.peer_info.clone(),
            self.policy_on,
        );
        obs.on_cancel(self.conn.resets.clone());
        ObserveFuture {
            inner: self.inner.call(req),
            obs: Some(obs),
        }
    }
}

/// The inner response, with its body observed. No boxing: the inner
/// future is `Unpin` already.
pub struct ObserveFuture<F> {
    inner: F,
    obs: Option<Observation>,
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>> + Unpin,
{
    type Output = Result<Response<ObservedBody<ProxyBody>>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll(cx) {
            Poll::Ready(Ok(resp)) => {
                Poll::Ready(Ok(Observation::respond_opt(this.obs.take(), resp)))
            }
            Poll::Ready(Err(err)) => {
                let resp = match this.obs.as_ref() {
                    Some(o) => err.rescue(Side::Inbound { peer: o.peer_id() }, o.metrics()),
                    None => err.into_response(),
                };
                Poll::Ready(Ok(Observation::respond_opt(this.obs.take(), resp)))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}
