//! Removes identity headers a caller may have forged, then sets
//! `x-forwarded-client-cert` from the verified peer certificate.

use std::sync::Arc;
use std::task::{Context, Poll};

use http::Request;

use super::InboundConn;
use crate::headers::{strip_spoofable, XFCC};

#[derive(Clone)]
pub struct IdentityHeadersLayer {
    conn: Arc<InboundConn>,
}

impl IdentityHeadersLayer {
    pub fn new(conn: Arc<InboundConn>) -> Self {
        IdentityHeadersLayer { conn }
    }
}

impl<S> tower::Layer<S> for IdentityHeadersLayer {
    type Service = IdentityHeaders<S>;

    fn layer(&self, inner: S) -> IdentityHeaders<S> {
        IdentityHeaders {
            conn: self.conn.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
pub struct IdentityHeaders<S> {
    conn: Arc<InboundConn>,
    inner: S,
}

impl<S, B> tower::Service<Request<B>> for IdentityHeaders<S>
where
    S: tower::Service<Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<B>) -> S::Future {
        let headers = req.headers_mut();
        strip_spoofable(headers);
        headers.insert(XFCC.clone(), self.conn.xfcc.clone());
        self.inner.call(req)
    }
}
