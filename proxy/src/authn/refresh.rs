//! Keeping key sets current: files are reloaded when they change (their
//! folder is watched, as for policies), URLs are fetched every
//! `jwks_refresh`. A broken or unreachable key set is logged and the
//! current one kept.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Authn, Jwks};
use crate::watch::DirWatch;

/// Key set documents larger than this are refused.
const MAX_JWKS: usize = 1024 * 1024;

impl Authn {
    pub(crate) fn spawn_refresh(
        self: &Arc<Self>,
        shutdown: CancellationToken,
    ) -> Result<(), notify::Error> {
        for (index, c) in self.config.jwt.iter().enumerate() {
            if let Some(path) = c.jwks_file.clone() {
                let mut watch = DirWatch::new([path.as_path()])?;
                let authn = self.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            changed = watch.changed() => {
                                if changed.is_none() { break; }
                                let result = std::fs::read(&path)
                                    .map_err(|e| e.to_string())
                                    .and_then(|b| Jwks::parse(&b).map_err(|e| e.to_string()));
                                authn.install(index, result, &path.display().to_string());
                            }
                        }
                    }
                });
            }
            if let Some(url) = c.jwks_url.clone() {
                let authn = self.clone();
                let shutdown = shutdown.clone();
                let every = c.jwks_refresh;
                tokio::spawn(async move {
                    loop {
                        let result = fetch(&url).await;
                        let ok = result.is_ok();
                        authn.install(index, result, &url);
                        // Retry sooner while the issuer cannot be reached.
                        let wait = if ok {
                            every
                        } else {
                            every.min(Duration::from_secs(10))
                        };
                        tokio::select! {
                            _ = shutdown.cancelled() => break,
                            _ = tokio::time::sleep(wait) => {}
                        }
                    }
                });
            }
        }
        Ok(())
    }

    fn install(&self, index: usize, result: Result<Jwks, String>, source: &str) {
        let Some(issuer) = self.issuers.get(index) else {
            return;
        };
        match result {
            Ok(jwks) => {
                tracing::info!(issuer = %issuer.issuer, source, keys = jwks.keys.len(), "JWKS loaded");
                issuer.jwks.store(Arc::new(jwks));
            }
            Err(why) => {
                tracing::warn!(issuer = %issuer.issuer, source, error = %why, "JWKS not usable; keeping the current keys");
            }
        }
    }
}

/// GET the key set (http or https with the webpki roots).
async fn fetch(url: &str) -> Result<Jwks, String> {
    use http_body_util::{BodyExt, Empty, Limited};
    let uri: http::Uri = url.parse().map_err(|_| "bad URL".to_string())?;
    let https = uri.scheme_str() == Some("https");
    let host = uri.host().ok_or("no host")?.to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let fetch = async {
        let tcp = tokio::net::TcpStream::connect((host.as_str(), port))
            .await
            .map_err(|e| e.to_string())?;
        let req = http::Request::get(path)
            .header(http::header::HOST, host.as_str())
            .header(http::header::ACCEPT, "application/json")
            .body(Empty::<bytes::Bytes>::new())
            .map_err(|e| e.to_string())?;
        let resp = if https {
            let mut roots = rustls::RootCertStore::empty();
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name =
                rustls_pki_types::ServerName::try_from(host.clone()).map_err(|e| e.to_string())?;
            let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            send(hyper_util::rt::TokioIo::new(tls), req).await?
        } else {
            send(hyper_util::rt::TokioIo::new(tcp), req).await?
        };
        if !resp.status().is_success() {
            return Err(format!("HTTP {}", resp.status()));
        }
        let body = Limited::new(resp.into_body(), MAX_JWKS)
            .collect()
            .await
            .map_err(|_| "unreadable or over 1 MiB".to_string())?
            .to_bytes();
        Jwks::parse(&body).map_err(|e| e.to_string())
    };
    tokio::time::timeout(Duration::from_secs(10), fetch)
        .await
        .map_err(|_| "timed out".to_string())?
}

async fn send<I>(
    io: I,
    req: http::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<http::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    sender.send_request(req).await.map_err(|e| e.to_string())
}
