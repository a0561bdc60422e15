//! Which protocol a connection speaks, from its first bytes.
//!
//! The client speaks first in TLS (a ClientHello record), HTTP/2 with prior
//! knowledge (the connection preface) and HTTP/1 (a request line); anything
//! else — a database or broker protocol, or a server that speaks first
//! (SMTP, MySQL), which shows as silence — is opaque.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// What the first bytes say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Protocol {
    /// A TLS handshake record (0x16, then version 3.x).
    Tls,
    /// The HTTP/2 connection preface (`PRI * HTTP/2.0...`).
    H2c,
    /// An HTTP/1 request line (`METHOD SP ...`).
    Http1,
    /// Anything else, or nothing within the timeout.
    Opaque,
}

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// The longest method usher reads as HTTP/1 (`PROPPATCH`, `MKCALENDAR`,
/// extension methods); a longer token is not HTTP.
const MAX_METHOD: usize = 20;
/// Enough bytes to decide in every case.
pub(crate) const MAX_PREFIX: usize = 64;

/// `Some(protocol)` when `prefix` decides, `None` when more bytes are
/// needed.
pub(crate) fn classify(prefix: &[u8]) -> Option<Protocol> {
    let &first = prefix.first()?;
    if first == 0x16 {
        return match prefix.get(1) {
            None => None,
            Some(3) => Some(Protocol::Tls),
            Some(_) => Some(Protocol::Opaque),
        };
    }
    let n = prefix.len().min(H2_PREFACE.len());
    if prefix[..n] == H2_PREFACE[..n] {
        return (n == H2_PREFACE.len()).then_some(Protocol::H2c);
    }
    // A request line: a method (a token, RFC 9110 tchar), one space, and
    // a request target that starts like one (`/path`, `*`, `http://...`).
    // Text protocols that also start with a word and a space (Redis'
    // inline `set k v`, memcached's `get k`) are not taken for HTTP. Empty
    // lines before the request line are allowed (RFC 9112 §2.2).
    let mut line = prefix;
    while let Some(rest) = line.strip_prefix(b"\r\n") {
        line = rest;
    }
    if line.is_empty() {
        return None;
    }
    for (i, &b) in line.iter().enumerate() {
        if b == b' ' {
            if i == 0 {
                return Some(Protocol::Opaque);
            }
            return match line.get(i + 1) {
                None => None,
                Some(b'/' | b'*' | b'h' | b'H') => Some(Protocol::Http1),
                Some(_) => Some(Protocol::Opaque),
            };
        }
        if !is_tchar(b) || i >= MAX_METHOD {
            return Some(Protocol::Opaque);
        }
    }
    None
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Reads from `io` until its protocol is known (at most [`MAX_PREFIX`]
/// bytes, or silence for `timeout`); the bytes read, to be replayed with
/// [`super::prefixed::PrefixedIo`].
pub(crate) async fn detect<T: AsyncRead + Unpin>(
    io: &mut T,
    timeout: Duration,
) -> std::io::Result<(Protocol, Bytes)> {
    let mut buf = BytesMut::with_capacity(MAX_PREFIX);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(p) = classify(&buf) {
            return Ok((p, buf.freeze()));
        }
        if buf.len() >= MAX_PREFIX {
            return Ok((Protocol::Opaque, buf.freeze()));
        }
        match tokio::time::timeout_at(deadline, io.read_buf(&mut buf)).await {
            // Silence: the server may be the one to speak first.
            Err(_) => return Ok((Protocol::Opaque, buf.freeze())),
            Ok(Ok(0)) => return Ok((Protocol::Opaque, buf.freeze())),
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[test]
    fn first_bytes_decide() {
        assert_eq!(classify(b"\x16\x03\x01\x02\x00"), Some(Protocol::Tls));
        assert_eq!(classify(b"\x16"), None);
        assert_eq!(classify(b"\x16\x00"), Some(Protocol::Opaque));
        assert_eq!(classify(H2_PREFACE), Some(Protocol::H2c));
        assert_eq!(classify(b"PRI * HTTP/2.0\r\n"), None);
        assert_eq!(classify(b"PRI * HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"PROPFIND /x HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"GE"), None);
        assert_eq!(classify(b""), None);
        assert_eq!(classify(b" GET /"), Some(Protocol::Opaque));
        // Text protocols that start with a word and a space.
        assert_eq!(classify(b"set k v\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"get k\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"GET "), None);
        assert_eq!(
            classify(b"GET http://x/ HTTP/1.1\r\n"),
            Some(Protocol::Http1)
        );
        assert_eq!(classify(b"OPTIONS * HTTP/1.1\r\n"), Some(Protocol::Http1));
        // Empty lines before the request line.
        assert_eq!(classify(b"\r\nGET / HTTP/1.1\r\n"), Some(Protocol::Http1));
        assert_eq!(classify(b"\r\n"), None);
        // PostgreSQL's startup message, Redis' RESP, MQTT CONNECT.
        assert_eq!(
            classify(b"\x00\x00\x00\x08\x04\xd2\x16\x2f"),
            Some(Protocol::Opaque)
        );
        assert_eq!(classify(b"*1\r\n$4\r\nPING\r\n"), Some(Protocol::Opaque));
        assert_eq!(classify(b"\x10\x1a\x00\x04MQTT"), Some(Protocol::Opaque));
        assert_eq!(
            classify(b"AVERYLONGTOKENTHATISNOTAMETHOD x"),
            Some(Protocol::Opaque)
        );
    }

    #[tokio::test]
    async fn bytes_split_across_writes_and_silence() {
        let (mut client, mut server) = tokio::io::duplex(256);
        let writer = tokio::spawn(async move {
            client.write_all(b"PRI * HTTP/2").await.unwrap();
            client.flush().await.unwrap();
            tokio::task::yield_now().await;
            client.write_all(b".0\r\n\r\nSM\r\n\r\nrest").await.unwrap();
            client
        });
        let (p, prefix) = detect(&mut server, Duration::from_secs(5)).await.unwrap();
        assert_eq!(p, Protocol::H2c);
        assert!(prefix.starts_with(H2_PREFACE));
        let _client = writer.await.unwrap();

        // A server-speaks-first protocol: nothing comes, the timeout says
        // opaque with no bytes consumed.
        let (_quiet, mut server) = tokio::io::duplex(64);
        let (p, prefix) = detect(&mut server, Duration::from_millis(20))
            .await
            .unwrap();
        assert_eq!((p, prefix.len()), (Protocol::Opaque, 0));
    }
}
