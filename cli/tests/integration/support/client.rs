//! Real HTTP clients: HTTP/1.1 and h2c (prior knowledge) over TCP to the
//! outbound listener, and a raw TLS client for the inbound listener.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::RootCertStore;
use tokio::net::TcpStream;
use usher_ca::SpiffeId;
use usher_proxy::identity::SpiffeServerVerifier;

pub(crate) type Sender1<B> = hyper::client::conn::http1::SendRequest<B>;
pub(crate) type Sender2<B> = hyper::client::conn::http2::SendRequest<B>;

/// An HTTP/1.1 connection to `addr` (plain TCP).
pub(crate) async fn h1<B>(addr: SocketAddr) -> Sender1<B>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = conn.with_upgrades().await;
    });
    send
}

/// An HTTP/2 connection with prior knowledge (h2c) to `addr`.
pub(crate) async fn h2<B>(addr: SocketAddr) -> Sender2<B>
where
    B: hyper::body::Body + Unpin + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    send
}

/// A GET through HTTP/1.1 with the given Host, answer as (status, body).
pub(crate) async fn get1(addr: SocketAddr, host: &str, path: &str) -> (http::StatusCode, String) {
    let mut send = h1::<Full<Bytes>>(addr).await;
    let req = Request::get(path)
        .header("host", host)
        .body(Full::default())
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    read(resp).await
}

pub(crate) async fn read(resp: Response<Incoming>) -> (http::StatusCode, String) {
    let status = resp.status();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// A TLS client config for calling an inbound listener directly, with an
/// optional client certificate from `certs_dir` (cert.pem, key.pem), trusting
/// `bundle` and expecting the server to be `server_id`.
pub(crate) fn tls_client(
    bundle: &Path,
    client_certs: Option<&Path>,
    server_id: SpiffeId,
    alpn: &[u8],
) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(bundle).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let verifier = SpiffeServerVerifier::new(Arc::new(roots), server_id, provider.clone());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let mut config = match client_certs {
        Some(dir) => {
            let chain: Vec<_> = CertificateDer::pem_file_iter(dir.join("cert.pem"))
                .unwrap()
                .map(|c| c.unwrap())
                .collect();
            let key = PrivateKeyDer::from_pem_file(dir.join("key.pem")).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![alpn.to_vec()];
    Arc::new(config)
}

/// Connects with TLS to `addr` and sends one HTTP/1.1 GET; returns the
/// status, or the error text if the handshake or the request failed.
pub(crate) async fn tls_get(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    path: &str,
) -> Result<(http::StatusCode, String), String> {
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(ServerName::try_from("usher").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| format!("http: {e}"))?;
    tokio::spawn(conn);
    let req = Request::get(path)
        .header("host", "b")
        .body(Full::<Bytes>::default())
        .unwrap();
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| format!("request: {}", usher_proxy::connect::error_chain(&e)))?;
    Ok(read(resp).await)
}
