//! `usher.yaml` parsing: defaults, path resolution, and errors that name the
//! file, the key and what was expected.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use super::*;

const FILE: &str = "/etc/usher/usher.yaml";

const MINIMAL: &str = "\
service: orders
identity:
  cert: certs/cert.pem
  key: certs/key.pem
  bundle: certs/bundle.pem
inbound:
  app: 127.0.0.1:8080
";

fn parse(text: &str) -> Result<Config, ConfigError> {
    Config::parse(text, Path::new(FILE), Path::new("/etc/usher"))
}

/// Parses `text`, which must fail, and checks the error names the file and
/// `key`; returns the full message for further checks.
#[track_caller]
fn error(text: &str, key: &str) -> String {
    let err = match parse(text) {
        Ok(config) => panic!("expected an error at `{key}`, parsed {config:?}"),
        Err(err) => err,
    };
    let shown = err.to_string();
    assert_eq!(err.key, key, "error key; message: {shown}");
    assert_eq!(err.file, Path::new(FILE));
    assert!(
        shown.starts_with(&format!("{FILE}: ")),
        "the message starts with the file: {shown}"
    );
    if !key.is_empty() {
        assert!(
            shown.contains(&format!("key `{key}`")),
            "the message names the key: {shown}"
        );
    }
    shown
}

/// MINIMAL plus an `outbound.routes` list built from `(host, address, identity)`.
fn with_routes(routes: &[(&str, &str, &str)]) -> String {
    let mut text = format!("{MINIMAL}outbound:\n  routes:\n");
    for (host, address, identity) in routes {
        text.push_str(&format!(
            "    - host: {host:?}\n      address: {address:?}\n      identity: {identity:?}\n"
        ));
    }
    text
}

const ID_B: &str = "spiffe://mesh.local/ns/shop/sa/b";

#[test]
fn minimal_config_gets_the_defaults() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.service, "orders");
    assert_eq!(
        config.inbound.app,
        "127.0.0.1:8080".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.inbound.listen,
        "0.0.0.0:15006".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.inbound.app_connect_timeout, Duration::from_secs(3));
    assert_eq!(
        config.outbound.listen,
        "127.0.0.1:15001".parse::<SocketAddr>().unwrap()
    );
    assert!(config.outbound.routes.is_empty());
    assert_eq!(config.outbound.connect_timeout, Duration::from_secs(3));
    assert_eq!(
        config.admin.listen,
        "127.0.0.1:15000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.tls.min_version, TlsVersion::Tls13);
    assert!(config.tls.post_quantum);
    assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(30));
}

#[test]
fn every_setting_can_be_given() {
    let text = format!(
        "{MINIMAL}  listen: 127.0.0.1:25006
  app_connect_timeout: 500ms
outbound:
  listen: 127.0.0.1:25001
  connect_timeout: 2s
  routes:
    - host: Payments.Shop
      address: payments.shop.svc:15006
      identity: {ID_B}
    - host: b
      address: \"[::1]:15006\"
      identity: spiffe://mesh.local/b
admin:
  listen: 127.0.0.1:25000
tls:
  min_version: \"1.2\"
  post_quantum: false
shutdown:
  drain_timeout: 1m
"
    );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.inbound.listen,
        "127.0.0.1:25006".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        config.inbound.app_connect_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(
        config.outbound.listen,
        "127.0.0.1:25001".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.outbound.connect_timeout, Duration::from_secs(2));
    assert_eq!(
        config.admin.listen,
        "127.0.0.1:25000".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(config.tls.min_version, TlsVersion::Tls12);
    assert!(!config.tls.post_quantum);
    assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(60));

    let routes = &config.outbound.routes;
    assert_eq!(routes.len(), 2);
    assert_eq!(routes[0].host, "payments.shop", "hosts are lowercased");
    assert_eq!(routes[0].address, "payments.shop.svc:15006");
    assert_eq!(routes[0].identity.as_str(), ID_B);
    assert_eq!(routes[1].address, "[::1]:15006");
    assert_eq!(routes[1].identity.as_str(), "spiffe://mesh.local/b");
}

#[test]
fn relative_identity_paths_are_resolved_against_the_base_folder() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(
        config.identity.files().unwrap().cert,
        Path::new("/etc/usher/certs/cert.pem")
    );
    assert_eq!(
        config.identity.files().unwrap().key,
        Path::new("/etc/usher/certs/key.pem")
    );
    assert_eq!(
        config.identity.files().unwrap().bundle,
        Path::new("/etc/usher/certs/bundle.pem")
    );

    // The base folder, not the config file's name or the working directory.
    let config = Config::parse(MINIMAL, Path::new(FILE), Path::new("/srv/other")).unwrap();
    assert_eq!(
        config.identity.files().unwrap().cert,
        Path::new("/srv/other/certs/cert.pem")
    );
}

#[test]
fn absolute_identity_paths_are_kept() {
    let text = MINIMAL
        .replace("cert: certs/cert.pem", "cert: /var/run/usher/cert.pem")
        .replace(
            "bundle: certs/bundle.pem",
            "bundle: /var/run/usher/bundle.pem",
        );
    let config = parse(&text).unwrap();
    assert_eq!(
        config.identity.files().unwrap().cert,
        Path::new("/var/run/usher/cert.pem")
    );
    assert_eq!(
        config.identity.files().unwrap().bundle,
        Path::new("/var/run/usher/bundle.pem")
    );
    // Mixed: the relative one is still resolved.
    assert_eq!(
        config.identity.files().unwrap().key,
        Path::new("/etc/usher/certs/key.pem")
    );
}

#[test]
fn load_resolves_paths_against_the_config_files_folder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usher.yaml");
    std::fs::write(&path, MINIMAL).unwrap();
    let config = Config::load(&path).unwrap();
    assert_eq!(
        config.identity.files().unwrap().cert,
        dir.path().join("certs/cert.pem")
    );
}

#[test]
fn load_of_a_missing_file_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.yaml");
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.file, path);
    assert_eq!(err.key, "");
    let shown = err.to_string();
    assert!(shown.contains(&path.display().to_string()), "{shown}");
    assert!(shown.contains("cannot read"), "{shown}");
}

#[test]
fn unknown_top_level_key_is_an_error_listing_the_known_ones() {
    // A control usher does not have must not be accepted silently (the
    // operator would think it is in force).
    let shown = error(
        &format!("{MINIMAL}circuit_breakers:\n  max: 1\n"),
        "circuit_breakers",
    );
    assert!(
        shown.contains("unknown field `circuit_breakers`"),
        "{shown}"
    );
    assert!(
        shown.contains("`inbound`"),
        "lists what was expected: {shown}"
    );

    let shown = error(&format!("{MINIMAL}polciy: {{}}\n"), "polciy");
    assert!(shown.contains("unknown field `polciy`"), "{shown}");
    assert!(shown.contains("expected one of"), "{shown}");
}

#[test]
fn unknown_nested_key_is_an_error() {
    let text = MINIMAL.replace(
        "  app: 127.0.0.1:8080",
        "  lisen: 0.0.0.0:1\n  app: 127.0.0.1:8080",
    );
    let shown = error(&text, "inbound.lisen");
    assert!(shown.contains("unknown field `lisen`"), "{shown}");
    assert!(
        shown.contains("`listen`"),
        "suggests the known keys: {shown}"
    );

    let shown = error(
        &format!("{MINIMAL}tls:\n  post_quantom: false\n"),
        "tls.post_quantom",
    );
    assert!(shown.contains("`post_quantum`"), "{shown}");

    let text = with_routes(&[("b", "b:1", ID_B)]) + "      port: 1\n";
    error(&text, "outbound.routes[0].port");
}

#[test]
fn bad_socket_address_says_what_was_expected() {
    let shown = error(
        &MINIMAL.replace("127.0.0.1:8080", "localhost"),
        "inbound.app",
    );
    assert!(shown.contains("expected an IP address and port"), "{shown}");
    assert!(
        shown.contains("\"localhost\""),
        "quotes the bad value: {shown}"
    );

    // No port.
    let shown = error(
        &format!("{MINIMAL}admin:\n  listen: 127.0.0.1\n"),
        "admin.listen",
    );
    assert!(shown.contains("expected an IP address and port"), "{shown}");
}

#[test]
fn bad_duration_says_what_was_expected() {
    let shown = error(
        &format!("{MINIMAL}shutdown:\n  drain_timeout: soon\n"),
        "shutdown.drain_timeout",
    );
    assert!(shown.contains("expected a duration"), "{shown}");
    assert!(shown.contains("\"soon\""), "{shown}");

    // A bare number has no unit: refused rather than guessed.
    let shown = error(
        &format!("{MINIMAL}outbound:\n  connect_timeout: \"5\"\n"),
        "outbound.connect_timeout",
    );
    assert!(shown.contains("expected a duration"), "{shown}");
}

#[test]
fn bad_route_identity_says_which_spiffe_rule() {
    let cases = [
        ("spiffe://mesh.local/ns/../sa/b", "\".\" or \"..\" segment"),
        ("http://mesh.local/ns/shop/sa/b", "scheme"),
        ("spiffe://mesh.local/ns/shop?x=1", "query"),
        ("spiffe://Mesh.local/b", "lowercase"),
        ("spiffe://mesh.local/ns//b", "empty segment"),
    ];
    for (id, rule) in cases {
        let shown = error(
            &with_routes(&[("b", "b:1", id)]),
            "outbound.routes[0].identity",
        );
        assert!(shown.contains("expected a SPIFFE ID"), "{id}: {shown}");
        assert!(
            shown.contains(rule),
            "{id}: names the rule ({rule}): {shown}"
        );
    }
}

#[test]
fn bare_trust_domain_route_identity_is_refused() {
    let text = with_routes(&[("a", "a:1", ID_B), ("b", "b:1", "spiffe://mesh.local")]);
    let shown = error(&text, "outbound.routes[1].identity");
    assert!(shown.contains("bare trust domain"), "{shown}");
}

#[test]
fn route_host_with_a_port_or_scheme_is_refused() {
    for host in ["b:80", "http://b", "b/path", "", "a..b"] {
        let shown = error(
            &with_routes(&[(host, "b:1", ID_B)]),
            "outbound.routes[0].host",
        );
        assert!(shown.contains("no port, no scheme"), "{host:?}: {shown}");
    }
}

#[test]
fn route_address_without_a_port_is_refused() {
    for address in ["b", "b:", "b:http", "b:70000", "10.0.0.1", "http://b:80"] {
        let shown = error(
            &with_routes(&[("b", address, ID_B)]),
            "outbound.routes[0].address",
        );
        assert!(shown.contains("expected host:port"), "{address:?}: {shown}");
    }
}

#[test]
fn duplicate_route_hosts_name_both_routes() {
    // Hosts are compared after lowercasing.
    let text = with_routes(&[("b", "b:1", ID_B), ("B", "c:1", ID_B)]);
    let shown = error(&text, "outbound.routes[1].host");
    assert!(
        shown.contains("outbound.routes[0]"),
        "names the first one: {shown}"
    );
    assert!(shown.contains("\"b\""), "names the host: {shown}");
}

#[test]
fn two_listeners_on_the_same_address_are_refused() {
    let shown = error(
        &format!("{MINIMAL}outbound:\n  listen: 127.0.0.1:15000\n"),
        "admin.listen",
    );
    assert!(shown.contains("127.0.0.1:15000"), "{shown}");
    assert!(
        shown.contains("outbound.listen"),
        "names the other listener: {shown}"
    );

    let text = MINIMAL.replace("inbound:\n", "inbound:\n  listen: 127.0.0.1:15001\n");
    let shown = error(&text, "outbound.listen");
    assert!(shown.contains("inbound.listen"), "{shown}");
}

#[test]
fn listeners_on_ephemeral_ports_may_share_the_ip() {
    let text = MINIMAL.replace("inbound:\n", "inbound:\n  listen: 127.0.0.1:0\n")
        + "outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n";
    parse(&text).unwrap();
}

#[test]
fn app_equal_to_inbound_listen_is_refused() {
    let shown = error(
        &MINIMAL.replace("127.0.0.1:8080", "0.0.0.0:15006"),
        "inbound.app",
    );
    assert!(shown.contains("inbound.listen"), "{shown}");

    let text = MINIMAL.replace("inbound:\n", "inbound:\n  listen: 127.0.0.1:9000\n");
    error(
        &text.replace("127.0.0.1:8080", "127.0.0.1:9000"),
        "inbound.app",
    );
}

#[test]
fn app_on_loopback_behind_a_wildcard_inbound_listen_is_refused() {
    // inbound.listen defaults to 0.0.0.0:15006, which also accepts
    // connections to 127.0.0.1:15006: the app cannot be there.
    let shown = error(
        &MINIMAL.replace("127.0.0.1:8080", "127.0.0.1:15006"),
        "inbound.app",
    );
    assert!(shown.contains("inbound.listen"), "{shown}");

    let text = MINIMAL.replace("inbound:\n", "inbound:\n  listen: \"[::]:9000\"\n");
    error(
        &text.replace("127.0.0.1:8080", "\"[::1]:9000\""),
        "inbound.app",
    );

    // The same port on another host is a different socket.
    parse(&MINIMAL.replace("127.0.0.1:8080", "10.1.2.3:15006")).unwrap();
    // And a specific inbound IP leaves the other loopback addresses free.
    let text = MINIMAL.replace("inbound:\n", "inbound:\n  listen: 10.1.2.3:9000\n");
    parse(&text.replace("127.0.0.1:8080", "127.0.0.1:9000")).unwrap();
}

#[test]
fn empty_service_is_refused() {
    for service in ["\"\"", "\"   \""] {
        let text = MINIMAL.replace("service: orders", &format!("service: {service}"));
        let shown = error(&text, "service");
        assert!(shown.contains("non-empty service name"), "{shown}");
    }
}

#[test]
fn missing_identity_is_named() {
    let text = MINIMAL.replace(
        "identity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n",
        "",
    );
    // A missing key is reported as that key.
    let shown = error(&text, "identity");
    assert!(shown.contains("required, but missing"), "{shown}");
}

#[test]
fn missing_nested_key_is_named() {
    let text = MINIMAL.replace("  bundle: certs/bundle.pem\n", "");
    let shown = error(&text, "identity.bundle");
    assert!(shown.contains("required, but missing"), "{shown}");
}

#[test]
fn unsupported_tls_version_is_refused() {
    let shown = error(
        &format!("{MINIMAL}tls:\n  min_version: \"1.1\"\n"),
        "tls.min_version",
    );
    assert!(shown.contains("`1.1`"), "{shown}");
    assert!(
        shown.contains("`1.2` or `1.3`"),
        "says what is accepted: {shown}"
    );
}

#[test]
fn yaml_syntax_error_names_the_file_and_the_line() {
    for text in [
        "service: s\nidentity: {cert: c, key: k\n",
        "service: s\n\tidentity: x\n",
        "service: 'unterminated\n",
    ] {
        let err = parse(text).unwrap_err();
        let shown = err.to_string();
        assert_eq!(err.file, Path::new(FILE));
        assert!(shown.starts_with(&format!("{FILE}: ")), "{shown}");
        assert!(shown.contains("line "), "has a line number: {shown}");
    }
}

#[test]
fn wrong_shapes_are_refused() {
    let shown = error("- a\n- b\n", "");
    assert!(shown.contains("invalid type"), "{shown}");

    let shown = error("", "service");
    assert!(shown.contains("required, but missing"), "{shown}");

    let text = MINIMAL.replace("cert: certs/cert.pem", "cert: [a, b]");
    error(&text, "identity.cert");

    let shown = error(
        &format!("{MINIMAL}tls:\n  post_quantum: maybe\n"),
        "tls.post_quantum",
    );
    assert!(shown.contains("expected a boolean"), "{shown}");
}

#[test]
fn display_without_a_key_has_no_key_part() {
    let err = ConfigError {
        file: FILE.into(),
        key: String::new(),
        message: "boom".into(),
    };
    assert_eq!(err.to_string(), format!("{FILE}: boom"));
    let err = ConfigError {
        key: "inbound.app".into(),
        ..err
    };
    assert_eq!(err.to_string(), format!("{FILE}: key `inbound.app`: boom"));
}

#[test]
fn runtime_workers_default_to_one_and_are_bounded() {
    assert_eq!(parse(MINIMAL).unwrap().runtime.workers, 1);
    let two = parse(&format!("{MINIMAL}runtime:\n  workers: 2\n")).unwrap();
    assert_eq!(two.runtime.workers, 2);
    for bad in ["0", "257", "-1", "many"] {
        let shown = error(
            &format!("{MINIMAL}runtime:\n  workers: {bad}\n"),
            "runtime.workers",
        );
        assert!(!shown.is_empty());
    }
    let shown = error(
        &format!("{MINIMAL}runtime:\n  workers: 0\n"),
        "runtime.workers",
    );
    assert!(shown.contains("from 1 to 256"), "{shown}");
}

#[test]
fn policy_section_defaults_and_paths() {
    let cfg = parse(&format!(
        "{MINIMAL}policy:\n  files: [authz.rego, /abs/roles.rego]\n  data: [data.json]\n"
    ))
    .unwrap();
    let p = cfg.policy.unwrap();
    assert_eq!(p.files[0], Path::new("/etc/usher/authz.rego"));
    assert_eq!(p.files[1], Path::new("/abs/roles.rego"));
    assert_eq!(p.data[0], Path::new("/etc/usher/data.json"));
    assert_eq!(p.query, "data.usher.authz.allow");
    assert_eq!(p.mode, crate::config::PolicyMode::Enforce);
    assert_eq!(p.rego_version, crate::config::RegoVersionConfig::V1);
    assert_eq!(p.eval_timeout, std::time::Duration::from_millis(50));
    assert!(p.with_body.is_none());
    assert_eq!(p.decision_log.allow_sample_rate, 1.0);
    assert_eq!(p.decision_cache.entries, 2048);
    assert!(p.watch);
    assert!(parse(MINIMAL).unwrap().policy.is_none());
}

#[test]
fn policy_section_errors_name_the_key() {
    for (yaml, key, says) in [
        ("policy:\n  files: []\n", "policy.files", "at least one"),
        (
            "policy:\n  files: [a.rego]\n  mode: strict\n",
            "policy.mode",
            "enforce",
        ),
        (
            "policy:\n  files: [a.rego]\n  query: allow\n",
            "policy.query",
            "data.usher.authz.allow",
        ),
        (
            "policy:\n  files: [a.rego]\n  rego_version: v2\n",
            "policy.rego_version",
            "v0",
        ),
        (
            "policy:\n  files: [a.rego]\n  decision_log: {allow_sample_rate: 1.5}\n",
            "policy.decision_log.allow_sample_rate",
            "0.0 to 1.0",
        ),
        (
            "policy:\n  files: [a.rego]\n  decision_cache: {entries: 2000000}\n",
            "policy.decision_cache.entries",
            "0 (off)",
        ),
        (
            "policy:\n  files: [a.rego]\n  decision_cache: {size: 10}\n",
            "policy.decision_cache.size",
            "expected `entries`",
        ),
        (
            "policy:\n  files: [a.rego]\n  with_body: {max_bytes: 0}\n",
            "policy.with_body.max_bytes",
            "1 MiB",
        ),
        (
            "policy:\n  query: data.x.allow\n",
            "policy.files",
            "missing",
        ),
    ] {
        let shown = error(&format!("{MINIMAL}{yaml}"), key);
        assert!(shown.contains(says), "{yaml}: {shown}");
    }
}

#[test]
fn the_example_config_in_examples_parses() {
    // examples/usher.yaml documents every key: keep it loadable.
    let path = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/usher.yaml"
    ));
    let text = std::fs::read_to_string(path).unwrap();
    let cfg = Config::parse(&text, path, Path::new("/etc/usher")).unwrap();
    assert_eq!(cfg.service, "orders");
    assert_eq!(cfg.outbound.routes.len(), 1);
    assert_eq!(cfg.runtime.workers, 1);
    assert!(!cfg.identity.files().unwrap().allow_insecure_key_permissions);
    assert!(
        cfg.warnings.is_empty(),
        "no old spellings: {:?}",
        cfg.warnings
    );
    let policy = cfg.policy.expect("the example shows a policy section");
    assert_eq!(policy.files, [Path::new("/etc/usher/authz.rego")]);
    let otlp = cfg
        .telemetry
        .otlp
        .expect("the example shows telemetry.otlp");
    assert_eq!(otlp.endpoint, "http://127.0.0.1:4317");
}

#[test]
fn telemetry_defaults_and_keys() {
    let config = parse(MINIMAL).unwrap();
    assert!(config.telemetry.otlp.is_none());
    assert!(config.telemetry.access_log);
    assert_eq!(config.telemetry.sampling, 1.0);

    let config = parse(&format!(
        "{MINIMAL}telemetry:\n  otlp: {{ endpoint: http://127.0.0.1:4318, protocol: http, batch_delay: 50ms }}\n  sampling: 0.25\n  access_log: false\n"
    ))
    .unwrap();
    let otlp = config.telemetry.otlp.unwrap();
    assert_eq!(otlp.protocol, crate::config::OtlpProtocol::Http);
    assert_eq!(otlp.traces_url(), "http://127.0.0.1:4318/v1/traces");
    assert_eq!(otlp.batch_delay, std::time::Duration::from_millis(50));
    assert_eq!(config.telemetry.sampling, 0.25);
    assert!(!config.telemetry.access_log);

    let config = parse(&format!(
        "{MINIMAL}telemetry:\n  otlp: {{ endpoint: http://collector:4318/custom/traces, protocol: http }}\n"
    ))
    .unwrap();
    assert_eq!(
        config.telemetry.otlp.unwrap().traces_url(),
        "http://collector:4318/custom/traces"
    );
    let config = parse(&format!(
        "{MINIMAL}telemetry:\n  otlp: {{ endpoint: http://127.0.0.1:4317 }}\n"
    ))
    .unwrap();
    assert_eq!(
        config.telemetry.otlp.unwrap().protocol,
        crate::config::OtlpProtocol::Grpc
    );
}

#[test]
fn telemetry_errors_name_the_key() {
    let shown = error(
        &format!("{MINIMAL}telemetry:\n  sampling: 1.5\n"),
        "telemetry.sampling",
    );
    assert!(shown.contains("fraction from 0.0 to 1.0"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}telemetry:\n  otlp: {{ endpoint: 127.0.0.1:4317 }}\n"),
        "telemetry.otlp.endpoint",
    );
    assert!(shown.contains("http://127.0.0.1:4317"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}telemetry:\n  otlp: {{ endpoint: https://collector:4317 }}\n"),
        "telemetry.otlp.endpoint",
    );
    assert!(
        shown.contains("https collectors are not supported"),
        "{shown}"
    );
    let shown = error(
        &format!("{MINIMAL}telemetry:\n  otlp: {{ endpoint: http://c:4317, protocol: thrift }}\n"),
        "telemetry.otlp.protocol",
    );
    assert!(shown.contains("grpc"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}telemetry:\n  otlp: {{ endpoint: http://c:4317, queue_size: 0 }}\n"),
        "telemetry.otlp.queue_size",
    );
    assert!(shown.contains("from 1 to"), "{shown}");
}

#[test]
fn allow_insecure_key_permissions_is_off_unless_given_and_only_for_files() {
    assert!(
        !parse(MINIMAL)
            .unwrap()
            .identity
            .files()
            .unwrap()
            .allow_insecure_key_permissions
    );
    let allowed = MINIMAL.replace(
        "  bundle: certs/bundle.pem\n",
        "  bundle: certs/bundle.pem\n  allow_insecure_key_permissions: true\n",
    );
    assert_ne!(allowed, MINIMAL, "the replacement applies");
    assert!(
        parse(&allowed)
            .unwrap()
            .identity
            .files()
            .unwrap()
            .allow_insecure_key_permissions
    );

    let ca_mode = MINIMAL.replace(
        "  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n",
        "  allow_insecure_key_permissions: true\n  ca:\n    url: https://ca.mesh:8443\n    bundle: ca.pem\n    token_file: token\n    spiffe_id: spiffe://mesh.local/ns/shop/sa/orders\n",
    );
    let shown = error(&ca_mode, "identity.allow_insecure_key_permissions");
    assert!(shown.contains("file mode"), "{shown}");
}

#[test]
fn identity_ca_mode_and_its_errors() {
    let ca_mode = MINIMAL.replace(
        "  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n",
        "  ca:\n    url: https://ca.mesh:8443\n    bundle: ca.pem\n    token_file: token\n    spiffe_id: spiffe://mesh.local/ns/shop/sa/orders\n",
    );
    assert_ne!(ca_mode, MINIMAL, "the replacement applies");
    let config = parse(&ca_mode).unwrap();
    let ca = config.identity.ca().unwrap().clone();
    assert_eq!(ca.bundle, Path::new("/etc/usher/ca.pem"));
    assert_eq!(ca.token_file, Path::new("/etc/usher/token"));
    assert_eq!(ca.renew_at, 0.7);

    // Both ways at once, or neither: refused, naming the key.
    let both = MINIMAL.replace(
        "  bundle: certs/bundle.pem\n",
        "  bundle: certs/bundle.pem\n  ca:\n    url: https://ca.mesh:8443\n    bundle: ca.pem\n    token_file: token\n    spiffe_id: spiffe://mesh.local/ns/shop/sa/orders\n",
    );
    let shown = error(&both, "identity.cert");
    assert!(shown.contains("together with identity.ca"), "{shown}");
    let neither = MINIMAL.replace("  key: certs/key.pem\n", "");
    let shown = error(&neither, "identity.key");
    assert!(shown.contains("required"), "{shown}");

    let shown = error(
        &ca_mode.replace("https://ca.mesh:8443", "http://ca.mesh:8443"),
        "identity.ca.url",
    );
    assert!(shown.contains("https://"), "{shown}");
    let shown = error(
        &ca_mode.replace(
            "    token_file: token\n",
            "    token_file: token\n    renew_at: 1.5\n",
        ),
        "identity.ca.renew_at",
    );
    assert!(shown.contains("0.1 to 0.95"), "{shown}");
}

#[test]
fn authentication_and_rate_limit_keys() {
    let config = parse(&format!(
        "{MINIMAL}authentication:\n  jwt:\n    - issuer: https://login.example.org\n      audiences: [orders]\n      jwks_file: jwks.json\n      required: true\n      claims_to_headers: {{sub: X-User-Id}}\n  leeway: 30s\n\
rate_limit:\n  per_caller: {{requests_per_second: 100, burst: 200}}\n  routes:\n    - {{path_prefix: /reports, requests_per_second: 1, burst: 2}}\n"
    ))
    .unwrap();
    let authn = config.authentication.unwrap();
    assert_eq!(
        authn.jwt[0].jwks_file.as_deref(),
        Some(Path::new("/etc/usher/jwks.json"))
    );
    assert_eq!(authn.jwt[0].from_headers[0].name, "authorization");
    assert_eq!(authn.jwt[0].from_headers[0].prefix, "Bearer ");
    assert_eq!(authn.jwt[0].claims_to_headers["sub"], "x-user-id");
    assert_eq!(authn.leeway, std::time::Duration::from_secs(30));
    let rl = config.rate_limit.unwrap();
    assert_eq!(rl.per_caller.unwrap().burst, 200);
    assert_eq!(rl.routes[0].path_prefix, "/reports");

    let shown = error(
        &format!("{MINIMAL}authentication:\n  jwt:\n    - issuer: x\n"),
        "authentication.jwt[0]",
    );
    assert!(shown.contains("jwks_file or jwks_url"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}rate_limit:\n  routes:\n    - {{path_prefix: reports, requests_per_second: 1, burst: 1}}\n"),
        "rate_limit.routes[0].path_prefix",
    );
    assert!(shown.contains("starting with /"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}rate_limit:\n  per_caller: {{requests_per_second: 0, burst: 1}}\n"),
        "rate_limit.per_caller.requests_per_second",
    );
    assert!(shown.contains("from 1 to"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}inbound:\n  app: 127.0.0.1:8080\n  max_header_bytes: 100\n")
            .replace("inbound:\n  app: 127.0.0.1:8080\ninbound:", "inbound:"),
        "inbound.max_header_bytes",
    );
    assert!(shown.contains("8192"), "{shown}");
}

#[test]
fn an_oversized_config_file_is_refused_before_parsing() {
    // Deeply nested flow collections take the YAML scanner quadratic time
    // (a fuzzing finding): the size cap bounds it.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("usher.yaml");
    let nested = format!("service: {}", "{a: ".repeat(300_000));
    std::fs::write(&path, nested).unwrap();
    let err = Config::load(&path).unwrap_err();
    assert_eq!(err.file, path);
    assert!(err.message.contains("at most 1048576"), "{err}");
}

/// The limits every listener applies: `server:` is their home.
#[test]
fn server_keys_apply_to_every_listener_and_default_without_warning() {
    let config = parse(MINIMAL).unwrap();
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.server.max_connections, 10_000);
    assert_eq!(config.server.max_header_bytes, 16 * 1024);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(30));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(300));
    assert_eq!(config.server.http2_max_concurrent_streams, 256);
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);

    let config = parse(&format!(
        "{MINIMAL}server:\n  max_connections: 2\n  max_header_bytes: 9000\n  header_read_timeout: 1s\n  idle_timeout: 2s\n  http2_max_concurrent_streams: 3\n"
    ))
    .unwrap();
    assert_eq!(
        config.server,
        ServerConfig {
            max_connections: 2,
            max_header_bytes: 9000,
            header_read_timeout: Duration::from_secs(1),
            idle_timeout: Duration::from_secs(2),
            http2_max_concurrent_streams: 3,
        }
    );
    assert!(config.warnings.is_empty(), "{:?}", config.warnings);
}

#[test]
fn the_old_spelling_under_inbound_still_works_with_a_warning() {
    let config = parse(&format!(
        "{MINIMAL}  max_connections: 2\n  max_header_bytes: 9000\n  header_read_timeout: 1s\n  idle_timeout: 2s\n  http2_max_concurrent_streams: 3\n"
    ))
    .unwrap();
    assert_eq!(config.server.max_connections, 2);
    assert_eq!(config.server.max_header_bytes, 9000);
    assert_eq!(config.server.header_read_timeout, Duration::from_secs(1));
    assert_eq!(config.server.idle_timeout, Duration::from_secs(2));
    assert_eq!(config.server.http2_max_concurrent_streams, 3);
    let keys: Vec<&str> = config.warnings.iter().map(|w| w.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "inbound.max_connections",
            "inbound.max_header_bytes",
            "inbound.header_read_timeout",
            "inbound.idle_timeout",
            "inbound.http2_max_concurrent_streams",
        ]
    );
    for w in &config.warnings {
        let new = w.key.replace("inbound.", "server.");
        assert!(
            w.message.contains(&new) && w.message.contains("old spelling still works"),
            "{w:?}"
        );
    }
    // One key moved, the others in their new home: one warning.
    let config = parse(&format!(
        "{MINIMAL}  idle_timeout: 2s\nserver:\n  max_connections: 5\n"
    ))
    .unwrap();
    assert_eq!(config.server.idle_timeout, Duration::from_secs(2));
    assert_eq!(config.server.max_connections, 5);
    assert_eq!(config.warnings.len(), 1, "{:?}", config.warnings);
}

/// Given in both places the two could disagree: an error, not a silent
/// pick (even when they agree, so that the old one gets removed).
#[test]
fn a_server_key_given_in_both_places_is_an_error() {
    for (key, value) in [
        ("max_connections", "2"),
        ("max_header_bytes", "9000"),
        ("header_read_timeout", "1s"),
        ("idle_timeout", "1s"),
        ("http2_max_concurrent_streams", "2"),
    ] {
        let text = format!("{MINIMAL}  {key}: {value}\nserver:\n  {key}: {value}\n");
        let shown = error(&text, &format!("inbound.{key}"));
        assert!(shown.contains(&format!("server.{key}")), "{shown}");
        assert!(shown.contains("given twice"), "{shown}");
    }
}

#[test]
fn server_keys_are_checked_like_any_other() {
    let shown = error(
        &format!("{MINIMAL}server:\n  max_header_bytes: 100\n"),
        "server.max_header_bytes",
    );
    assert!(shown.contains("8192"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}server:\n  idle_timeout: soon\n"),
        "server.idle_timeout",
    );
    assert!(shown.contains("duration"), "{shown}");
    let shown = error(
        &format!("{MINIMAL}server:\n  max_conections: 2\n"),
        "server.max_conections",
    );
    assert!(shown.contains("`max_connections`"), "{shown}");
}

#[test]
fn the_identity_source_is_files_or_a_ca() {
    let config = parse(MINIMAL).unwrap();
    assert!(matches!(config.identity, IdentitySource::Files(_)));
    assert!(config.identity.ca().is_none());
    let ca = MINIMAL.replace(
        "  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n",
        "  ca:\n    url: https://ca.mesh:8443\n    bundle: ca.pem\n    token_file: token\n    spiffe_id: spiffe://mesh.local/ns/shop/sa/orders\n",
    );
    let config = parse(&ca).unwrap();
    assert!(matches!(config.identity, IdentitySource::Ca(_)));
    assert!(config.identity.files().is_none());
}

/// `inbound.mode`, `inbound.port_modes`, `outbound.unknown`,
/// `outbound.listen_ipv6`, `*.detect_timeout`: defaults are strict and
/// refuse; bad values name their key.
#[test]
fn transparent_interception_keys() {
    let c = parse(MINIMAL).unwrap();
    assert_eq!(c.inbound.mode, InboundMode::Strict);
    assert!(c.inbound.port_modes.is_empty());
    assert_eq!(c.outbound.unknown.default, UnknownAction::Refuse);
    assert_eq!(c.outbound.listen_ipv6, None);
    assert_eq!(c.outbound.detect_timeout, Duration::from_secs(1));

    let text = format!(
        "{}  mode: permissive\n  port_modes: {{9090: strict}}\n  detect_timeout: 2s\n\
         outbound:\n  listen_ipv6: \"[::1]:15001\"\n  unknown:\n    default: refuse\n    passthrough: [\"*:53\", \"10.0.0.0/8:443\"]\n    refuse: [\"169.254.169.254\"]\n",
        MINIMAL
    );
    let c = parse(&text).unwrap();
    assert_eq!(c.inbound.mode, InboundMode::Permissive);
    assert_eq!(c.inbound.port_modes.get(&9090), Some(&InboundMode::Strict));
    assert_eq!(c.inbound.detect_timeout, Duration::from_secs(2));
    assert_eq!(c.outbound.listen_ipv6, Some("[::1]:15001".parse().unwrap()));
    let dest = |s: &str| s.parse::<SocketAddr>().unwrap();
    assert_eq!(
        c.outbound.unknown.action(dest("10.1.2.3:443")),
        UnknownAction::Passthrough
    );
    assert_eq!(
        c.outbound.unknown.action(dest("10.1.2.3:80")),
        UnknownAction::Refuse
    );
    let c = parse(&format!("{MINIMAL}outbound:\n  unknown: passthrough\n")).unwrap();
    assert_eq!(c.outbound.unknown.default, UnknownAction::Passthrough);

    let shown = error(&format!("{MINIMAL}  mode: open\n"), "inbound.mode");
    assert!(
        shown.contains("strict") && shown.contains("permissive"),
        "{shown}"
    );
    error(
        &format!("{MINIMAL}  port_modes: {{http: strict}}\n"),
        "inbound.port_modes",
    );
    let shown = error(
        &format!("{MINIMAL}outbound:\n  unknown: {{passthrough: [\"example.com:443\"]}}\n"),
        "outbound.unknown",
    );
    assert!(shown.contains("expected"), "{shown}");
    error(
        &format!("{MINIMAL}outbound:\n  unknown: allow\n"),
        "outbound.unknown",
    );
    error(
        &format!("{MINIMAL}outbound:\n  listen_ipv6: localhost\n"),
        "outbound.listen_ipv6",
    );
    // Never reachable from outside the pod.
    for (yaml, key) in [
        ("  listen: 0.0.0.0:15001\n", "outbound.listen"),
        ("  listen: 10.0.0.5:15001\n", "outbound.listen"),
        ("  listen_ipv6: \"[::]:15001\"\n", "outbound.listen_ipv6"),
        (
            "  listen_ipv6: \"[fd00::5]:15001\"\n",
            "outbound.listen_ipv6",
        ),
    ] {
        let shown = error(&format!("{MINIMAL}outbound:\n{yaml}"), key);
        assert!(shown.contains("loopback"), "{shown}");
    }
}
