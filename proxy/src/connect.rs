//! Errors from opening a connection to the next hop, shared by the app
//! connector (inbound) and the mTLS peer connector (outbound), and the
//! mapping of a failed forward to a [`ProxyError`].

use std::io;

use crate::forward::find_cause;
use crate::identity::IdentityMismatch;
use crate::respond::ProxyError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    #[error("connection timed out")]
    Timeout,
    #[error("TCP connect failed: {0}")]
    Tcp(io::Error),
    #[error("cannot resolve {address}: {source}")]
    Resolve { address: String, source: io::Error },
    #[error("no route for host {0:?}")]
    NoRoute(String),
    #[error(transparent)]
    IdentityMismatch(IdentityMismatch),
    #[error("TLS handshake failed: {0}")]
    Tls(io::Error),
}

impl ConnectError {
    /// Classifies a failed TLS handshake: a peer with the wrong SPIFFE ID
    /// is reported as such, everything else as a TLS failure.
    pub(crate) fn from_handshake(err: io::Error) -> ConnectError {
        let mismatch = err
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .and_then(|tls| match tls {
                rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
                    other.0.downcast_ref::<IdentityMismatch>().cloned()
                }
                _ => None,
            });
        match mismatch {
            Some(m) => ConnectError::IdentityMismatch(m),
            None => ConnectError::Tls(err),
        }
    }
}

/// Which side of the sidecar a forward went to; decides the wording.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Hop {
    App,
    Peer,
}

/// Maps a failed forward to what the client is told.
pub(crate) fn classify(failed: &crate::forward::ForwardError, hop: Hop) -> ProxyError {
    use crate::body::BodyFailure;
    match &failed.body {
        Some(BodyFailure::TooLarge(max)) => return ProxyError::BodyTooLarge { max: *max },
        Some(BodyFailure::Read(reason)) => {
            return ProxyError::BodyUnreadable {
                reason: reason.clone(),
            }
        }
        None => {}
    }
    let err = &failed.error;
    let reason = error_chain(err);
    match find_cause::<crate::body::BodyError>(err) {
        Some(crate::body::BodyError::TooLarge(max)) => {
            return ProxyError::BodyTooLarge { max: *max };
        }
        // Reading the caller's body failed: the caller's error, not the
        // next hop's.
        Some(crate::body::BodyError::Read(_)) => return ProxyError::BodyUnreadable { reason },
        None => {}
    }
    let connect = find_cause::<ConnectError>(err);
    match (hop, connect) {
        (Hop::Peer, Some(ConnectError::IdentityMismatch(m))) => {
            ProxyError::PeerIdentityMismatch(m.clone())
        }
        (Hop::Peer, Some(ConnectError::Tls(_))) => ProxyError::PeerTls { reason },
        (Hop::Peer, Some(ConnectError::NoRoute(host))) => {
            ProxyError::NoRoute { host: host.clone() }
        }
        (Hop::App, _) if err.is_connect() => ProxyError::AppUnavailable { reason },
        (Hop::Peer, _) if err.is_connect() => ProxyError::PeerUnavailable { reason },
        (Hop::App, _) => ProxyError::AppFailed { reason },
        (Hop::Peer, _) => ProxyError::PeerFailed { reason },
    }
}

/// The whole source chain on one line, for the log (never for clients).
pub fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        out.push_str(": ");
        out.push_str(&e.to_string());
        cur = e.source();
    }
    out
}

/// Why a TLS handshake failed, as a metric label: a fixed, small set.
pub(crate) fn tls_failure_reason(err: &io::Error) -> &'static str {
    use rustls::{CertificateError, Error as TlsErr};
    if err.kind() == io::ErrorKind::TimedOut {
        return "timeout";
    }
    let Some(tls) = err.get_ref().and_then(|e| e.downcast_ref::<TlsErr>()) else {
        return match err.kind() {
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => "closed",
            io::ErrorKind::InvalidData => "protocol",
            _ => "io",
        };
    };
    match tls {
        TlsErr::NoCertificatesPresented => "no_client_cert",
        TlsErr::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => "unknown_ca",
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => "expired",
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "not_yet_valid"
            }
            CertificateError::Revoked => "revoked",
            CertificateError::Other(other)
                if other.0.downcast_ref::<IdentityMismatch>().is_some() =>
            {
                "identity_mismatch"
            }
            _ => "bad_certificate",
        },
        TlsErr::AlertReceived(_) => "alert_received",
        TlsErr::PeerIncompatible(_) | TlsErr::NoApplicationProtocol => "incompatible",
        TlsErr::InvalidMessage(_)
        | TlsErr::InappropriateMessage { .. }
        | TlsErr::InappropriateHandshakeMessage { .. } => "protocol",
        _ => "other",
    }
}
