//! The client of the CA server, used by the sidecar to enrol (with a
//! bootstrap token), renew (with mTLS, presenting its current certificate)
//! and fetch the trust bundle.
//!
//! Each request is one HTTPS/1.1 exchange on its own connection (these are
//! rare: once per certificate lifetime), verified with webpki against the
//! given CA bundle and the URL's host (DNS name or IP address), and bounded
//! by a 10 s timeout end to end.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::crypto::CryptoProvider;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::wire::{
    BundleResponse, EnrolRequest, ErrorResponse, RenewRequest, SignedResponse, BUNDLE_PATH,
    ENROL_PATH, RENEW_PATH,
};

/// How long one request may take, connection and TLS handshake included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest response body accepted.
const MAX_RESPONSE: usize = 1024 * 1024;

/// A certificate signed by the CA server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCert {
    /// The leaf, then the intermediates up to (not including) the root, PEM.
    pub cert_chain_pem: String,
    /// The trusted roots, PEM.
    pub bundle_pem: String,
    /// When the leaf expires.
    pub not_after: SystemTime,
    /// The leaf's serial number, lowercase hex.
    pub serial_hex: String,
}

/// Why a CA request failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CaClientError {
    /// The CA URL is not `https://host[:port]`.
    #[error("invalid CA URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL.
        url: String,
        /// What was expected.
        reason: String,
    },
    /// The CA bundle given to the client is unusable.
    #[error("invalid CA bundle: {reason}")]
    InvalidBundle {
        /// What was wrong.
        reason: String,
    },
    /// The certificate or key presented for renewal is unusable.
    #[error("invalid renewal credentials: {reason}")]
    InvalidCredentials {
        /// What was wrong.
        reason: String,
    },
    /// The CA server could not be reached, or did not answer in time.
    #[error("CA server {url} unreachable: {reason}")]
    Unreachable {
        /// The CA URL.
        url: String,
        /// What happened.
        reason: String,
    },
    /// The TLS handshake failed (wrong server certificate, or the server
    /// refused our client certificate).
    #[error("TLS with CA server {url} failed: {reason}")]
    Tls {
        /// The CA URL.
        url: String,
        /// What rustls said.
        reason: String,
    },
    /// The CA server answered with an error.
    #[error("CA server refused the request (HTTP {status}): {message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The server's error message.
        message: String,
    },
    /// The CA server's answer is not what the API promises.
    #[error("bad response from CA server: {reason}")]
    BadResponse {
        /// What was wrong.
        reason: String,
    },
}

/// A client of one CA server.
#[derive(Clone)]
pub struct CaClient {
    url: String,
    host: String,
    port: u16,
    authority: String,
    server_name: ServerName<'static>,
    roots: Arc<RootCertStore>,
    provider: Arc<CryptoProvider>,
    anonymous: Arc<ClientConfig>,
}

impl fmt::Debug for CaClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaClient").field("url", &self.url).finish()
    }
}

impl CaClient {
    /// A client for the CA server at `url` (`https://host[:port]`, port 443
    /// by default), trusting the roots in `ca_bundle_pem`.
    pub fn new(url: &str, ca_bundle_pem: &str) -> Result<CaClient, CaClientError> {
        let invalid = |reason: &str| CaClientError::InvalidUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: Uri = url
            .parse()
            .map_err(|_| invalid("expected https://host[:port]"))?;
        if uri.scheme_str() != Some("https") {
            return Err(invalid("the scheme must be https"));
        }
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(invalid(
                "expected no path or query, only https://host[:port]",
            ));
        }
        let authority = uri.authority().ok_or_else(|| invalid("no host"))?.clone();
        if authority.as_str().contains('@') {
            return Err(invalid("user information is not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = authority.port_u16().unwrap_or(443);
        let server_name = ServerName::try_from(host.clone())
            .map_err(|_| invalid("the host is neither a DNS name nor an IP address"))?;

        let mut roots = RootCertStore::empty();
        for der in CertificateDer::pem_slice_iter(ca_bundle_pem.as_bytes()) {
            let der = der.map_err(|e| CaClientError::InvalidBundle {
                reason: e.to_string(),
            })?;
            roots.add(der).map_err(|e| CaClientError::InvalidBundle {
                reason: e.to_string(),
            })?;
        }
        if roots.is_empty() {
            return Err(CaClientError::InvalidBundle {
                reason: "no CERTIFICATE block found".to_owned(),
            });
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let anonymous = with_alpn(
            builder(&provider, &roots)
                .map_err(|reason| CaClientError::InvalidBundle { reason })?
                .with_no_client_auth(),
        );
        Ok(CaClient {
            url: url.to_owned(),
            host,
            port,
            authority: authority.to_string(),
            server_name,
            roots,
            provider,
            anonymous,
        })
    }

    /// Enrols with a bootstrap token: sends `csr_pem` and returns the signed
    /// certificate.
    pub async fn enrol(&self, token: &str, csr_pem: &str) -> Result<SignedCert, CaClientError> {
        let body = serde_json::to_vec(&EnrolRequest {
            token: token.to_owned(),
            csr: csr_pem.to_owned(),
        })
        .map_err(|e| CaClientError::BadResponse {
            reason: format!("cannot encode the request: {e}"),
        })?;
        let (status, bytes) = self
            .request(self.anonymous.clone(), Method::POST, ENROL_PATH, body)
            .await?;
        signed(status, &bytes)
    }

    /// Renews: presents the current certificate (`cert_chain_pem`, with its
    /// `key_pem`) as the TLS client certificate and sends `csr_pem` for the
    /// same SPIFFE ID.
    pub async fn renew(
        &self,
        cert_chain_pem: &str,
        key_pem: &str,
        csr_pem: &str,
    ) -> Result<SignedCert, CaClientError> {
        let bad = |reason: String| CaClientError::InvalidCredentials { reason };
        let chain = CertificateDer::pem_slice_iter(cert_chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| bad(format!("certificate chain: {e}")))?;
        if chain.is_empty() {
            return Err(bad(
                "certificate chain: no CERTIFICATE block found".to_owned()
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| bad(format!("private key: {e}")))?;
        let config = builder(&self.provider, &self.roots)
            .map_err(|reason| CaClientError::InvalidBundle { reason })?
            .with_client_auth_cert(chain, key)
            .map_err(|e| bad(e.to_string()))?;
        let body = serde_json::to_vec(&RenewRequest {
            csr: csr_pem.to_owned(),
        })
        .map_err(|e| CaClientError::BadResponse {
            reason: format!("cannot encode the request: {e}"),
        })?;
        let (status, bytes) = self
            .request(with_alpn(config), Method::POST, RENEW_PATH, body)
            .await?;
        signed(status, &bytes)
    }

    /// Fetches the current trust bundle (the roots), PEM.
    pub async fn bundle(&self) -> Result<String, CaClientError> {
        let (status, bytes) = self
            .request(self.anonymous.clone(), Method::GET, BUNDLE_PATH, Vec::new())
            .await?;
        let resp: BundleResponse = ok_json(status, &bytes)?;
        Ok(resp.bundle)
    }

    async fn request(
        &self,
        config: Arc<ClientConfig>,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CaClientError> {
        let exchange = self.exchange(config, method, path, body);
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(result) => result,
            Err(_) => Err(CaClientError::Unreachable {
                url: self.url.clone(),
                reason: format!("no answer within {REQUEST_TIMEOUT:?}"),
            }),
        }
    }

    async fn exchange(
        &self,
        config: Arc<ClientConfig>,
        method: Method,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), CaClientError> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| CaClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            })?;
        let tls = TlsConnector::from(config)
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|e| self.io_error(&e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| self.hyper_error(&e))?;
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, &self.authority)
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| CaClientError::BadResponse {
                reason: format!("cannot build the request: {e}"),
            })?;
        let exchange = async move {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_RESPONSE).collect().await;
            drop(sender);
            Ok::<_, hyper::Error>((status, body))
        };
        // Drive the connection alongside the exchange; it ends once the
        // exchange has dropped its sender.
        let (result, _) = tokio::join!(exchange, conn);
        let (status, body) = result.map_err(|e| self.hyper_error(&e))?;
        let body = body
            .map_err(|e| {
                if let Some(io) = source_io(e.as_ref()) {
                    self.io_error(io)
                } else {
                    CaClientError::BadResponse {
                        reason: format!("cannot read the response body: {e}"),
                    }
                }
            })?
            .to_bytes();
        Ok((status, body))
    }

    fn io_error(&self, e: &std::io::Error) -> CaClientError {
        let tls = e
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some());
        if tls {
            CaClientError::Tls {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        } else {
            CaClientError::Unreachable {
                url: self.url.clone(),
                reason: e.to_string(),
            }
        }
    }

    fn hyper_error(&self, e: &hyper::Error) -> CaClientError {
        match source_io(e) {
            Some(io) => self.io_error(io),
            None => CaClientError::BadResponse {
                reason: e.to_string(),
            },
        }
    }
}

/// The first `io::Error` in `e`'s source chain.
fn source_io<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a std::io::Error> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return Some(io);
        }
        cur = err.source();
    }
    None
}

fn builder(
    provider: &Arc<CryptoProvider>,
    roots: &Arc<RootCertStore>,
) -> Result<rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert>, String> {
    Ok(ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots.clone()))
}

fn with_alpn(mut config: ClientConfig) -> Arc<ClientConfig> {
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

fn ok_json<T: serde::de::DeserializeOwned>(
    status: StatusCode,
    bytes: &[u8],
) -> Result<T, CaClientError> {
    if !status.is_success() {
        let message = match serde_json::from_slice::<ErrorResponse>(bytes) {
            Ok(e) => e.error,
            Err(_) => status
                .canonical_reason()
                .unwrap_or("no error message")
                .to_owned(),
        };
        return Err(CaClientError::Refused {
            status: status.as_u16(),
            message,
        });
    }
    serde_json::from_slice(bytes).map_err(|e| CaClientError::BadResponse {
        reason: format!("unexpected JSON: {e}"),
    })
}

fn signed(status: StatusCode, bytes: &[u8]) -> Result<SignedCert, CaClientError> {
    let resp: SignedResponse = ok_json(status, bytes)?;
    let bad = |reason: String| CaClientError::BadResponse { reason };
    let certs = CertificateDer::pem_slice_iter(resp.cert_chain.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("cert_chain: {e}")))?;
    if certs.is_empty() {
        return Err(bad("cert_chain holds no certificate".to_owned()));
    }
    let not_after = humantime::parse_rfc3339_weak(&resp.not_after)
        .map_err(|e| bad(format!("not_after {:?}: {e}", resp.not_after)))?;
    Ok(SignedCert {
        cert_chain_pem: resp.cert_chain,
        bundle_pem: resp.bundle,
        not_after,
        serial_hex: resp.serial,
    })
}
