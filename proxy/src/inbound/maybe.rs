//! An optional step of the inbound stack: on when configured, a plain
//! pass-through (no boxing, no lookups) when not.

use std::task::{Context, Poll};

use http::{Request, Response};

use crate::body::RequestBody;
use crate::respond::{ProxyBody, ProxyError};

#[derive(Clone)]
pub enum Maybe<L, S> {
    On(L),
    Off(S),
}

impl<L, S> tower::Service<Request<RequestBody>> for Maybe<L, S>
where
    L: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = futures_util::future::Either<L::Future, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        match self {
            Maybe::On(l) => l.poll_ready(cx),
            Maybe::Off(s) => s.poll_ready(cx),
        }
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        match self {
            Maybe::On(l) => futures_util::future::Either::Left(l.call(req)),
            Maybe::Off(s) => futures_util::future::Either::Right(s.call(req)),
        }
    }
}
