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

use crate::headers::XFCC;
use crate::respond::{ProxyBody, ProxyError};
use crate::sanitize::Sanitizer;
use crate::target::ClientCertHeader;

/// For the connection `T`, whose certificate names the caller.
pub(crate) struct IdentityHeadersLayer<T> {
    target: Arc<T>,
    sanitizer: Arc<Sanitizer>,
}

impl<T> IdentityHeadersLayer<T> {
    pub(crate) fn new(target: Arc<T>, sanitizer: Arc<Sanitizer>) -> Self {
        IdentityHeadersLayer { target, sanitizer }
    }
}

impl<T, S> tower::Layer<S> for IdentityHeadersLayer<T> {
    type Service = IdentityHeaders<T, S>;

    fn layer(&self, inner: S) -> IdentityHeaders<T, S> {
        IdentityHeaders {
            target: self.target.clone(),
            sanitizer: self.sanitizer.clone(),
            inner,
        }
    }
}

pub(crate) struct IdentityHeaders<T, S> {
    target: Arc<T>,
    sanitizer: Arc<Sanitizer>,
    inner: S,
}

impl<T, S: Clone> Clone for IdentityHeaders<T, S> {
    fn clone(&self) -> Self {
        IdentityHeaders {
            target: self.target.clone(),
            sanitizer: self.sanitizer.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S, B> tower::Service<Request<B>> for IdentityHeaders<T, S>
where
    T: ClientCertHeader,
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
        // A forged one is gone already (the sanitiser); a plain-text
        // caller gets none.
        if let Some(xfcc) = self.target.xfcc() {
            req.headers_mut().insert(XFCC.clone(), xfcc.clone());
        }
        Either::Right(self.inner.call(req))
    }
}
