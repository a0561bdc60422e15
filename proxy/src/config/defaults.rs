//! Default values of `usher.yaml` keys.

use std::net::SocketAddr;
use std::time::Duration;

pub fn inbound_listen() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 15006))
}
pub fn outbound_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15001))
}
pub fn admin_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 15000))
}
pub fn connect_timeout() -> Duration {
    Duration::from_secs(3)
}
pub fn drain_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn yes() -> bool {
    true
}
pub fn workers() -> usize {
    2
}
pub fn policy_query() -> String {
    "data.usher.authz.allow".to_string()
}
pub fn eval_timeout() -> Duration {
    Duration::from_millis(50)
}
pub fn sample_rate() -> f64 {
    1.0
}
pub fn renew_at() -> f64 {
    0.7
}
pub fn request_timeout() -> Duration {
    Duration::from_secs(60)
}
pub fn max_header_bytes() -> usize {
    16 * 1024
}
pub fn header_read_timeout() -> Duration {
    Duration::from_secs(30)
}
pub fn idle_timeout() -> Duration {
    Duration::from_secs(300)
}
pub fn max_connections() -> usize {
    10_000
}
pub fn h2_streams() -> u32 {
    256
}
