//! Request hygiene before anything else looks at the request: a body
//! larger than `inbound.max_request_body` is refused (413) from its
//! `Content-Length`, or cut off when a streamed body grows past it.

use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};

use crate::body::RequestBody;
use crate::respond::{ProxyBody, ProxyError};

/// Only in the stack when `inbound.max_request_body` is set.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimitLayer {
    max: u64,
}

impl BodyLimitLayer {
    pub(crate) fn new(max: u64) -> Self {
        BodyLimitLayer { max }
    }
}

impl<S> tower::Layer<S> for BodyLimitLayer {
    type Service = BodyLimit<S>;

    fn layer(&self, inner: S) -> BodyLimit<S> {
        BodyLimit {
            max: self.max,
            inner,
        }
    }
}

#[derive(Clone)]
pub(crate) struct BodyLimit<S> {
    max: u64,
    inner: S,
}

impl<S> tower::Service<Request<RequestBody>> for BodyLimit<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Response<ProxyBody>, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let max = self.max;
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max) {
            return Either::Left(ready(Err(ProxyError::BodyTooLarge { max })));
        }
        Either::Right(self.inner.call(req.map(|b| b.limit(max))))
    }
}
