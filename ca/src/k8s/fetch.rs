//! Fetching the issuer's keys over HTTPS: OIDC discovery
//! (`<issuer>/.well-known/openid-configuration` → `jwks_uri`) and the JWKS
//! itself.
//!
//! HTTPS only (rustls with aws-lc-rs, the server verified against
//! `--k8s-ca-file` or, without it, the Mozilla roots), one request per
//! connection, no redirects followed, 10 s and 1 MiB at most. The bearer
//! token of `--k8s-api-token-file` (the CA's own service account token:
//! the API server serves discovery to authenticated service accounts) is
//! re-read for every request and sent only to the origins the operator
//! configured (the issuer's, the JWKS URL's), never to a `jwks_uri` that
//! discovery points elsewhere.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{ACCEPT, AUTHORIZATION, HOST};
use http::{Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// How long one fetch may take, connection and TLS handshake included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest document accepted.
const MAX_DOCUMENT: usize = 1024 * 1024;
/// Largest bearer token file read.
const MAX_BEARER: u64 = 64 * 1024;

/// An `https://host[:port]/path` URL, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct HttpsUrl {
    text: String,
    host: String,
    port: u16,
    authority: String,
    path_and_query: String,
}

impl HttpsUrl {
    /// Parses `url`; `what` names it in errors.
    pub(crate) fn parse(url: &str, what: &str) -> Result<HttpsUrl, String> {
        let bad = |reason: &str| format!("{what} {url:?}: {reason}");
        let uri: Uri = url.parse().map_err(|_| bad("not a URL"))?;
        if uri.scheme_str() != Some("https") {
            return Err(bad("the scheme must be https"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user information is not allowed"));
        }
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        ServerName::try_from(host.clone())
            .map_err(|_| bad("the host is neither a DNS name nor an IP address"))?;
        Ok(HttpsUrl {
            text: url.to_owned(),
            port: authority.port_u16().unwrap_or(443),
            authority: authority.to_string(),
            host,
            path_and_query: uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .filter(|p| !p.is_empty())
                .unwrap_or_else(|| "/".to_owned()),
        })
    }

    /// Scheme, host and port: where a bearer token may be sent.
    pub(crate) fn origin(&self) -> (String, u16) {
        (self.host.to_ascii_lowercase(), self.port)
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }
}

/// What fetches keys: TLS roots, and the bearer token with where it may go.
pub(crate) struct Fetcher {
    tls: Arc<ClientConfig>,
    bearer_file: Option<PathBuf>,
    bearer_origins: Vec<(String, u16)>,
}

impl Fetcher {
    /// A fetcher trusting the roots in `ca_pem` (or the Mozilla roots),
    /// sending the token in `bearer_file` to `bearer_origins` only.
    pub(crate) fn new(
        ca_pem: Option<&[u8]>,
        bearer_file: Option<PathBuf>,
        bearer_origins: Vec<(String, u16)>,
    ) -> Result<Fetcher, String> {
        let mut roots = RootCertStore::empty();
        match ca_pem {
            Some(pem) => {
                for der in CertificateDer::pem_slice_iter(pem) {
                    let der = der.map_err(|e| format!("--k8s-ca-file: {e}"))?;
                    roots
                        .add(der)
                        .map_err(|e| format!("--k8s-ca-file: a certificate is unusable: {e}"))?;
                }
                if roots.is_empty() {
                    return Err("--k8s-ca-file holds no CERTIFICATE block".to_owned());
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS for fetching keys: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Fetcher {
            tls: Arc::new(config),
            bearer_file,
            bearer_origins,
        })
    }

    /// GETs `url`; its body on a 200, an error otherwise (never quoting the
    /// body or the bearer token).
    pub(crate) async fn get(&self, url: &HttpsUrl) -> Result<Vec<u8>, String> {
        match tokio::time::timeout(FETCH_TIMEOUT, self.exchange(url)).await {
            Ok(result) => result.map_err(|e| format!("GET {}: {e}", url.as_str())),
            Err(_) => Err(format!(
                "GET {}: no answer within {FETCH_TIMEOUT:?}",
                url.as_str()
            )),
        }
    }

    fn bearer_for(&self, url: &HttpsUrl) -> Result<Option<String>, String> {
        let Some(path) = &self.bearer_file else {
            return Ok(None);
        };
        if !self.bearer_origins.contains(&url.origin()) {
            return Ok(None);
        }
        use std::io::Read as _;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_BEARER).read_to_string(&mut text))
            .map_err(|e| format!("cannot read --k8s-api-token-file {}: {e}", path.display()))?;
        let token = text.trim();
        if token.is_empty() {
            return Err(format!("--k8s-api-token-file {} is empty", path.display()));
        }
        Ok(Some(token.to_owned()))
    }

    async fn exchange(&self, url: &HttpsUrl) -> Result<Vec<u8>, String> {
        let bearer = self.bearer_for(url)?;
        let tcp = TcpStream::connect((url.host.as_str(), url.port))
            .await
            .map_err(|e| e.to_string())?;
        let name = ServerName::try_from(url.host.clone()).map_err(|e| e.to_string())?;
        let tls = TlsConnector::from(self.tls.clone())
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(|e| e.to_string())?;
        let mut req = Request::get(url.path_and_query.as_str())
            .header(HOST, &url.authority)
            .header(ACCEPT, "application/json");
        if let Some(token) = bearer {
            req = req.header(AUTHORIZATION, format!("Bearer {token}"));
        }
        let req = req
            .body(Empty::<Bytes>::new())
            .map_err(|_| "cannot build the request".to_owned())?;
        let exchange = async move {
            let resp = sender.send_request(req).await?;
            let status = resp.status();
            let body = Limited::new(resp.into_body(), MAX_DOCUMENT).collect().await;
            drop(sender);
            Ok::<_, hyper::Error>((status, body))
        };
        let (result, _) = tokio::join!(exchange, conn);
        let (status, body) = result.map_err(|e| e.to_string())?;
        if status != StatusCode::OK {
            return Err(format!("HTTP {status}"));
        }
        let body = body.map_err(|e| format!("cannot read the body: {e}"))?;
        Ok(body.to_bytes().to_vec())
    }

    /// OIDC discovery: the `jwks_uri` of `issuer`, whose document must
    /// name the same `issuer` (OpenID Connect Discovery 1.0, section 4.3).
    pub(crate) async fn discover(&self, issuer: &str) -> Result<HttpsUrl, String> {
        let url = HttpsUrl::parse(
            &format!(
                "{}/.well-known/openid-configuration",
                issuer.trim_end_matches('/')
            ),
            "--k8s-issuer",
        )?;
        let body = self.get(&url).await?;
        #[derive(serde::Deserialize)]
        struct Discovery {
            issuer: String,
            jwks_uri: String,
        }
        let doc: Discovery = serde_json::from_slice(&body).map_err(|e| {
            format!(
                "{}: not an OpenID provider configuration with \"issuer\" and \"jwks_uri\" \
                 (line {} column {})",
                url.as_str(),
                e.line(),
                e.column()
            )
        })?;
        if doc.issuer != issuer {
            return Err(format!(
                "{}: names the issuer {:?}, not {issuer:?}",
                url.as_str(),
                doc.issuer
            ));
        }
        HttpsUrl::parse(&doc.jwks_uri, "the discovered jwks_uri")
    }
}
