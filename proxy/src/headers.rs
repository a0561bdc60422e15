//! Header rewriting shared by both directions: hop-by-hop headers, the
//! request's authority, and identity headers callers must not be able to set.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE,
};
use http::{Request, Version};

/// Envoy's client-certificate header: `By=<our id>;URI=<peer id>`.
pub static XFCC: HeaderName = HeaderName::from_static("x-forwarded-client-cert");

/// Headers that carry identity and are only trusted when usher sets them;
/// whatever a caller sent under these names is removed first.
pub(crate) static SPOOFABLE: &[&HeaderName] = &[&XFCC];

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// True for an HTTP/1.1 request asking to switch protocols (WebSocket...).
pub(crate) fn is_upgrade<B>(req: &Request<B>) -> bool {
    req.version() == Version::HTTP_11
        && req.headers().contains_key(UPGRADE)
        && connection_has(req.headers(), "upgrade")
}

fn connection_has(headers: &HeaderMap, token: &str) -> bool {
    headers.get_all(CONNECTION).iter().any(|v| {
        v.to_str()
            .map(|s| s.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
            .unwrap_or(false)
    })
}

/// Removes the headers that belong to one hop (RFC 9110 §7.6.1), including
/// any named in `Connection`. With `upgrade`, `Connection: upgrade` and
/// `Upgrade` are kept so that the next hop can switch protocols too.
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    if headers.contains_key(CONNECTION) {
        // Names listed in Connection are hop-by-hop too. Almost always the
        // list holds only the usual tokens (keep-alive, close, upgrade, TE),
        // which are handled below; only other names need collecting, so the
        // common case allocates nothing.
        // Bytes, not `str`: one non-ASCII token must not hide the others
        // (a fuzzing finding).
        let custom = |t: &&[u8]| {
            let t = t.trim_ascii();
            !(t.eq_ignore_ascii_case(b"keep-alive")
                || t.eq_ignore_ascii_case(b"close")
                || t.eq_ignore_ascii_case(b"upgrade")
                // TE is decided below (`Connection: TE` is how HTTP/1.1 sends it)
                || t.eq_ignore_ascii_case(b"te")
                || t.is_empty())
        };
        let tokens = || {
            headers
                .get_all(CONNECTION)
                .iter()
                .flat_map(|v| v.as_bytes().split(|b| *b == b','))
        };
        if tokens().any(|t| custom(&t)) {
            let named: Vec<HeaderName> = tokens()
                .filter(custom)
                .filter_map(|t| HeaderName::from_bytes(t.trim_ascii()).ok())
                .collect();
            for name in named {
                headers.remove(&name);
            }
        }
        headers.remove(CONNECTION);
    }
    headers.remove(&KEEP_ALIVE);
    headers.remove(&PROXY_CONNECTION);
    headers.remove(TRANSFER_ENCODING);
    if upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(UPGRADE);
    }
    // `TE: trailers` is how gRPC says it understands trailers; keep exactly
    // that, as one value (HTTP/2 refuses any other TE value, RFC 9113 §8.2.2).
    if headers.contains_key(TE) {
        let trailers = headers.get_all(TE).iter().any(|v| {
            v.to_str().is_ok_and(|s| {
                s.split(',').any(|t| {
                    t.split(';')
                        .next()
                        .is_some_and(|c| c.trim().eq_ignore_ascii_case("trailers"))
                })
            })
        });
        headers.remove(TE);
        if trailers {
            headers.insert(TE, HeaderValue::from_static("trailers"));
        }
    }
}

/// Removes every identity header a caller may have forged.
pub fn strip_spoofable(headers: &mut HeaderMap) {
    for name in SPOOFABLE {
        headers.remove(*name);
    }
}

/// The request's authority: the URI's (HTTP/2, absolute-form) or the Host
/// header's (HTTP/1 origin-form).
pub fn authority<B>(req: &Request<B>) -> Option<&str> {
    match req.uri().authority() {
        Some(a) => Some(a.as_str()),
        None => req.headers().get(HOST).and_then(|h| h.to_str().ok()),
    }
}

/// [`authority`] for a request already split into parts.
pub(crate) fn authority_of_parts(parts: &http::request::Parts) -> Option<&str> {
    match parts.uri.authority() {
        Some(a) => Some(a.as_str()),
        None => parts.headers.get(HOST).and_then(|h| h.to_str().ok()),
    }
}

/// `host[:port]` → `host`; IPv6 literals keep their brackets off.
pub fn host_of(authority: &str) -> &str {
    // Drop any userinfo (not valid in Host, but possible in an authority).
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(h, _)| h);
    }
    authority.split_once(':').map_or(authority, |(h, _)| h)
}

#[cfg(test)]
mod tests;
