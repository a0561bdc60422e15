//! The first step after observation: the request is made unambiguous
//! ([`crate::sanitize`]: hop-by-hop headers, upgrades, host, protected
//! headers in every spelling, path), or refused; then
//! `x-forwarded-client-cert` is set from the verified peer certificate.
//! In that order, so that nothing the caller sends can remove what usher
//! sets.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{Request, Response};

use super::InboundConn;
use crate::headers::XFCC;
use crate::respond::{ProxyBody, ProxyError};
use crate::sanitize::Sanitizer;

#[derive(Clone)]
pub struct IdentityHeadersLayer {
    conn: Arc<InboundConn>,
    sanitizer: Arc<Sanitizer>,
}

impl IdentityHeadersLayer {
    pub fn new(conn: Arc<InboundConn>, sanitizer: Arc<Sanitizer>) -> Self {
        IdentityHeadersLayer { conn, sanitizer }
    }
}

impl<S> tower::Layer<S> for IdentityHeadersLayer {
    type Service = IdentityHeaders<S>;

    fn layer(&self, inner: S) -> IdentityHeaders<S> {
        IdentityHeaders {
            conn: self.conn.clone(),
            sanitizer: self.sanitizer.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct IdentityHeaders<S> {
    conn: Arc<InboundConn>,
    sanitizer: Arc<Sanitizer>,
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for IdentityHeaders<S>
where
    S: tower::Service<Request<B>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Response<ProxyBody>, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> Self::Future {
        if let Err(refusal) = self.sanitizer.apply(&mut req) {
            return Either::Left(ready(Err(ProxyError::Refused(refusal))));
        }
        req.headers_mut()
            .insert(XFCC.clone(), self.conn.xfcc.clone());
        Either::Right(self.inner.call(req))
    }
}
