//! Default values of `usher.yaml` keys.

use std::net::SocketAddr;
use std::time::Duration;

pub(crate) fn inbound_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 15006))
}
pub(crate) fn outbound_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15001))
}
pub(crate) fn admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15000))
}
pub(crate) fn connect_timeout() -> Duration {
    Duration::from_secs(3)
}
pub(crate) fn drain_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn yes() -> bool {
    true
}
pub(crate) fn workers() -> usize {
    1
}
pub(crate) fn policy_query() -> String {
    "data.usher.authz.allow".to_string()
}
pub(crate) fn eval_timeout() -> Duration {
    Duration::from_millis(50)
}
/// Decisions kept per worker thread (`policy.decision_cache.entries`).
pub(crate) fn decision_cache_entries() -> usize {
    2048
}
pub(crate) fn sample_rate() -> f64 {
    1.0
}
pub(crate) fn renew_at() -> f64 {
    0.7
}
pub(crate) fn request_timeout() -> Duration {
    Duration::from_secs(60)
}
pub(crate) fn max_header_bytes() -> usize {
    16 * 1024
}
pub(crate) fn header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
pub(crate) fn idle_timeout() -> Duration {
    Duration::from_secs(300)
}
pub(crate) fn max_connections() -> usize {
    10_000
}
pub(crate) fn h2_streams() -> u32 {
    256
}
