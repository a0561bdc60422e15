//! The observe step, the top of both stacks: a span (SERVER inbound,
//! CLIENT outbound), the request metrics and the access log line for every
//! request ([`crate::telemetry::observe`] does the recording), and the
//! one place a [`ProxyError`] from the steps below becomes a response
//! ([`ProxyError::rescue`]).
//!
//! Inbound the peer is the connection's ([`ObserveTarget`]); outbound it
//! is the route's, chosen per request by the route step above, and the
//! routed request says so ([`ObservedRequest::peer`]).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{Request, Response};

use crate::body::RequestBody;
use crate::respond::{ProxyBody, ProxyError, Side};
use crate::target::{CancelGuard, TelemetryPeer};
use crate::telemetry::{ConnMetrics, Direction, Observation, ObservedBody, Peer, Telemetry};

/// What the observe step needs from its connection.
pub(crate) trait ObserveTarget: TelemetryPeer + CancelGuard {
    fn direction(&self) -> Direction;
    /// The local app's address on an outbound connection (for the log
    /// line); `None` inbound, where the peer's ID names the caller.
    fn app_client(&self) -> Option<SocketAddr>;
}

/// A request as the observe step sees it: the HTTP request, and the peer
/// when the request knows it better than the connection does.
pub(crate) trait ObservedRequest {
    fn http_mut(&mut self) -> &mut Request<RequestBody>;
    /// The peer this request goes to, if it was chosen per request (the
    /// outbound route); `None`: the connection's.
    fn peer(&self) -> Option<&Peer>;
}

impl ObservedRequest for Request<RequestBody> {
    fn http_mut(&mut self) -> &mut Request<RequestBody> {
        self
    }

    fn peer(&self) -> Option<&Peer> {
        None
    }
}

/// Built per connection.
pub(crate) struct ObserveLayer<T> {
    target: Arc<T>,
    telemetry: Arc<Telemetry>,
    metrics: Arc<ConnMetrics>,
    /// A policy runs on this side: spans carry `usher.policy.decision`.
    policy_on: bool,
}

impl<T> ObserveLayer<T> {
    pub(crate) fn new(target: Arc<T>, telemetry: Arc<Telemetry>, policy_on: bool) -> Self
    where
        T: ObserveTarget,
    {
        let metrics = Arc::new(ConnMetrics::new(
            telemetry.metrics.clone(),
            target.direction(),
        ));
        ObserveLayer {
            target,
            telemetry,
            metrics,
            policy_on,
        }
    }
}

impl<T, S> tower::Layer<S> for ObserveLayer<T> {
    type Service = Observe<T, S>;

    fn layer(&self, inner: S) -> Observe<T, S> {
        Observe {
            target: self.target.clone(),
            telemetry: self.telemetry.clone(),
            metrics: self.metrics.clone(),
            policy_on: self.policy_on,
            inner,
        }
    }
}

pub(crate) struct Observe<T, S> {
    target: Arc<T>,
    telemetry: Arc<Telemetry>,
    metrics: Arc<ConnMetrics>,
    policy_on: bool,
    inner: S,
}

impl<T, S: Clone> Clone for Observe<T, S> {
    fn clone(&self) -> Self {
        Observe {
            target: self.target.clone(),
            telemetry: self.telemetry.clone(),
            metrics: self.metrics.clone(),
            policy_on: self.policy_on,
            inner: self.inner.clone(),
        }
    }
}

impl<T, S, R> tower::Service<R> for Observe<T, S>
where
    T: ObserveTarget,
    R: ObservedRequest,
    S: tower::Service<R, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ObservedBody<ProxyBody>>;
    type Error = Infallible;
    type Future = ObserveFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        match self.inner.poll_ready(cx) {
            // No step below refuses readiness for good; were one to, the
            // request it is then called with answers for it.
            Poll::Ready(_) => Poll::Ready(Ok(())),
            Poll::Pending => Poll::Pending,
        }
    }

    fn call(&mut self, mut req: R) -> Self::Future {
        let peer = req
            .peer()
            .unwrap_or_else(|| self.target.telemetry_peer())
            .clone();
        let mut obs = Observation::start(
            &self.telemetry,
            &self.metrics,
            req.http_mut(),
            peer,
            self.policy_on,
        );
        if let Some(guard) = self.target.reset_guard() {
            obs.on_cancel(guard.clone());
        }
        ObserveFuture {
            inner: self.inner.call(req),
            obs: Some(obs),
            app_client: self.target.app_client(),
        }
    }
}

pin_project_lite::pin_project! {
    /// The response from below, or the error rescued into one, with its
    /// body observed. Not boxed.
    pub(crate) struct ObserveFuture<F> {
        #[pin]
        inner: F,
        obs: Option<Observation>,
        app_client: Option<SocketAddr>,
    }
}

impl<F> Future for ObserveFuture<F>
where
    F: Future<Output = Result<Response<ProxyBody>, ProxyError>>,
{
    type Output = Result<Response<ObservedBody<ProxyBody>>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let resp = match std::task::ready!(this.inner.poll(cx)) {
            Ok(resp) => resp,
            Err(err) => match this.obs.as_ref() {
                Some(obs) => {
                    let side = match *this.app_client {
                        Some(client) => Side::Outbound { client },
                        None => Side::Inbound {
                            peer: obs.peer_id(),
                        },
                    };
                    err.rescue(side, obs.metrics())
                }
                None => err.into_response(),
            },
        };
        Poll::Ready(Ok(Observation::respond_opt(this.obs.take(), resp)))
    }
}
