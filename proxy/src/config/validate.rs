//! The checks a config must pass beyond its shape: they span keys (two
//! listeners on one address, a route host given twice) or need a key's
//! context (an empty issuer list). Every error names the key. A check that
//! concerns one section alone lives beside its type (`check` on
//! [`AuthenticationConfig`](super::AuthenticationConfig),
//! [`RateLimitConfig`](super::RateLimitConfig) and
//! [`PolicyConfig`](super::PolicyConfig)); [`Config::validate`] runs them
//! all, in a fixed order, and reports the first problem.

use std::net::SocketAddr;
use std::path::Path;

use super::{Config, ConfigError};

impl Config {
    pub(super) fn validate(&self, file: &Path) -> Result<(), ConfigError> {
        let err = |key: String, message: String| ConfigError {
            file: file.to_path_buf(),
            key,
            message,
        };
        if self.service.trim().is_empty() {
            return Err(err(
                "service".into(),
                "expected a non-empty service name".into(),
            ));
        }
        for (i, route) in self.outbound.routes.iter().enumerate() {
            if let Some(j) = self.outbound.routes[..i]
                .iter()
                .position(|r| r.host == route.host)
            {
                return Err(err(
                    format!("outbound.routes[{i}].host"),
                    format!(
                        "host {:?} is already routed by outbound.routes[{j}]; each host may appear once",
                        route.host
                    ),
                ));
            }
            if route.identity.path().is_empty() {
                return Err(err(
                    format!("outbound.routes[{i}].identity"),
                    "expected a workload SPIFFE ID with a path (spiffe://td/ns/NS/sa/SA), not a bare trust domain".into(),
                ));
            }
        }
        // The outbound listener sends what it gets on over mTLS with this
        // workload's identity: reachable from outside the pod it would be
        // an open door into the mesh (and `usher init-net` never redirects
        // its port).
        let outbound = std::iter::once(("outbound.listen", self.outbound.listen)).chain(
            self.outbound
                .listen_ipv6
                .map(|a| ("outbound.listen_ipv6", a)),
        );
        for (key, addr) in outbound {
            if !addr.ip().is_loopback() {
                return Err(err(
                    key.into(),
                    format!(
                        "{addr} is not a loopback address: the outbound listener must be reachable \
                         only from inside the pod (127.0.0.1:15001, [::1]:15001)"
                    ),
                ));
            }
        }
        let listeners = [
            ("inbound.listen", self.inbound.listen),
            ("outbound.listen", self.outbound.listen),
            ("admin.listen", self.admin.listen),
        ];
        for (i, (key, addr)) in listeners.iter().enumerate() {
            if addr.port() == 0 {
                continue; // ephemeral: the OS picks distinct ports
            }
            if let Some((other, _)) = listeners[..i].iter().find(|(_, a)| a == addr) {
                return Err(err(
                    (*key).into(),
                    format!(
                        "{addr} is already used by {other}; each listener needs its own address"
                    ),
                ));
            }
        }
        // The checks of one section, beside its type.
        if let Some(authn) = &self.authentication {
            authn.check().map_err(|(key, message)| err(key, message))?;
        }
        if let Some(rl) = &self.rate_limit {
            rl.check().map_err(|(key, message)| err(key, message))?;
        }
        if let Some(policy) = &self.policy {
            policy.check().map_err(|(key, message)| err(key, message))?;
        }
        if app_is_inbound_listener(self.inbound.app, self.inbound.listen) {
            return Err(err(
                "inbound.app".into(),
                "the app's address must differ from inbound.listen (that would loop)".into(),
            ));
        }
        Ok(())
    }
}

/// yaml_serde prefixes its messages with the path of the enclosing map
/// (`inbound: unknown field ...`), which the key already says; and a missing
/// field is reported at its parent, so name the field itself as the key.
pub(super) fn tidy_error(path: String, message: String) -> (String, String) {
    let mut message = message;
    if let Some((prefix, rest)) = message.split_once(": ") {
        if !prefix.contains(' ') && path.starts_with(prefix) {
            message = rest.to_string();
        }
    }
    // A check of a whole map that names the key inside it it is about.
    if let Some((field, rest)) = message
        .strip_prefix("at `")
        .and_then(|m| m.split_once("`: "))
    {
        let key = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        return (key, rest.to_string());
    }
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.split('`').next())
    {
        let key = if path.is_empty() {
            field.to_string()
        } else {
            format!("{path}.{field}")
        };
        let message = message.replace(&format!("missing field `{field}`"), "required, but missing");
        return (key, message);
    }
    (path, message)
}

/// Whether connecting to `app` would reach the inbound listener itself. A
/// wildcard listener (`0.0.0.0:P`, `[::]:P`) also owns every loopback
/// address on port P, so `127.0.0.1:P` is it too.
fn app_is_inbound_listener(app: SocketAddr, listen: SocketAddr) -> bool {
    app == listen
        || (app.port() == listen.port()
            && listen.ip().is_unspecified()
            && (app.ip().is_loopback() || app.ip().is_unspecified()))
}
