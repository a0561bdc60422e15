//! `server:`: the limits every listener applies to what a client can make
//! usher hold (connections, request heads, slow or idle clients, HTTP/2
//! streams). They govern the inbound, outbound and admin listeners alike,
//! so they live in a section of their own.
//!
//! They used to be spelled under `inbound:`, which read as if they were
//! inbound-only. The old spelling still works, with a warning (logged at
//! start, printed by `usher check`); giving a key in both places is an
//! error rather than a silent pick, since the two could disagree.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::{de, defaults};

/// The resolved limits (`server.*`, or their old spelling under
/// `inbound.*`, or the defaults).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ServerConfig {
    /// Connections served at once per listener (inbound, outbound); more
    /// are closed at accept. The admin listener has its own small cap.
    pub(crate) max_connections: usize,
    /// Largest request head: 431 beyond it (HTTP/2: header list size).
    pub(crate) max_header_bytes: usize,
    /// A request head must arrive within this after the connection is
    /// ready for one (slowloris); the connection is closed otherwise. For
    /// HTTP/1 this also bounds how long a keep-alive connection may idle.
    pub(crate) header_read_timeout: Duration,
    /// A connection with no traffic for this long is closed.
    pub(crate) idle_timeout: Duration,
    /// Streams one HTTP/2 connection may have open at once.
    pub(crate) http2_max_concurrent_streams: u32,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            max_connections: defaults::max_connections(),
            max_header_bytes: defaults::max_header_bytes(),
            header_read_timeout: defaults::header_read_timeout(),
            idle_timeout: defaults::idle_timeout(),
            http2_max_concurrent_streams: defaults::h2_streams(),
        }
    }
}

/// The server keys as written, in `server:` or (old spelling) `inbound:`;
/// absent ones are `None`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ServerKeys {
    #[serde(default, deserialize_with = "count")]
    pub(super) max_connections: Option<usize>,
    #[serde(default, deserialize_with = "header_bytes")]
    pub(super) max_header_bytes: Option<usize>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) header_read_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "duration")]
    pub(super) idle_timeout: Option<Duration>,
    #[serde(default, deserialize_with = "count_u32")]
    pub(super) http2_max_concurrent_streams: Option<u32>,
}

pub(super) fn count<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    de::count(d).map(Some)
}

pub(super) fn header_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<Option<usize>, D::Error> {
    de::header_bytes(d).map(Some)
}

pub(super) fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    de::duration(d).map(Some)
}

pub(super) fn count_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    de::count_u32(d).map(Some)
}

/// Something in the config that works but should be changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ConfigWarning {
    /// The key as written (`inbound.max_connections`).
    pub(crate) key: String,
    pub(crate) message: String,
}

impl ServerKeys {
    /// `self` (`server:`) over `old` (the same keys under `inbound:`) over
    /// the defaults. A key given in both places: `Err((key, message))`.
    pub(super) fn resolve(
        &self,
        old: &ServerKeys,
        warnings: &mut Vec<ConfigWarning>,
    ) -> Result<ServerConfig, (String, String)> {
        let d = ServerConfig::default();
        Ok(ServerConfig {
            max_connections: pick(
                "max_connections",
                self.max_connections,
                old.max_connections,
                d.max_connections,
                warnings,
            )?,
            max_header_bytes: pick(
                "max_header_bytes",
                self.max_header_bytes,
                old.max_header_bytes,
                d.max_header_bytes,
                warnings,
            )?,
            header_read_timeout: pick(
                "header_read_timeout",
                self.header_read_timeout,
                old.header_read_timeout,
                d.header_read_timeout,
                warnings,
            )?,
            idle_timeout: pick(
                "idle_timeout",
                self.idle_timeout,
                old.idle_timeout,
                d.idle_timeout,
                warnings,
            )?,
            http2_max_concurrent_streams: pick(
                "http2_max_concurrent_streams",
                self.http2_max_concurrent_streams,
                old.http2_max_concurrent_streams,
                d.http2_max_concurrent_streams,
                warnings,
            )?,
        })
    }
}

fn pick<T>(
    name: &str,
    new: Option<T>,
    old: Option<T>,
    default: T,
    warnings: &mut Vec<ConfigWarning>,
) -> Result<T, (String, String)> {
    match (new, old) {
        (Some(_), Some(_)) => Err((
            format!("inbound.{name}"),
            format!(
                "given twice: here and as server.{name}; expected it once, as server.{name} (it applies to every listener)"
            ),
        )),
        (Some(v), None) => Ok(v),
        (None, Some(v)) => {
            warnings.push(ConfigWarning {
                key: format!("inbound.{name}"),
                message: format!(
                    "moved to server.{name} (it applies to every listener, not just inbound); the old spelling still works"
                ),
            });
            Ok(v)
        }
        (None, None) => Ok(default),
    }
}
