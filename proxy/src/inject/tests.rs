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
