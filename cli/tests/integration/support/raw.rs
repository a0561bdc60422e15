//! Raw HTTP for tests that must control every byte: an HTTP/1.1 app that
//! echoes the request head it received, a response reader, and a mesh peer
//! that writes raw HTTP/1.1 or exact HTTP/2 header blocks over real mTLS.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::StatusCode;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::client::tls_client;
use super::{id, Pki};

/// An HTTP/1.1 app that answers every request with the request head it
/// received, byte for byte, and accepts `Upgrade: h2c` as hypercorn does
/// (101, then closes: enough to see that the upgrade reached it).
pub(crate) struct EchoApp {
    pub addr: SocketAddr,
    heads: Arc<Mutex<Vec<String>>>,
}

impl EchoApp {
    pub(crate) async fn start() -> EchoApp {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let heads = Arc::new(Mutex::new(Vec::new()));
        let seen = heads.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(echo_conn(tcp, seen.clone()));
            }
        });
        EchoApp { addr, heads }
    }

    pub(crate) fn heads(&self) -> Vec<String> {
        self.heads.lock().unwrap().clone()
    }
}

async fn echo_conn(mut tcp: TcpStream, seen: Arc<Mutex<Vec<String>>>) {
    let mut buf = Vec::new();
    loop {
        let Some(head) = read_head(&mut tcp, &mut buf).await else {
            return;
        };
        let text = String::from_utf8_lossy(&head).into_owned();
        seen.lock().unwrap().push(text.clone());
        let body_len = header_value(&text, "content-length")
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            match tcp.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..body_len);
        if header_value(&text, "upgrade").is_some_and(|v| v.eq_ignore_ascii_case("h2c")) {
            let _ = tcp
                .write_all(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
                .await;
            return;
        }
        let resp = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        if tcp.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

/// Reads up to the end of a request or response head; leaves what follows
/// in `buf`.
pub(crate) async fn read_head<S: AsyncRead + Unpin>(
    io: &mut S,
    buf: &mut Vec<u8>,
) -> Option<Vec<u8>> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = buf[..end + 4].to_vec();
            buf.drain(..end + 4);
            return Some(head);
        }
        let mut chunk = [0u8; 4096];
        match io.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    }
}

/// The value of the first header `name` in a head (case-insensitive).
pub(crate) fn header_value<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (k, v) = line.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Header lines (lower-cased names) of a head.
pub(crate) fn header_names(head: &str) -> Vec<String> {
    head.lines()
        .skip(1)
        .filter_map(|l| {
            l.split_once(':')
                .map(|(k, _)| k.trim().to_ascii_lowercase())
        })
        .collect()
}

/// Status and body of one raw response (content-length framed, or to EOF).
pub(crate) async fn read_response<S: AsyncRead + Unpin>(io: &mut S) -> (u16, String) {
    let mut buf = Vec::new();
    let head = tokio::time::timeout(Duration::from_secs(10), read_head(io, &mut buf))
        .await
        .expect("a response within 10 s")
        .expect("a response head");
    let head = String::from_utf8_lossy(&head).into_owned();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    if status == 101 {
        return (status, head);
    }
    match header_value(&head, "content-length").and_then(|v| v.parse::<usize>().ok()) {
        Some(len) => {
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                let n = tokio::time::timeout(Duration::from_secs(10), io.read(&mut chunk))
                    .await
                    .expect("the body within 10 s")
                    .unwrap();
                assert!(n > 0, "body cut short");
                buf.extend_from_slice(&chunk[..n]);
            }
            buf.truncate(len);
        }
        None => {
            let _ = tokio::time::timeout(Duration::from_secs(10), io.read_to_end(&mut buf)).await;
        }
    }
    (status, String::from_utf8_lossy(&buf).into_owned())
}

/// The ALPN identifier of usher's multiplexed hop between sidecars.
pub(crate) const MUX_ALPN: &[u8] = b"usher-mux/h1";

/// A mesh peer: `name`'s certificate, talking TLS to an inbound listener
/// that presents b's identity.
pub(crate) struct MeshPeer {
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    h2_config: Arc<rustls::ClientConfig>,
    mux_config: Arc<rustls::ClientConfig>,
}

impl MeshPeer {
    pub(crate) fn new(pki: &Pki, name: &str, inbound: SocketAddr) -> MeshPeer {
        let certs = pki.issue(&format!("{name}-attacker"), &id(name));
        let bundle = certs.join("bundle.pem");
        MeshPeer {
            addr: inbound,
            config: tls_client(&bundle, Some(&certs), id("b"), b"http/1.1"),
            h2_config: tls_client(&bundle, Some(&certs), id("b"), b"h2"),
            mux_config: tls_client(&bundle, Some(&certs), id("b"), MUX_ALPN),
        }
    }

    async fn tls(
        &self,
        config: &Arc<rustls::ClientConfig>,
    ) -> tokio_rustls::client::TlsStream<TcpStream> {
        let tcp = TcpStream::connect(self.addr).await.unwrap();
        tokio_rustls::TlsConnector::from(config.clone())
            .connect(ServerName::try_from("usher").unwrap(), tcp)
            .await
            .unwrap()
    }

    /// A TLS connection with ALPN http/1.1, for a test to drive by hand.
    pub(crate) async fn tls_h1(&self) -> tokio_rustls::client::TlsStream<TcpStream> {
        self.tls(&self.config).await
    }

    /// Like [`MeshPeer::h1`], but a refused connection (closed at accept,
    /// handshake cut) is an error, not a panic.
    pub(crate) async fn try_h1(&self, raw: &str) -> Result<(u16, String), String> {
        let tcp = TcpStream::connect(self.addr)
            .await
            .map_err(|e| e.to_string())?;
        let mut tls = tokio::time::timeout(
            Duration::from_secs(5),
            tokio_rustls::TlsConnector::from(self.config.clone())
                .connect(ServerName::try_from("usher").unwrap(), tcp),
        )
        .await
        .map_err(|_| "handshake timed out".to_string())?
        .map_err(|e| e.to_string())?;
        tls.write_all(raw.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut buf = Vec::new();
        let head = tokio::time::timeout(Duration::from_secs(5), read_head(&mut tls, &mut buf))
            .await
            .map_err(|_| "no response".to_string())?
            .ok_or_else(|| "closed".to_string())?;
        let head = String::from_utf8_lossy(&head).into_owned();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("no status in {head:?}"))?;
        Ok((status, head))
    }

    /// Sends `raw` (a whole HTTP/1.1 request) and reads one response.
    pub(crate) async fn h1(&self, raw: &str) -> (u16, String) {
        let mut tls = self.tls(&self.config).await;
        tls.write_all(raw.as_bytes()).await.unwrap();
        read_response(&mut tls).await
    }

    /// One HTTP/2 request with exactly these headers; the status, or the
    /// stream error's reason when usher resets it.
    pub(crate) async fn h2(&self, req: http::Request<()>) -> Result<(StatusCode, String), String> {
        self.h2_over(&self.h2_config, req).await
    }

    /// Like [`MeshPeer::h2`], on a connection that negotiated usher's
    /// multiplexed hop, as a caller sidecar's does.
    pub(crate) async fn mux(&self, req: http::Request<()>) -> Result<(StatusCode, String), String> {
        let tls = self.tls(&self.mux_config).await;
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(MUX_ALPN));
        self.h2_on(tls, req).await
    }

    async fn h2_over(
        &self,
        config: &Arc<rustls::ClientConfig>,
        req: http::Request<()>,
    ) -> Result<(StatusCode, String), String> {
        let tls = self.tls(config).await;
        self.h2_on(tls, req).await
    }

    async fn h2_on(
        &self,
        tls: tokio_rustls::client::TlsStream<TcpStream>,
        req: http::Request<()>,
    ) -> Result<(StatusCode, String), String> {
        let (mut client, conn) = h2::client::handshake(tls)
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let (resp, _) = client.send_request(req, true).map_err(|e| e.to_string())?;
        let resp = resp.await.map_err(|e| e.to_string())?;
        let status = resp.status();
        let mut body = resp.into_body();
        let mut out = Vec::new();
        while let Some(chunk) = body.data().await {
            let chunk: Bytes = chunk.map_err(|e| e.to_string())?;
            let _ = body.flow_control().release_capacity(chunk.len());
            out.extend_from_slice(&chunk);
        }
        Ok((status, String::from_utf8_lossy(&out).into_owned()))
    }
}
