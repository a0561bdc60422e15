//! How the listeners treat what a caller can shape in a request: protocol
//! upgrades, the path (normalised before any check), forwarded headers and
//! the trust domains peers may come from.

use serde::{Deserialize, Deserializer};

use crate::sanitize::{EscapedSlashes, PathOptions};

/// `inbound.path_normalization`: every step is on by default.
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PathNormalizationConfig {
    /// `%41` → `A` for the unreserved characters (RFC 3986 §2.3).
    #[serde(default = "yes")]
    pub(crate) decode_unreserved: bool,
    /// `//` → `/`.
    #[serde(default = "yes")]
    pub(crate) merge_slashes: bool,
    /// `/a/../b` → `/b` (RFC 3986 §5.2.4).
    #[serde(default = "yes")]
    pub(crate) remove_dot_segments: bool,
    /// `%2F`, `%5C` and `\`: `reject` (400), `keep`, or `decode` to `/`.
    #[serde(default, deserialize_with = "escaped_slashes")]
    pub(crate) escaped_slashes: EscapedSlashes,
}

impl Default for PathNormalizationConfig {
    fn default() -> Self {
        PathNormalizationConfig {
            decode_unreserved: true,
            merge_slashes: true,
            remove_dot_segments: true,
            escaped_slashes: EscapedSlashes::Reject,
        }
    }
}

impl PathNormalizationConfig {
    pub(crate) fn options(&self) -> PathOptions {
        PathOptions {
            decode_unreserved: self.decode_unreserved,
            merge_slashes: self.merge_slashes,
            remove_dot_segments: self.remove_dot_segments,
            escaped_slashes: self.escaped_slashes,
        }
    }
}

fn yes() -> bool {
    true
}

fn escaped_slashes<'de, D: Deserializer<'de>>(d: D) -> Result<EscapedSlashes, D::Error> {
    let s = String::deserialize(d)?;
    match s.as_str() {
        "reject" => Ok(EscapedSlashes::Reject),
        "keep" => Ok(EscapedSlashes::Keep),
        "decode" => Ok(EscapedSlashes::Decode),
        _ => Err(serde::de::Error::custom(format!(
            "expected reject, keep or decode, got {s:?}"
        ))),
    }
}

/// The upgrades a listener passes on when none are configured: WebSocket,
/// as Envoy's `upgrade_configs` usually holds.
pub(crate) fn default_upgrades() -> Vec<String> {
    vec!["websocket".to_string()]
}

/// A list of `Upgrade` protocol names, lower-cased. `h2c` is refused: an
/// HTTP/2 connection made by upgrade is a tunnel no check of usher's sees.
pub(crate) fn upgrades<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    let mut out = Vec::with_capacity(list.len());
    for name in list {
        let lower = name.trim().to_ascii_lowercase();
        if lower == "h2c" {
            return Err(serde::de::Error::custom(
                "h2c cannot be allowed: an HTTP/2 connection upgraded from HTTP/1.1 carries requests that no check of usher's sees (use HTTP/2 directly)",
            ));
        }
        let token = !lower.is_empty()
            && lower
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(serde::de::Error::custom(format!(
                "expected an Upgrade protocol name such as websocket, got {name:?}"
            )));
        }
        out.push(lower);
    }
    Ok(out)
}

/// A list of trust domain names (`mesh.local`).
pub(crate) fn trust_domains<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    let list = Vec::<String>::deserialize(d)?;
    for td in &list {
        if usher_ca::SpiffeId::trust_domain_id(td).is_err() {
            return Err(serde::de::Error::custom(format!(
                "expected a trust domain name such as mesh.local, got {td:?}"
            )));
        }
    }
    Ok(list)
}

/// `inbound.app_protocol`: the HTTP version usher speaks to the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AppProtocol {
    /// HTTP/1.1 always (gRPC cannot work).
    Http1,
    /// HTTP/2 with prior knowledge (h2c) always.
    Http2,
    /// HTTP/2 for gRPC (`content-type: application/grpc…`), which needs it;
    /// HTTP/1.1 otherwise, which every HTTP app speaks, whatever version
    /// the caller used.
    #[default]
    Auto,
}

impl AppProtocol {
    pub(crate) fn version_for<B>(self, req: &http::Request<B>) -> http::Version {
        let h2 = match self {
            AppProtocol::Http1 => false,
            AppProtocol::Http2 => true,
            AppProtocol::Auto => is_grpc(req.headers()),
        };
        if h2 {
            http::Version::HTTP_2
        } else {
            http::Version::HTTP_11
        }
    }
}

fn is_grpc(headers: &http::HeaderMap) -> bool {
    headers.get(http::header::CONTENT_TYPE).is_some_and(|v| {
        let v = v.as_bytes();
        v.len() >= 16 && v[..16].eq_ignore_ascii_case(b"application/grpc")
    })
}
