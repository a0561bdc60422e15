//! Adding usher to one pod template, and taking it away again.

use serde_json::json;
use yaml_serde::{Mapping, Value};

use super::{probes, FieldError};

pub(crate) const ANNOTATION_INJECT: &str = "usher.io/inject";
pub(crate) const ANNOTATION_STATUS: &str = "usher.io/status";
const ANNOTATION_CONFIG_MAP: &str = "usher.io/config-map";
const ANNOTATION_POLICY_CONFIG_MAP: &str = "usher.io/policy-config-map";
const ANNOTATION_SKIP_INBOUND_PORTS: &str = "usher.io/skip-inbound-ports";
const ANNOTATION_SKIP_OUTBOUND_PORTS: &str = "usher.io/skip-outbound-ports";
const ANNOTATION_SKIP_OUTBOUND_CIDRS: &str = "usher.io/skip-outbound-cidrs";
const ANNOTATION_LOG_LEVEL: &str = "usher.io/log-level";

const INIT_NAME: &str = "usher-init";
/// usher's admin port (its probes, and the app's probes through it).
const ADMIN_PORT: u16 = 15000;
const SIDECAR_NAME: &str = "usher";
/// Where the sidecar finds its config (the ConfigMap's `usher.yaml`).
pub(crate) const CONFIG_PATH: &str = "/etc/usher/config/usher.yaml";
pub(crate) const POLICY_DIR: &str = "/etc/usher/policy";
/// The ConfigMap holding the mesh's trust bundle, in every namespace.
pub(crate) const TRUST_CONFIG_MAP: &str = "usher-trust-bundle";

/// How to inject.
#[derive(Clone, Debug)]
pub struct InjectOptions {
    /// The sidecar's image (`usher run`).
    pub image: String,
    /// The image of the init container (`usher init-net`: needs nft).
    pub init_image: String,
    /// The UID usher runs as (and init-net exempts).
    pub proxy_uid: u32,
    /// Remove what an earlier injection added instead.
    pub uninject: bool,
}

impl Default for InjectOptions {
    fn default() -> Self {
        let version = env!("CARGO_PKG_VERSION");
        InjectOptions {
            image: format!("usher:{version}"),
            init_image: format!("usher-init:{version}"),
            proxy_uid: usher_netinit::DEFAULT_PROXY_UID,
            uninject: false,
        }
    }
}

/// What an injection added, kept in the `usher.io/status` annotation.
#[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq, Eq, Default)]
struct Status {
    version: String,
    #[serde(rename = "initContainers")]
    init_containers: Vec<String>,
    volumes: Vec<String>,
    /// Keys that did not exist before (`metadata.annotations`,
    /// `spec.initContainers`, `spec.volumes`...), removed when empty again.
    created: Vec<String>,
    /// The app's `httpGet` probes as they were, by `<container>/<probe>`.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    probes: std::collections::BTreeMap<String, serde_json::Value>,
}

/// Adds usher to `pod` (a pod or pod template: `metadata` + `spec`) at
/// `path` (for messages). An earlier injection is replaced.
pub(super) fn inject(
    pod: &mut Value,
    opts: &InjectOptions,
    path: &str,
    workload: Option<&str>,
) -> Result<(), FieldError> {
    if status(pod, path)?.is_some() {
        uninject(pod, path)?;
    }
    let spec_path = format!("{path}spec");
    // Checked first; the later look-ups of the spec (and of the pod as a
    // mapping, which it is when it has one) answer the same if they fail.
    let no_spec = || FieldError::new(spec_path.clone(), "missing: a pod needs a spec");
    let Some(spec) = pod.get("spec").filter(|s| s.is_mapping()) else {
        return Err(no_spec());
    };
    if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
        return Err(FieldError::new(
            format!("{spec_path}.hostNetwork"),
            "true: usher cannot capture a pod that shares the node's network (its rules would \
             redirect the node's traffic); mesh it without hostNetwork or annotate it \
             usher.io/inject: disabled",
        ));
    }
    for list in ["containers", "initContainers", "volumes"] {
        if let Some(items) = spec.get(list).and_then(Value::as_sequence) {
            for (i, item) in items.iter().enumerate() {
                let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                if name == SIDECAR_NAME || name.starts_with("usher-") {
                    return Err(FieldError::new(
                        format!("{spec_path}.{list}[{i}].name"),
                        format!(
                            "{name:?} is a name usher inject uses, and this pod has no \
                             {ANNOTATION_STATUS} annotation (added by hand?): remove or rename it"
                        ),
                    ));
                }
            }
        }
    }
    let mut status = Status {
        version: env!("CARGO_PKG_VERSION").into(),
        ..Status::default()
    };
    let rewritten = probes::rewrite(
        pod.get_mut("spec").ok_or_else(no_spec)?,
        &spec_path,
        ADMIN_PORT,
    )?;
    check_app_uids(spec_uids(pod), opts.proxy_uid, &spec_path)?;
    let annotations = annotations(pod);
    let get = |key: &str| annotations.get(key).cloned();
    let ann_path = |key: &str| format!("{path}metadata.annotations[\"{key}\"]");
    let skipped = get(ANNOTATION_SKIP_INBOUND_PORTS).unwrap_or_default();
    for (port, field) in &rewritten.https_ports {
        let listed = skipped.split(',').any(|p| p.trim() == port.to_string());
        if !listed {
            return Err(FieldError::new(
                field.clone(),
                format!(
                    "HTTPS: usher cannot make an HTTPS probe for the kubelet, and port {port} is \
                     captured; probe over HTTP or tcpSocket, or list {port} in \
                     {ANNOTATION_SKIP_INBOUND_PORTS} to leave the port uncaptured (its callers then \
                     bypass mTLS and the policy)"
                ),
            ));
        }
    }
    let init_args = init_net_args(opts, &get, &ann_path)?;
    let log_level = match get(ANNOTATION_LOG_LEVEL) {
        Some(level) if valid_log_level(&level) => Some(level),
        Some(level) => {
            return Err(FieldError::new(
                ann_path(ANNOTATION_LOG_LEVEL),
                format!("{level:?}: expected a level (error, warn, info, debug, trace) or directives such as info,usher=debug"),
            ))
        }
        None => None,
    };
    let workload = workload.map(String::from).or_else(|| pod_name(pod));
    let config_map =
        match get(ANNOTATION_CONFIG_MAP) {
            Some(name) => check_name(&name, ann_path(ANNOTATION_CONFIG_MAP))?,
            None => match workload {
                Some(name) => format!("{name}-usher"),
                None => return Err(FieldError::new(
                    ann_path(ANNOTATION_CONFIG_MAP),
                    "missing: the pod has no name to derive the ConfigMap's (<name>-usher) from",
                )),
            },
        };
    let policy_map = get(ANNOTATION_POLICY_CONFIG_MAP)
        .map(|n| check_name(&n, ann_path(ANNOTATION_POLICY_CONFIG_MAP)))
        .transpose()?;

    let uid = opts.proxy_uid;
    let init = json!({
        "name": INIT_NAME,
        "image": opts.init_image,
        "args": init_args,
        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}, "limits": {"memory": "64Mi"}},
        "securityContext": {
            // Programming netfilter needs root in the pod's network
            // namespace; nothing else.
            "runAsUser": 0,
            "runAsNonRoot": false,
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        // iptables' lock file.
        "volumeMounts": [{"name": "usher-run", "mountPath": "/run"}]
    });
    let mut mounts = vec![
        json!({"name": "usher-config", "mountPath": "/etc/usher/config", "readOnly": true}),
        json!({"name": "usher-token", "mountPath": "/var/run/secrets/usher", "readOnly": true}),
        json!({"name": "usher-trust", "mountPath": "/etc/usher/trust", "readOnly": true}),
    ];
    if policy_map.is_some() {
        mounts.push(json!({"name": "usher-policy", "mountPath": POLICY_DIR, "readOnly": true}));
    }
    let mut sidecar = json!({
        "name": SIDECAR_NAME,
        "image": opts.image,
        // A native sidecar: started before the app, stopped after it.
        "restartPolicy": "Always",
        "args": ["run", "--config", CONFIG_PATH],
        "ports": [
            {"name": "usher-mesh", "containerPort": 15006, "protocol": "TCP"},
            {"name": "usher-admin", "containerPort": ADMIN_PORT, "protocol": "TCP"}
        ],
        "startupProbe": {"httpGet": {"path": "/live", "port": ADMIN_PORT}, "periodSeconds": 1, "failureThreshold": 120},
        "livenessProbe": {"httpGet": {"path": "/live", "port": ADMIN_PORT}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/ready", "port": ADMIN_PORT}, "periodSeconds": 5},
        "resources": {"requests": {"cpu": "50m", "memory": "32Mi"}, "limits": {"memory": "128Mi"}},
        "securityContext": {
            "runAsNonRoot": true,
            "runAsUser": uid,
            "runAsGroup": uid,
            "readOnlyRootFilesystem": true,
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"]},
            "seccompProfile": {"type": "RuntimeDefault"}
        },
        "volumeMounts": mounts
    });
    let mut env = Vec::new();
    if let Some(level) = log_level {
        env.push(json!({"name": "RUST_LOG", "value": level}));
    }
    if !rewritten.targets.is_empty() {
        let probes = serde_json::to_string(&rewritten.targets).unwrap_or_default();
        env.push(json!({"name": "USHER_APP_PROBES", "value": probes}));
    }
    if !env.is_empty() {
        sidecar["env"] = json!(env);
    }
    status.probes = rewritten.originals;
    let mut volumes = vec![
        json!({"name": "usher-config", "configMap": {"name": config_map}}),
        json!({"name": "usher-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "usher-ca", "expirationSeconds": 600, "path": "token"}}]}}),
        json!({"name": "usher-trust", "configMap": {"name": TRUST_CONFIG_MAP}}),
        json!({"name": "usher-run", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}),
    ];
    if let Some(name) = policy_map {
        volumes.push(json!({"name": "usher-policy", "configMap": {"name": name}}));
    }

    let spec = pod
        .get_mut("spec")
        .and_then(Value::as_mapping_mut)
        .ok_or_else(no_spec)?;
    let inits = sequence(
        spec,
        "initContainers",
        "spec.initContainers",
        &mut status.created,
    );
    // usher-init first (the rules are in place before anything runs), then
    // the sidecar (up before the app's own init containers, which may call
    // other services).
    inits.insert(0, to_yaml(sidecar));
    inits.insert(0, to_yaml(init));
    status.init_containers = vec![INIT_NAME.into(), SIDECAR_NAME.into()];
    let vols = sequence(spec, "volumes", "spec.volumes", &mut status.created);
    for v in volumes {
        status
            .volumes
            .push(v["name"].as_str().unwrap_or_default().to_string());
        vols.push(to_yaml(v));
    }

    let pod = pod.as_mapping_mut().ok_or_else(no_spec)?;
    let meta = mapping(pod, "metadata", "metadata", &mut status.created);
    let ann = mapping(
        meta,
        "annotations",
        "metadata.annotations",
        &mut status.created,
    );
    // `created` is complete now.
    let text = serde_json::to_string(&status).unwrap_or_default();
    ann.insert(Value::from(ANNOTATION_STATUS), Value::from(text));
    Ok(())
}

/// Removes what [`inject`] added, as its status annotation records it.
pub(crate) fn uninject(pod: &mut Value, path: &str) -> Result<(), FieldError> {
    let Some(status) = status(pod, path)? else {
        return Ok(());
    };
    if let Some(spec) = pod.get_mut("spec") {
        probes::restore(spec, &status.probes);
    }
    if let Some(spec) = pod.get_mut("spec").and_then(Value::as_mapping_mut) {
        for (key, names) in [
            ("initContainers", &status.init_containers),
            ("volumes", &status.volumes),
        ] {
            if let Some(Value::Sequence(items)) = spec.get_mut(key) {
                items.retain(|item| {
                    let name = item.get("name").and_then(Value::as_str).unwrap_or("");
                    !names.iter().any(|n| n == name)
                });
                if items.is_empty() && status.created.iter().any(|c| c == &format!("spec.{key}")) {
                    spec.remove(key);
                }
            }
        }
    }
    if let Some(meta) = pod.get_mut("metadata").and_then(Value::as_mapping_mut) {
        if let Some(Value::Mapping(ann)) = meta.get_mut("annotations") {
            ann.remove(ANNOTATION_STATUS);
            if ann.is_empty() && status.created.iter().any(|c| c == "metadata.annotations") {
                meta.remove("annotations");
            }
        }
        if meta.is_empty() && status.created.iter().any(|c| c == "metadata") {
            if let Value::Mapping(pod) = pod {
                pod.remove("metadata");
            }
        }
    }
    Ok(())
}

/// The status annotation, when the pod was injected.
fn status(pod: &Value, path: &str) -> Result<Option<Status>, FieldError> {
    let Some(text) = annotations(pod).get(ANNOTATION_STATUS).cloned() else {
        return Ok(None);
    };
    serde_json::from_str(&text).map(Some).map_err(|e| {
        FieldError::new(
            format!("{path}metadata.annotations[\"{ANNOTATION_STATUS}\"]"),
            format!("not what usher inject writes ({e}); remove the annotation and what it added by hand"),
        )
    })
}

/// The pod's annotations with string values.
fn annotations(pod: &Value) -> std::collections::BTreeMap<String, String> {
    pod.get("metadata")
        .and_then(|m| m.get("annotations"))
        .and_then(Value::as_mapping)
        .map(|a| {
            a.iter()
                .filter_map(|(k, v)| Some((k.as_str()?.to_string(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default()
}

fn pod_name(pod: &Value) -> Option<String> {
    let meta = pod.get("metadata")?;
    meta.get("name")
        .or_else(|| meta.get("labels").and_then(|l| l.get("app")))
        .and_then(Value::as_str)
        .map(String::from)
}

/// `usher init-net` arguments from the options and annotations.
fn init_net_args(
    opts: &InjectOptions,
    get: &dyn Fn(&str) -> Option<String>,
    ann_path: &dyn Fn(&str) -> String,
) -> Result<Vec<String>, FieldError> {
    let mut args = vec![
        "init-net".to_string(),
        "--proxy-uid".into(),
        opts.proxy_uid.to_string(),
    ];
    for (key, flag) in [
        (ANNOTATION_SKIP_INBOUND_PORTS, "--skip-inbound-ports"),
        (ANNOTATION_SKIP_OUTBOUND_PORTS, "--skip-outbound-ports"),
    ] {
        if let Some(v) = get(key) {
            let listed: Result<Vec<u16>, _> = v
                .split(',')
                .map(|p| p.trim().parse::<u16>().ok().filter(|p| *p != 0).ok_or(p))
                .collect();
            let ports = listed.map_err(|bad| {
                FieldError::new(
                    ann_path(key),
                    format!("{bad:?} is not a port: expected ports 1-65535 separated by commas, e.g. \"22,9090\""),
                )
            })?;
            args.push(flag.into());
            args.push(join(&ports));
        }
    }
    if let Some(v) = get(ANNOTATION_SKIP_OUTBOUND_CIDRS) {
        let cidrs: Result<Vec<usher_netinit::Cidr>, String> =
            v.split(',').map(|c| c.trim().parse()).collect();
        let cidrs =
            cidrs.map_err(|e| FieldError::new(ann_path(ANNOTATION_SKIP_OUTBOUND_CIDRS), e))?;
        args.push("--skip-outbound-cidrs".into());
        args.push(join(&cidrs));
    }
    Ok(args)
}

fn join<T: ToString>(items: &[T]) -> String {
    items.iter().map(T::to_string).collect::<Vec<_>>().join(",")
}

fn valid_log_level(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 256
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "_=,:.-".contains(c))
}

/// A ConfigMap name: a DNS-1123 subdomain.
fn check_name(name: &str, field: String) -> Result<String, FieldError> {
    let ok = !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        });
    if ok {
        Ok(name.to_string())
    } else {
        Err(FieldError::new(
            field,
            format!("{name:?} is not a ConfigMap name (lower-case letters, digits, '-' and '.')"),
        ))
    }
}

fn to_yaml(v: serde_json::Value) -> Value {
    yaml_serde::to_value(v).unwrap_or(Value::Null)
}

/// `map[key]` as a sequence, made (and recorded in `created`) when absent.
fn sequence<'a>(
    map: &'a mut Mapping,
    key: &str,
    created_name: &str,
    created: &mut Vec<String>,
) -> &'a mut Vec<Value> {
    if !matches!(map.get(key), Some(Value::Sequence(_))) {
        created.push(created_name.into());
        map.insert(Value::from(key), Value::Sequence(Vec::new()));
    }
    match map.get_mut(key) {
        Some(Value::Sequence(s)) => s,
        _ => unreachable!("inserted above"),
    }
}

/// `map[key]` as a mapping, made (and recorded) when absent.
fn mapping<'a>(
    map: &'a mut Mapping,
    key: &str,
    created_name: &str,
    created: &mut Vec<String>,
) -> &'a mut Mapping {
    if !matches!(map.get(key), Some(Value::Mapping(_))) {
        created.push(created_name.into());
        map.insert(Value::from(key), Value::Mapping(Mapping::new()));
    }
    match map.get_mut(key) {
        Some(Value::Mapping(m)) => m,
        _ => unreachable!("inserted above"),
    }
}

/// `(field, runAsUser)` of the pod and of each of its containers.
fn spec_uids(pod: &Value) -> Vec<(String, u64)> {
    let mut out = Vec::new();
    let Some(spec) = pod.get("spec") else {
        return out;
    };
    if let Some(uid) = spec
        .get("securityContext")
        .and_then(|s| s.get("runAsUser"))
        .and_then(Value::as_u64)
    {
        out.push(("securityContext.runAsUser".to_string(), uid));
    }
    for list in ["containers", "initContainers"] {
        for (i, c) in spec
            .get(list)
            .and_then(Value::as_sequence)
            .into_iter()
            .flatten()
            .enumerate()
        {
            if let Some(uid) = c
                .get("securityContext")
                .and_then(|s| s.get("runAsUser"))
                .and_then(Value::as_u64)
            {
                out.push((format!("{list}[{i}].securityContext.runAsUser"), uid));
            }
        }
    }
    out
}

/// The app must not run as usher's UID: `usher init-net` lets that UID's
/// traffic out unredirected (or usher would loop), so an app with it would
/// bypass the mesh.
fn check_app_uids(
    uids: Vec<(String, u64)>,
    proxy_uid: u32,
    spec_path: &str,
) -> Result<(), FieldError> {
    match uids
        .into_iter()
        .find(|(_, uid)| *uid == u64::from(proxy_uid))
    {
        Some((field, uid)) => Err(FieldError::new(
            format!("{spec_path}.{field}"),
            format!(
                "{uid} is usher's UID: traffic of that UID is not captured, so this app would \
                 bypass the mesh; run it as another UID (or inject with another --proxy-uid)"
            ),
        )),
        None => Ok(()),
    }
}
