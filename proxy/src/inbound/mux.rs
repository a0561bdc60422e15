//! The callee's end of the multiplexed hop (ALPN `usher-mux/h1`): a caller
//! sidecar sends its app's HTTP/1 requests as streams of one HTTP/2
//! connection, and each is restored here to the HTTP/1.1 request the
//! caller's app made, before the inbound stack sees it. The stack, the
//! policy and the app therefore see exactly what they would over an
//! HTTP/1.1 connection: version, `Host` (carried as a header; `:authority`
//! names only the caller's route) and an origin-form target.

use http::header::HOST;
use http::{HeaderValue, Request, Uri, Version};
use hyper::body::Incoming;

/// Wraps a connection's service; `restore` is set for a connection that
/// negotiated the multiplexed hop.
pub(super) struct RestoreHttp1<S> {
    pub(super) restore: bool,
    pub(super) inner: S,
}

impl<S> hyper::service::Service<Request<Incoming>> for RestoreHttp1<S>
where
    S: hyper::service::Service<Request<Incoming>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<Incoming>) -> S::Future {
        if self.restore {
            restore(&mut req);
        }
        self.inner.call(req)
    }
}

/// An HTTP/2 stream of the multiplexed hop becomes its HTTP/1.1 request.
/// A request that arrived in HTTP/1 framing (a client that sent no HTTP/2
/// preface) is one already and is left alone; so is a CONNECT (authority
/// form), which the sanitizer refuses as it would over HTTP/1.1.
fn restore<B>(req: &mut Request<B>) {
    if req.version() != Version::HTTP_2 {
        return;
    }
    *req.version_mut() = Version::HTTP_11;
    if !req.headers().contains_key(HOST) {
        // An HTTP/1.0 request without Host: the caller's route names it.
        if let Some(value) = req
            .uri()
            .authority()
            .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        {
            req.headers_mut().insert(HOST, value);
        }
    }
    if let Some(path) = req.uri().path_and_query().cloned() {
        *req.uri_mut() = Uri::from(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h2(uri: &str) -> Request<()> {
        let mut req = Request::builder().uri(uri).body(()).unwrap();
        *req.version_mut() = Version::HTTP_2;
        req
    }

    #[test]
    fn a_stream_becomes_the_http1_request_with_its_host() {
        let mut req = h2("https://b/orders?id=1");
        req.headers_mut()
            .insert(HOST, HeaderValue::from_static("b:8080"));
        restore(&mut req);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri().to_string(), "/orders?id=1");
        assert!(req.uri().authority().is_none(), "origin form");
        assert_eq!(
            req.headers()[HOST],
            "b:8080",
            "the app's Host, not the route"
        );
    }

    #[test]
    fn a_missing_host_is_the_routes_authority() {
        let mut req = h2("https://b/");
        restore(&mut req);
        assert_eq!(req.headers()[HOST], "b");
        assert_eq!(req.headers().get_all(HOST).iter().count(), 1);
    }

    #[test]
    fn duplicate_hosts_are_kept_for_the_sanitizer_to_refuse() {
        let mut req = h2("https://b/");
        req.headers_mut()
            .append(HOST, HeaderValue::from_static("b"));
        req.headers_mut()
            .append(HOST, HeaderValue::from_static("evil"));
        restore(&mut req);
        assert_eq!(req.headers().get_all(HOST).iter().count(), 2);
    }

    #[test]
    fn http1_framing_and_connect_are_left_alone() {
        let mut req = Request::builder().uri("/x").body(()).unwrap();
        restore(&mut req);
        assert_eq!(req.version(), Version::HTTP_11);
        assert_eq!(req.uri(), "/x");

        let mut connect = h2("b:443");
        *connect.method_mut() = http::Method::CONNECT;
        restore(&mut connect);
        assert_eq!(connect.uri().authority().map(|a| a.as_str()), Some("b:443"));
    }
}
