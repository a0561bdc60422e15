use super::*;

const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
  namespace: shop
  labels: {app: orders}
spec:
  replicas: 2
  selector:
    matchLabels: {app: orders}
  template:
    metadata:
      labels: {app: orders}
    spec:
      serviceAccountName: orders
      containers:
        - name: orders
          image: registry.example.org/shop/orders:1.4.2
          ports: [{containerPort: 8080}]
          x-unknown-field: kept
";

fn opts() -> InjectOptions {
    InjectOptions::default()
}

fn parse(s: &str) -> Vec<Value> {
    yaml_serde::Deserializer::from_str(s)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn pod_spec(doc: &Value) -> &Value {
    &doc["spec"]["template"]["spec"]
}

fn names(seq: &Value) -> Vec<&str> {
    seq.as_sequence()
        .map(|s| s.iter().filter_map(|i| i["name"].as_str()).collect())
        .unwrap_or_default()
}

#[test]
fn a_deployment_gets_the_init_container_the_native_sidecar_and_volumes() {
    let out = inject_stream(DEPLOYMENT, &opts()).unwrap();
    let doc = &parse(&out)[0];
    let spec = pod_spec(doc);
    assert_eq!(names(&spec["initContainers"]), ["usher-init", "usher"]);
    assert_eq!(names(&spec["containers"]), ["orders"]);
    assert_eq!(
        spec["containers"][0]["x-unknown-field"].as_str(),
        Some("kept")
    );
    let init = &spec["initContainers"][0];
    assert_eq!(
        init["securityContext"]["capabilities"]["add"],
        parse("[NET_ADMIN, NET_RAW]")[0]
    );
    assert_eq!(init["args"][0].as_str(), Some("init-net"));
    let sidecar = &spec["initContainers"][1];
    assert_eq!(sidecar["restartPolicy"].as_str(), Some("Always"));
    let sc = &sidecar["securityContext"];
    assert_eq!(sc["runAsNonRoot"].as_bool(), Some(true));
    assert_eq!(sc["runAsUser"].as_u64(), Some(2020));
    assert_eq!(sc["readOnlyRootFilesystem"].as_bool(), Some(true));
    assert_eq!(sc["allowPrivilegeEscalation"].as_bool(), Some(false));
    assert_eq!(
        sc["seccompProfile"]["type"].as_str(),
        Some("RuntimeDefault")
    );
    assert_eq!(sc["capabilities"]["drop"][0].as_str(), Some("ALL"));
    for probe in ["startupProbe", "livenessProbe", "readinessProbe"] {
        assert_eq!(
            sidecar[probe]["httpGet"]["port"].as_u64(),
            Some(15000),
            "{probe}"
        );
    }
    assert!(sidecar["resources"]["requests"]["memory"].is_string());
    assert_eq!(
        names(&spec["volumes"]),
        ["usher-config", "usher-token", "usher-trust", "usher-run"]
    );
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"].as_str(),
        Some("orders-usher")
    );
    let token = &spec["volumes"][1]["projected"]["sources"][0]["serviceAccountToken"];
    assert_eq!(token["audience"].as_str(), Some("usher-ca"));
    let status = doc["spec"]["template"]["metadata"]["annotations"]["usher.io/status"]
        .as_str()
        .unwrap();
    assert!(
        status.contains("\"initContainers\":[\"usher-init\",\"usher\"]"),
        "{status}"
    );
}

#[test]
fn injecting_twice_changes_nothing_and_uninject_restores_the_original() {
    let once = inject_stream(DEPLOYMENT, &opts()).unwrap();
    let twice = inject_stream(&once, &opts()).unwrap();
    assert_eq!(once, twice);
    let un = InjectOptions {
        uninject: true,
        ..opts()
    };
    let back = inject_stream(&twice, &un).unwrap();
    assert_eq!(parse(&back), parse(DEPLOYMENT));
    // Uninjecting what was never injected changes nothing either.
    assert_eq!(
        parse(&inject_stream(DEPLOYMENT, &un).unwrap()),
        parse(DEPLOYMENT)
    );
}

#[test]
fn every_workload_kind_and_lists_others_pass_through() {
    let input = "\
apiVersion: v1
kind: Pod
metadata: {name: p}
spec:
  containers: [{name: app, image: a}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly}
spec:
  schedule: '0 3 * * *'
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: job, image: j}]
---
apiVersion: v1
kind: Service
metadata: {name: s}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: List
items:
  - apiVersion: apps/v1
    kind: StatefulSet
    metadata: {name: db}
    spec:
      serviceName: db
      selector: {matchLabels: {app: db}}
      template:
        metadata: {labels: {app: db}}
        spec: {containers: [{name: db, image: d}]}
  - apiVersion: apps/v1
    kind: DaemonSet
    metadata: {name: agent}
    spec:
      selector: {matchLabels: {app: agent}}
      template:
        metadata: {labels: {app: agent}}
        spec: {containers: [{name: agent, image: g}]}
";
    let docs = parse(&inject_stream(input, &opts()).unwrap());
    assert_eq!(docs.len(), 4);
    assert_eq!(
        names(&docs[0]["spec"]["initContainers"]),
        ["usher-init", "usher"]
    );
    assert_eq!(
        names(&docs[1]["spec"]["jobTemplate"]["spec"]["template"]["spec"]["initContainers"]),
        ["usher-init", "usher"]
    );
    assert_eq!(docs[2], parse(input)[2], "a Service passes unchanged");
    for item in docs[3]["items"].as_sequence().unwrap() {
        assert_eq!(
            names(&pod_spec(item)["initContainers"]),
            ["usher-init", "usher"]
        );
    }
}

#[test]
fn annotations_reach_init_net_and_the_sidecar() {
    let input = DEPLOYMENT.replace(
        "    metadata:\n      labels: {app: orders}\n    spec:",
        "    metadata:\n      labels: {app: orders}\n      annotations:\n        usher.io/skip-inbound-ports: \"22, 9090\"\n        usher.io/skip-outbound-cidrs: 169.254.169.254/32,fd00::/8\n        usher.io/log-level: info,usher=debug\n        usher.io/config-map: shared-usher\n        usher.io/policy-config-map: orders-policy\n    spec:",
    );
    let doc = &parse(&inject_stream(&input, &opts()).unwrap())[0];
    let spec = pod_spec(doc);
    let args: Vec<&str> = spec["initContainers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(
        args,
        [
            "init-net",
            "--proxy-uid",
            "2020",
            "--skip-inbound-ports",
            "22,9090",
            "--skip-outbound-cidrs",
            "169.254.169.254/32,fd00::/8"
        ]
    );
    assert_eq!(
        spec["initContainers"][1]["env"][0]["value"].as_str(),
        Some("info,usher=debug")
    );
    assert_eq!(
        spec["volumes"][0]["configMap"]["name"].as_str(),
        Some("shared-usher")
    );
    assert!(names(&spec["volumes"]).contains(&"usher-policy"));
}

#[test]
fn what_cannot_be_injected_is_refused_with_the_document_and_field() {
    let cases = [
        (
            DEPLOYMENT.replace("serviceAccountName: orders", "hostNetwork: true"),
            "document 1 (Deployment shop/orders): spec.template.spec.hostNetwork: true",
        ),
        (
            DEPLOYMENT.replace("- name: orders\n", "- name: usher\n"),
            "spec.template.spec.containers[0].name: \"usher\" is a name usher inject uses",
        ),
        (
            DEPLOYMENT.replace(
                "      labels: {app: orders}\n    spec:",
                "      labels: {app: orders}\n      annotations: {usher.io/skip-inbound-ports: \"22,http\"}\n    spec:",
            ),
            "spec.template.metadata.annotations[\"usher.io/skip-inbound-ports\"]: \"http\" is not a port",
        ),
        (
            DEPLOYMENT.replace(
                "      labels: {app: orders}\n    spec:",
                "      labels: {app: orders}\n      annotations: {usher.io/skip-outbound-cidrs: 10.0.0.0/99}\n    spec:",
            ),
            "usher.io/skip-outbound-cidrs\"]: the prefix length",
        ),
        (
            DEPLOYMENT.replace(
                "      labels: {app: orders}\n    spec:",
                "      labels: {app: orders}\n      annotations: {usher.io/log-level: \"$(rm -rf /)\"}\n    spec:",
            ),
            "usher.io/log-level\"]: \"$(rm -rf /)\": expected a level",
        ),
        (
            format!("kind: Service\nmetadata: {{name: s}}\n---\n{}", DEPLOYMENT.replace("  template:\n", "  notatemplate:\n")),
            "document 2 (Deployment shop/orders): spec.template: missing",
        ),
        ("kind: Pod\nmetadata: {name: [\n".to_string(), "document 1 (? ?): (document): not YAML"),
    ];
    for (input, want) in cases {
        let err = inject_stream(&input, &opts()).unwrap_err().to_string();
        assert!(err.contains(want), "{err}\n  wanted: {want}");
    }
}

#[test]
fn opting_out_leaves_the_workload_alone() {
    let input = DEPLOYMENT.replace(
        "      labels: {app: orders}\n    spec:",
        "      labels: {app: orders}\n      annotations: {usher.io/inject: disabled}\n    spec:",
    );
    assert_eq!(
        parse(&inject_stream(&input, &opts()).unwrap()),
        parse(&input)
    );
}

/// The app's HTTP probes go through usher's admin port (the captured app
/// port would want mTLS); HTTPS probe ports are left uncaptured; uninject
/// puts the probes back as they were.
#[test]
fn app_probes_are_pointed_at_the_admin_port_and_restored() {
    let input = DEPLOYMENT.replace(
        "          ports: [{containerPort: 8080}]\n",
        "          ports: [{name: http, containerPort: 8080}]\n          livenessProbe:\n            httpGet: {path: /healthz, port: http, httpHeaders: [{name: X-Probe, value: live}]}\n            periodSeconds: 7\n          readinessProbe:\n            httpGet: {path: /ready, port: 8443, scheme: HTTPS}\n          startupProbe:\n            tcpSocket: {port: 8080}\n",
    );
    // An HTTPS probe usher cannot make: refused, naming the field...
    let err = inject_stream(&input, &opts()).unwrap_err().to_string();
    assert!(
        err.contains("spec.template.spec.containers[0].readinessProbe.httpGet.scheme: HTTPS"),
        "{err}"
    );
    // ...unless the operator leaves that port uncaptured, knowingly.
    let input = input.replace(
        "    metadata:\n      labels: {app: orders}\n    spec:",
        "    metadata:\n      labels: {app: orders}\n      annotations: {usher.io/skip-inbound-ports: \"8443\"}\n    spec:",
    );
    let out = inject_stream(&input, &opts()).unwrap();
    let doc = &parse(&out)[0];
    let app = &pod_spec(doc)["containers"][0];
    let live = &app["livenessProbe"];
    assert_eq!(live["httpGet"]["port"].as_u64(), Some(15000));
    assert_eq!(
        live["httpGet"]["path"].as_str(),
        Some("/app-probe/orders/livenessProbe")
    );
    assert_eq!(live["periodSeconds"].as_u64(), Some(7), "other fields kept");
    assert_eq!(
        app["readinessProbe"]["httpGet"]["port"].as_u64(),
        Some(8443)
    );
    assert_eq!(
        app["startupProbe"]["tcpSocket"]["port"].as_u64(),
        Some(8080)
    );
    let sidecar = &pod_spec(doc)["initContainers"][1];
    let env = &sidecar["env"][0];
    assert_eq!(env["name"].as_str(), Some("USHER_APP_PROBES"));
    // What usher reads back is what the probe asked for.
    let probes = crate::admin::app_probe::AppProbes::parse(env["value"].as_str().unwrap()).unwrap();
    assert!(!probes.is_empty());
    let targets: serde_json::Value = serde_json::from_str(env["value"].as_str().unwrap()).unwrap();
    assert_eq!(
        targets,
        serde_json::json!({"orders/livenessProbe": {"port": 8080, "path": "/healthz", "headers": [{"name": "X-Probe", "value": "live"}]}})
    );
    let args = &pod_spec(doc)["initContainers"][0]["args"];
    assert_eq!(args[3].as_str(), Some("--skip-inbound-ports"));
    assert_eq!(args[4].as_str(), Some("8443"));

    assert_eq!(inject_stream(&out, &opts()).unwrap(), out, "idempotent");
    let un = InjectOptions {
        uninject: true,
        ..opts()
    };
    assert_eq!(parse(&inject_stream(&out, &un).unwrap()), parse(&input));

    let bad = input.replace("port: http,", "port: nosuchport,");
    let err = inject_stream(&bad, &opts()).unwrap_err().to_string();
    assert!(
        err.contains("spec.template.spec.containers[0].livenessProbe.httpGet.port: not a port"),
        "{err}"
    );
}

/// Golden files: `golden/<name>.in.yaml` injected must equal
/// `golden/<name>.out.yaml` (reviewed by hand). `USHER_BLESS=1 cargo test`
/// rewrites the expected files after an intended change.
#[test]
fn golden_files() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/inject/golden");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".in.yaml") else {
            continue;
        };
        let input = std::fs::read_to_string(&path).unwrap();
        let got = inject_stream(&input, &opts()).unwrap();
        let want_path = dir.join(format!("{stem}.out.yaml"));
        if std::env::var_os("USHER_BLESS").is_some() {
            std::fs::write(&want_path, &got).unwrap();
        }
        let want = std::fs::read_to_string(&want_path)
            .unwrap_or_else(|e| panic!("{}: {e} (USHER_BLESS=1 writes it)", want_path.display()));
        assert_eq!(
            got, want,
            "{stem}: inject output differs from the golden file"
        );
        // And back: uninject gives the input's documents.
        let un = InjectOptions {
            uninject: true,
            ..opts()
        };
        assert_eq!(
            parse(&inject_stream(&got, &un).unwrap()),
            parse(&input),
            "{stem}"
        );
        seen += 1;
    }
    assert!(seen >= 2, "golden files missing in {}", dir.display());
}

/// Pod Security Standards, "restricted" profile (Kubernetes 1.29+), for the
/// sidecar container usher adds; the init container that programs
/// netfilter needs NET_ADMIN/NET_RAW as root, which only the "privileged"
/// profile allows (README: label the namespace, or leave interception to a
/// CNI plugin).
#[test]
fn the_sidecar_meets_pod_security_restricted() {
    let doc = &parse(&inject_stream(DEPLOYMENT, &opts()).unwrap())[0];
    let spec = pod_spec(doc);
    let sidecar = &spec["initContainers"][1];
    assert!(
        restricted_violations(sidecar).is_empty(),
        "{:?}",
        restricted_violations(sidecar)
    );
    let init = &spec["initContainers"][0];
    let v = restricted_violations(init);
    assert!(v.iter().any(|x| x.contains("capabilities")), "{v:?}");
    assert!(v.iter().any(|x| x.contains("runAsNonRoot")), "{v:?}");
    // The checker itself catches what it should.
    let mut bad = sidecar.clone();
    bad["securityContext"]["allowPrivilegeEscalation"] = Value::Bool(true);
    assert!(!restricted_violations(&bad).is_empty());
}

/// The container-level rules of the "restricted" profile
/// (kubernetes.io/docs/concepts/security/pod-security-standards).
fn restricted_violations(c: &Value) -> Vec<String> {
    let sc = &c["securityContext"];
    let mut v = Vec::new();
    if sc["allowPrivilegeEscalation"].as_bool() != Some(false) {
        v.push("allowPrivilegeEscalation must be false".to_string());
    }
    if sc["runAsNonRoot"].as_bool() != Some(true) || sc["runAsUser"].as_u64() == Some(0) {
        v.push("runAsNonRoot must be true and runAsUser not 0".to_string());
    }
    let seccomp = sc["seccompProfile"]["type"].as_str();
    if !matches!(seccomp, Some("RuntimeDefault" | "Localhost")) {
        v.push("seccompProfile must be RuntimeDefault or Localhost".to_string());
    }
    let drops_all = sc["capabilities"]["drop"]
        .as_sequence()
        .is_some_and(|d| d.iter().any(|x| x.as_str() == Some("ALL")));
    let adds_only_bind = sc["capabilities"]["add"]
        .as_sequence()
        .is_none_or(|a| a.iter().all(|x| x.as_str() == Some("NET_BIND_SERVICE")));
    if !drops_all || !adds_only_bind {
        v.push("capabilities must drop ALL and add at most NET_BIND_SERVICE".to_string());
    }
    if sc["privileged"].as_bool() == Some(true) {
        v.push("privileged".to_string());
    }
    if c["ports"]
        .as_sequence()
        .is_some_and(|p| p.iter().any(|p| p.get("hostPort").is_some()))
    {
        v.push("hostPort".to_string());
    }
    v
}

/// An app running as usher's UID would bypass the mesh (that UID's traffic
/// is not redirected): refused, pod-wide or per container.
#[test]
fn an_app_with_the_proxy_uid_is_refused() {
    for (from, to, field) in [
        (
            "      serviceAccountName: orders\n",
            "      serviceAccountName: orders\n      securityContext: {runAsUser: 2020}\n",
            "spec.template.spec.securityContext.runAsUser: 2020 is usher's UID",
        ),
        (
            "          x-unknown-field: kept\n",
            "          x-unknown-field: kept\n          securityContext: {runAsUser: 2020}\n",
            "spec.template.spec.containers[0].securityContext.runAsUser: 2020 is usher's UID",
        ),
    ] {
        let input = DEPLOYMENT.replace(from, to);
        let err = inject_stream(&input, &opts()).unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        // Another proxy UID makes it fine.
        let other = InjectOptions {
            proxy_uid: 2021,
            ..opts()
        };
        assert!(inject_stream(&input, &other).is_ok());
    }
}
