//! `usher inject`: adds usher to Kubernetes workloads, as `linkerd inject`
//! and `istioctl kube-inject` do.
//!
//! Each YAML document is read as a generic value (so fields usher does not
//! know pass through untouched; comments do not survive a YAML round trip),
//! and the pod template of a Pod, Deployment, StatefulSet, DaemonSet,
//! ReplicaSet, Job or CronJob (also inside a `List`) gets:
//!
//! - `usher-init`: an init container running `usher init-net` (root, only
//!   `NET_ADMIN` and `NET_RAW`), which redirects the pod's TCP to usher;
//! - `usher`: a native sidecar (an init container with `restartPolicy:
//!   Always`), non-root with a fixed UID, read-only root, no capabilities,
//!   seccomp `RuntimeDefault`, probes on the admin listener, resources;
//! - its volumes: the config ConfigMap, the policy ConfigMap (optional),
//!   the trust bundle, and a projected ServiceAccount token for the CA;
//! - an `usher.io/status` annotation recording what was added, so that
//!   injecting again changes nothing and `--uninject` takes exactly that
//!   away.
//!
//! Any other kind passes through unchanged.

mod pod;
mod probes;
#[cfg(test)]
mod tests;

use serde::Deserialize;
use yaml_serde::Value;

pub use pod::InjectOptions;

/// Why a document could not be injected: which document, which field.
#[derive(Debug, thiserror::Error)]
#[error("document {index} ({kind} {name}): {field}: {message}")]
pub struct InjectError {
    /// 1-based, in the input.
    pub(crate) index: usize,
    pub(crate) kind: String,
    pub(crate) name: String,
    pub(crate) field: String,
    pub(crate) message: String,
}

/// A problem inside one pod template, before the document is known.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub(crate) field: String,
    pub(crate) message: String,
}

impl FieldError {
    pub(crate) fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// Injects (or, with `opts.uninject`, removes) usher in every workload of
/// a multi-document YAML stream; the stream written back.
pub fn inject_stream(input: &str, opts: &InjectOptions) -> Result<String, InjectError> {
    let mut out = String::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(input).enumerate() {
        let index = i + 1;
        let mut value = Value::deserialize(doc).map_err(|e| InjectError {
            index,
            kind: "?".into(),
            name: "?".into(),
            field: "(document)".into(),
            message: format!("not YAML: {e}"),
        })?;
        if value.is_null() {
            continue;
        }
        let (kind, name) = describe(&value);
        process(&mut value, opts, "").map_err(|e| InjectError {
            index,
            kind: kind.clone(),
            name: name.clone(),
            field: e.field,
            message: e.message,
        })?;
        if !out.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&yaml_serde::to_string(&value).map_err(|e| InjectError {
            index,
            kind,
            name,
            field: "(document)".into(),
            message: format!("cannot write it back: {e}"),
        })?);
    }
    Ok(out)
}

/// One object: a workload, a `List` of objects, or anything else.
fn process(value: &mut Value, opts: &InjectOptions, at: &str) -> Result<(), FieldError> {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    // The pod template's path, by kind.
    let template: &[&str] = match kind.as_str() {
        "Pod" => &[],
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => &["spec", "template"],
        "CronJob" => &["spec", "jobTemplate", "spec", "template"],
        "List" => {
            if let Some(Value::Sequence(items)) = value.get_mut("items") {
                for (i, item) in items.iter_mut().enumerate() {
                    process(item, opts, &format!("{at}items[{i}]."))?;
                }
            }
            return Ok(());
        }
        _ => return Ok(()),
    };
    if disabled(value) {
        return Ok(());
    }
    let workload = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .map(String::from);
    let mut pod = &mut *value;
    let mut path = at.to_string();
    for key in template {
        path.push_str(key);
        path.push('.');
        pod = match pod.get_mut(*key) {
            Some(v) if v.is_mapping() => v,
            _ => {
                return Err(FieldError::new(
                    path.trim_end_matches('.'),
                    format!("missing: a {kind} needs a pod template here"),
                ))
            }
        };
    }
    if disabled(pod) {
        return Ok(());
    }
    if opts.uninject {
        pod::uninject(pod, &path)
    } else {
        pod::inject(pod, opts, &path, workload.as_deref())
    }
}

/// `usher.io/inject: disabled` on the object or its pod template.
fn disabled(object: &Value) -> bool {
    object
        .get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(|a| a.get(pod::ANNOTATION_INJECT))
        .and_then(Value::as_str)
        == Some("disabled")
}

/// `(kind, namespace/name)` for messages.
fn describe(value: &Value) -> (String, String) {
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("(no kind)")
        .to_string();
    let meta = value.get("metadata");
    let name = meta
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(no name)");
    let name = match meta
        .and_then(|m| m.get("namespace"))
        .and_then(Value::as_str)
    {
        Some(ns) => format!("{ns}/{name}"),
        None => name.to_string(),
    };
    (kind, name)
}
