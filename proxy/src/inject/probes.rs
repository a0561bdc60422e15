//! The app's HTTP probes, pointed at usher's admin port.
//!
//! Once the pod's TCP is captured, the kubelet's probe of an app port
//! reaches usher's inbound listener (which wants mTLS) instead of the app.
//! Each `httpGet` probe of an app container is rewritten to
//! `GET :15000/app-probe/<container>/<probe>`, and the original target goes
//! to the sidecar in `USHER_APP_PROBES`; usher makes the probe on loopback
//! and returns the app's status (see `admin::app_probe`). HTTPS probes
//! cannot be made that way without usher skipping certificate checks: they
//! are refused unless the operator leaves the port uncaptured
//! (`usher.io/skip-inbound-ports`, which also lets every caller of that
//! port past mTLS — a choice usher will not make silently);
//! `tcpSocket` and `grpc` probes are left as they are (a TCP probe then
//! checks that usher accepts connections).

use std::collections::BTreeMap;

use serde_json::json;
use yaml_serde::Value;

use super::FieldError;

pub(crate) const KINDS: [&str; 3] = ["startupProbe", "livenessProbe", "readinessProbe"];

/// What rewriting found.
#[derive(Default)]
pub(crate) struct Rewritten {
    /// `USHER_APP_PROBES`'s value, by `<container>/<probe>`.
    pub(crate) targets: BTreeMap<String, serde_json::Value>,
    /// The original `httpGet`s, by `<container>/<probe>`, for uninject.
    pub(crate) originals: BTreeMap<String, serde_json::Value>,
    /// Ports of HTTPS probes (and the probe's field), which usher cannot
    /// make: allowed only where the operator left the port uncaptured.
    pub(crate) https_ports: Vec<(u16, String)>,
}

/// Rewrites the HTTP probes of `spec.containers` (at `spec_path`).
pub(crate) fn rewrite(
    spec: &mut Value,
    spec_path: &str,
    admin_port: u16,
) -> Result<Rewritten, FieldError> {
    let mut out = Rewritten::default();
    let Some(Value::Sequence(containers)) = spec.get_mut("containers") else {
        return Ok(out);
    };
    for (ci, c) in containers.iter_mut().enumerate() {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let ports = named_ports(c);
        for kind in KINDS {
            let field = format!("{spec_path}.containers[{ci}].{kind}.httpGet");
            let Some(http) = c.get(kind).and_then(|p| p.get("httpGet")) else {
                continue;
            };
            let port = match http.get("port") {
                Some(Value::Number(n)) => n.as_u64().and_then(|p| u16::try_from(p).ok()),
                Some(Value::String(s)) => ports.get(s.as_str()).copied().or_else(|| s.parse().ok()),
                _ => None,
            }
            .filter(|p| *p != 0)
            .ok_or_else(|| {
                FieldError::new(
                    format!("{field}.port"),
                    "not a port number, nor the name of one of the container's ports",
                )
            })?;
            let scheme = http.get("scheme").and_then(Value::as_str).unwrap_or("HTTP");
            if scheme.eq_ignore_ascii_case("HTTPS") {
                out.https_ports.push((port, format!("{field}.scheme")));
                continue;
            }
            if http.get("host").is_some() {
                // A probe of another host is not the app's: leave it.
                continue;
            }
            let key = format!("{name}/{kind}");
            let original: serde_json::Value =
                serde_json::to_value(http).map_err(|e| FieldError::new(&field, e.to_string()))?;
            let mut target = json!({"port": port});
            if let Some(path) = http.get("path").and_then(Value::as_str) {
                target["path"] = json!(path);
            }
            if let Some(headers) = original.get("httpHeaders") {
                target["headers"] = headers.clone();
            }
            out.targets.insert(key.clone(), target);
            out.originals.insert(key.clone(), original);
            let new =
                json!({"port": admin_port, "path": format!("/app-probe/{key}"), "scheme": "HTTP"});
            if let Some(probe) = c.get_mut(kind).and_then(Value::as_mapping_mut) {
                probe.insert(
                    Value::from("httpGet"),
                    yaml_serde::to_value(new).unwrap_or(Value::Null),
                );
            }
        }
    }
    Ok(out)
}

/// Puts the original `httpGet`s back.
pub(crate) fn restore(spec: &mut Value, originals: &BTreeMap<String, serde_json::Value>) {
    let Some(Value::Sequence(containers)) = spec.get_mut("containers") else {
        return;
    };
    for c in containers.iter_mut() {
        let name = c
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        for kind in KINDS {
            let Some(original) = originals.get(&format!("{name}/{kind}")) else {
                continue;
            };
            if let Some(probe) = c.get_mut(kind).and_then(Value::as_mapping_mut) {
                probe.insert(
                    Value::from("httpGet"),
                    yaml_serde::to_value(original).unwrap_or(Value::Null),
                );
            }
        }
    }
}

/// A container's named ports.
fn named_ports(c: &Value) -> BTreeMap<String, u16> {
    c.get("ports")
        .and_then(Value::as_sequence)
        .map(|ports| {
            ports
                .iter()
                .filter_map(|p| {
                    let name = p.get("name")?.as_str()?.to_string();
                    let port = u16::try_from(p.get("containerPort")?.as_u64()?).ok()?;
                    Some((name, port))
                })
                .collect()
        })
        .unwrap_or_default()
}
