//! Deserializers whose errors say what was expected, with an example.

use std::net::SocketAddr;
use std::time::Duration;

use serde::de::Error;
use serde::{Deserialize, Deserializer};
use usher_ca::SpiffeId;

pub(crate) fn socket_addr<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let s = String::deserialize(d)?;
    s.parse().map_err(|_| {
        D::Error::custom(format!(
            "expected an IP address and port such as 127.0.0.1:8080, got {s:?}"
        ))
    })
}

pub(crate) fn opt_socket_addr<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<SocketAddr>, D::Error> {
    socket_addr(d).map(Some)
}

pub(crate) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|_| {
        D::Error::custom(format!(
            "expected a duration such as 500ms, 3s or 1m, got {s:?}"
        ))
    })
}

pub(crate) fn workers<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 1..=256) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number of worker threads from 1 to 256, got {n}"
        ))),
    }
}

pub(crate) fn query<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s.starts_with("data.")
        && s.split('.').all(|part| {
            !part.is_empty() && part.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
        });
    if ok {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "expected a rule path such as data.usher.authz.allow, got {s:?}"
        )))
    }
}

pub(crate) fn fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let f = f64::deserialize(d)?;
    if (0.0..=1.0).contains(&f) {
        Ok(f)
    } else {
        Err(D::Error::custom(format!(
            "expected a fraction from 0.0 to 1.0, got {f}"
        )))
    }
}

pub(crate) fn header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 8192..=1_048_576) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a size from 8192 to 1048576 bytes, got {n}"
        ))),
    }
}

pub(crate) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 1..=1_000_000) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number from 1 to 1000000, got {n}"
        ))),
    }
}

/// Decisions kept per worker thread: 0 (off) to 1,000,000.
pub(crate) fn cache_entries<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 0..=1_000_000) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number of decisions from 0 (off) to 1000000, got {n}"
        ))),
    }
}

pub(crate) fn count_u32<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u64::deserialize(d)?;
    match u32::try_from(n) {
        Ok(n @ 1..=100_000) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number from 1 to 100000, got {n}"
        ))),
    }
}

pub(crate) fn renew_fraction<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let f = f64::deserialize(d)?;
    if (0.1..=0.95).contains(&f) {
        Ok(f)
    } else {
        Err(D::Error::custom(format!(
            "expected a fraction of the certificate lifetime from 0.1 to 0.95, got {f}"
        )))
    }
}

pub(crate) fn https_url<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    let ok = s
        .parse::<http::Uri>()
        .ok()
        .filter(|u| u.scheme_str() == Some("https") && u.authority().is_some())
        .is_some();
    if ok {
        Ok(s)
    } else {
        Err(D::Error::custom(format!(
            "expected the CA server's URL such as https://ca.mesh:8443, got {s:?}"
        )))
    }
}

pub(crate) fn body_limit<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = u64::deserialize(d)?;
    match usize::try_from(n) {
        Ok(n @ 1..=1_048_576) => Ok(n),
        _ => Err(D::Error::custom(format!(
            "expected a number of bytes from 1 to 1048576 (1 MiB), got {n}"
        ))),
    }
}

pub(crate) fn spiffe_id<'de, D: Deserializer<'de>>(d: D) -> Result<SpiffeId, D::Error> {
    let s = String::deserialize(d)?;
    SpiffeId::parse(&s).map_err(|e| {
        D::Error::custom(format!(
            "expected a SPIFFE ID such as spiffe://mesh.local/ns/shop/sa/payments: {e}"
        ))
    })
}

pub(crate) fn host<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if valid_host(&s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(D::Error::custom(format!(
            "expected a host name such as payments or payments.shop.svc (no port, no scheme), got {s:?}"
        )))
    }
}

pub(crate) fn host_port<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let s = String::deserialize(d)?;
    if s.parse::<SocketAddr>().is_ok() {
        return Ok(s);
    }
    match s.rsplit_once(':') {
        Some((host, port)) if valid_host(host) && port.parse::<u16>().is_ok() => Ok(s),
        _ => Err(D::Error::custom(format!(
            "expected host:port such as 127.0.0.1:15006 or payments.shop.svc:15006, got {s:?}"
        ))),
    }
}

/// A DNS-style name: labels of letters, digits, '-' and '_'.
pub(super) fn valid_host(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}
