//! The `usher` command line as an operator meets it: help texts, the mini-CA
//! commands and the start-up errors of `usher run`, all through the real
//! binary.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::support::process::{usher, UsherProcess};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::{FromDer, X509Certificate};

const TD: &str = "mesh.local";
const ORDERS: &str = "spiffe://mesh.local/ns/shop/sa/orders";

fn run(args: &[&str]) -> Output {
    usher().args(args).output().expect("run usher")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[track_caller]
fn assert_success(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status,
        stdout(out),
        stderr(out)
    );
}

#[track_caller]
fn assert_failure(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "expected a failure, got success\nstdout: {}",
        stdout(out)
    );
    stderr(out)
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `usher ca init` into `<tmp>/ca`.
fn init_ca(tmp: &Path) -> PathBuf {
    let dir = tmp.join("ca");
    assert_success(&run(&[
        "ca",
        "init",
        "--trust-domain",
        TD,
        "--dir",
        path_str(&dir),
    ]));
    dir
}

/// `usher ca issue` with `extra` arguments; returns the output and the out dir.
fn issue(tmp: &Path, ca: &Path, spiffe_id: &str, extra: &[&str]) -> (Output, PathBuf) {
    let out_dir = tmp.join("certs");
    let mut args = vec![
        "ca",
        "issue",
        "--ca-dir",
        path_str(ca),
        "--spiffe-id",
        spiffe_id,
        "--out",
        path_str(&out_dir),
    ];
    args.extend_from_slice(extra);
    (run(&args), out_dir)
}

fn leaf_der(certs: &Path) -> Vec<u8> {
    CertificateDer::pem_file_iter(certs.join("cert.pem"))
        .unwrap()
        .next()
        .expect("a certificate in cert.pem")
        .unwrap()
        .to_vec()
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

// ---- help ----------------------------------------------------------------

#[test]
fn every_help_text_has_an_example() {
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["demo", "--help"],
        &["ca", "--help"],
        &["ca", "init", "--help"],
        &["ca", "issue", "--help"],
        &["ca", "token", "--help"],
        &["ca", "serve", "--help"],
    ] {
        let out = run(args);
        assert_success(&out);
        let text = stdout(&out);
        assert!(text.contains("Example"), "usher {args:?}:\n{text}");
        assert!(text.contains("Usage: usher"), "usher {args:?}:\n{text}");
    }
}

#[test]
fn help_texts_describe_their_command() {
    let text = stdout(&run(&["ca", "init", "--help"]));
    assert!(text.contains("--trust-domain"), "{text}");
    assert!(text.contains("--force"), "{text}");
    let text = stdout(&run(&["ca", "issue", "--help"]));
    for flag in ["--ca-dir", "--spiffe-id", "--out", "--ttl", "--dns"] {
        assert!(text.contains(flag), "{flag}: {text}");
    }
    let text = stdout(&run(&["run", "--help"]));
    assert!(text.contains("--config"), "{text}");
}

#[test]
fn no_command_is_a_usage_error() {
    let out = run(&[]);
    let err = assert_failure(&out);
    assert_eq!(out.status.code(), Some(2));
    assert!(err.contains("Usage: usher"), "{err}");
}

// ---- ca init ---------------------------------------------------------------

#[test]
fn ca_init_writes_the_root_and_a_private_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = run(&["ca", "init", "--trust-domain", TD, "--dir", path_str(&dir)]);
    assert_success(&out);
    assert!(stdout(&out).contains(TD), "{}", stdout(&out));

    let cert = dir.join("ca.pem");
    let key = dir.join("ca-key.pem");
    assert!(cert.is_file());
    assert!(key.is_file());
    assert_eq!(mode(&key), 0o600, "the CA key is private");

    let der = CertificateDer::from_pem_file(&cert).unwrap();
    let id = usher_ca::spiffe_id_from_cert_der(&der).unwrap();
    assert_eq!(
        id.as_str(),
        "spiffe://mesh.local",
        "the root names the trust domain"
    );
}

#[test]
fn ca_init_refuses_to_overwrite_without_force() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = init_ca(tmp.path());
    let cert = dir.join("ca.pem");
    let before = std::fs::read(&cert).unwrap();

    let out = run(&["ca", "init", "--trust-domain", TD, "--dir", path_str(&dir)]);
    let err = assert_failure(&out);
    assert!(
        err.contains(path_str(&cert)),
        "names the existing file: {err}"
    );
    assert!(err.contains("--force"), "says how to replace it: {err}");
    assert_eq!(std::fs::read(&cert).unwrap(), before, "the CA is untouched");

    let out = run(&[
        "ca",
        "init",
        "--trust-domain",
        TD,
        "--dir",
        path_str(&dir),
        "--force",
    ]);
    assert_success(&out);
    assert_ne!(std::fs::read(&cert).unwrap(), before, "a new root");
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);
}

#[test]
fn ca_init_refuses_an_invalid_trust_domain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("ca");
    let out = run(&[
        "ca",
        "init",
        "--trust-domain",
        "Mesh.Local",
        "--dir",
        path_str(&dir),
    ]);
    let err = assert_failure(&out);
    assert!(err.contains("invalid trust domain \"Mesh.Local\""), "{err}");
    assert!(err.contains("lowercase"), "{err}");
    assert!(!dir.join("ca-key.pem").exists(), "nothing is written");
}

// ---- ca issue --------------------------------------------------------------

#[test]
fn ca_issue_writes_cert_key_and_bundle_for_the_requested_id() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(tmp.path(), &ca, ORDERS, &[]);
    assert_success(&out);
    assert!(stdout(&out).contains(ORDERS), "{}", stdout(&out));

    for f in ["cert.pem", "key.pem", "bundle.pem"] {
        assert!(certs.join(f).is_file(), "{f}");
    }
    assert_eq!(
        mode(&certs.join("key.pem")),
        0o600,
        "the workload key is private"
    );
    assert_eq!(
        std::fs::read(certs.join("bundle.pem")).unwrap(),
        std::fs::read(ca.join("ca.pem")).unwrap(),
        "the bundle is the root"
    );

    let id = usher_ca::spiffe_id_from_cert_der(&leaf_der(&certs)).unwrap();
    assert_eq!(id.as_str(), ORDERS);

    // Default lifetime: 24 h.
    let der = leaf_der(&certs);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let left = cert.validity().not_after.timestamp() - now_secs();
    assert!(
        (24 * 3600 - 300..=24 * 3600).contains(&left),
        "{left} s left"
    );
}

#[test]
fn ca_issue_adds_dns_names() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(
        tmp.path(),
        &ca,
        ORDERS,
        &["--dns", "api.local", "--dns", "orders.shop.svc"],
    );
    assert_success(&out);
    let der = leaf_der(&certs);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("a subjectAltName extension");
    let dns: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::DNSName(d) => Some(*d),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["api.local", "orders.shop.svc"]);
    let uris: Vec<&str> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some(*u),
            _ => None,
        })
        .collect();
    assert_eq!(uris, [ORDERS], "exactly one URI SAN: the SPIFFE ID");
}

#[test]
fn ca_issue_with_ttl_sets_the_validity() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(tmp.path(), &ca, ORDERS, &["--ttl", "1h"]);
    assert_success(&out);
    let der = leaf_der(&certs);
    let (_, cert) = X509Certificate::from_der(&der).unwrap();
    let left = cert.validity().not_after.timestamp() - now_secs();
    assert!(
        (3600 - 300..=3600).contains(&left),
        "about an hour: {left} s"
    );
    let since = now_secs() - cert.validity().not_before.timestamp();
    assert!(
        (0..=600).contains(&since),
        "valid from about now: {since} s ago"
    );
}

#[test]
fn ca_issue_refuses_a_bad_ttl() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(tmp.path(), &ca, ORDERS, &["--ttl", "soon"]);
    let err = assert_failure(&out);
    assert!(err.contains("expected a duration"), "{err}");
    assert!(!certs.exists());

    let (out, _) = issue(tmp.path(), &ca, ORDERS, &["--ttl", "400days"]);
    let err = assert_failure(&out);
    assert!(err.contains("at most 365 days"), "{err}");
}

#[test]
fn ca_issue_refuses_bad_spiffe_ids_saying_which_rule() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let cases = [
        (
            "spiffe://other.local/ns/shop/sa/orders",
            "not in this CA's trust domain \"mesh.local\"",
        ),
        (
            "spiffe://mesh.local/ns/shop?sa=orders",
            "must not contain a query",
        ),
        ("spiffe://mesh.local/ns/../sa/orders", "\"..\" segment"),
        (
            "http://mesh.local/ns/shop/sa/orders",
            "scheme \"spiffe://\"",
        ),
        ("spiffe://mesh.local", "no path"),
    ];
    for (id, rule) in cases {
        let (out, certs) = issue(tmp.path(), &ca, id, &[]);
        let err = assert_failure(&out);
        assert!(err.contains(rule), "{id}: names the rule ({rule}): {err}");
        assert!(err.contains(id), "{id}: names the ID: {err}");
        assert!(!certs.exists(), "{id}: nothing is written");
    }
}

#[test]
fn ca_issue_without_a_ca_names_the_missing_file() {
    let tmp = tempfile::tempdir().unwrap();
    let nowhere = tmp.path().join("no-ca");
    let (out, _) = issue(tmp.path(), &nowhere, ORDERS, &[]);
    let err = assert_failure(&out);
    assert!(err.contains(path_str(&nowhere.join("ca.pem"))), "{err}");
}

// ---- run -----------------------------------------------------------------

#[test]
fn run_with_a_missing_config_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("missing.yaml");
    let out = run(&["run", "--config", path_str(&missing)]);
    let err = assert_failure(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(path_str(&missing)), "{err}");
    assert!(err.contains("cannot read"), "{err}");
}

/// A port the test holds: a listener on 127.0.0.1, so that any attempt to
/// bind the port fails ("address in use") for as long as it lives.
fn held_port() -> (TcpListener, u16) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

/// A config that would be valid but for `extra`, with `inbound.listen` on
/// `port` (one the test holds, or 0).
fn config_with(tmp: &Path, port: u16, extra: &str, app: &str) -> PathBuf {
    let path = tmp.join("usher.yaml");
    std::fs::write(
        &path,
        format!(
            "service: orders\nidentity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\n\
inbound:\n  listen: 127.0.0.1:{port}\n  app: {app}\n\
outbound:\n  listen: 127.0.0.1:0\nadmin:\n  listen: 127.0.0.1:0\n{extra}"
        ),
    )
    .unwrap();
    path
}

#[test]
fn run_with_an_invalid_config_exits_2_naming_file_and_key_and_binds_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    // Real certificates, so only the config is wrong.
    let ca = init_ca(tmp.path());
    assert_success(&issue(tmp.path(), &ca, ORDERS, &[]).0);

    let cases = [
        ("polciy:\n  allow: []\n", "127.0.0.1:8080", "polciy"),
        ("", "localhost", "inbound.app"),
        (
            "shutdown:\n  drain_timeout: soon\n",
            "127.0.0.1:8080",
            "shutdown.drain_timeout",
        ),
    ];
    for (extra, app, key) in cases {
        // inbound.listen is a port the test holds: had usher bound its
        // listeners before refusing the config, that bind would have failed
        // first ("address in use", exit 1), not the config check.
        let (_held, port) = held_port();
        let config = config_with(tmp.path(), port, extra, app);
        let out = run(&["run", "--config", path_str(&config)]);
        let err = assert_failure(&out);
        assert_eq!(out.status.code(), Some(2), "{key}: {err}");
        assert!(
            err.contains(path_str(&config)),
            "{key}: names the file: {err}"
        );
        assert!(
            err.contains(&format!("key `{key}`")),
            "names the key: {err}"
        );
        assert!(
            !stdout(&out).contains("usher ready"),
            "{key}: never became ready: {}",
            stdout(&out)
        );
        assert!(!err.contains("in use"), "{key}: bound nothing: {err}");
    }

    // The same directory with a valid config gets as far as binding, and on
    // a held port that fails, naming the address: so the failures above are
    // the config's, and a bind before them would have shown.
    let (_held, port) = held_port();
    let good = config_with(tmp.path(), port, "", "127.0.0.1:8080");
    let out = run(&["run", "--config", path_str(&good)]);
    let err = assert_failure(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(&format!("127.0.0.1:{port}")) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn run_with_a_missing_certificate_names_the_file() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(tmp.path(), &ca, ORDERS, &[]);
    assert_success(&out);
    let cert = certs.join("cert.pem");
    std::fs::remove_file(&cert).unwrap();

    let config = config_with(tmp.path(), 0, "", "127.0.0.1:8080");
    let out = run_until_exit(&config);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(path_str(&cert)),
        "names the certificate file: {err}"
    );
    assert!(
        err.contains("key `identity.cert`"),
        "names the config key: {err}"
    );
    assert!(!stdout(&out).contains("usher ready"), "{}", stdout(&out));
}

/// `usher run --config FILE`, which must exit on its own: a sidecar that
/// started anyway would run until killed, so the wait is bounded.
fn run_until_exit(config: &Path) -> Output {
    let mut child = usher()
        .args(["run", "--config", path_str(config)])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let end = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if std::time::Instant::now() > end {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("usher run kept running: {}", stdout(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn run_with_a_missing_or_broken_jwks_file_exits_2_naming_it() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    assert_success(&issue(tmp.path(), &ca, ORDERS, &[]).0);
    std::fs::write(tmp.path().join("broken.json"), "{ not json").unwrap();
    for file in ["missing.json", "broken.json"] {
        let authn = format!(
            "authentication:\n  jwt:\n    - issuer: https://login.example.org\n      jwks_file: {file}\n"
        );
        let config = config_with(tmp.path(), 0, &authn, "127.0.0.1:8080");
        let out = run_until_exit(&config);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: a config error: {err}");
        assert!(
            err.contains(path_str(&tmp.path().join(file))),
            "{file}: names the file: {err}"
        );
        assert!(
            err.contains("authentication.jwt[0].jwks_file"),
            "{file}: names the key: {err}"
        );
        assert!(!stdout(&out).contains("usher ready"), "{}", stdout(&out));
    }
}

#[test]
fn run_refuses_a_key_file_others_can_read_unless_allowed_then_warns() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let (out, certs) = issue(tmp.path(), &ca, ORDERS, &[]);
    assert_success(&out);
    let key = certs.join("key.pem");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).unwrap();

    let config = config_with(tmp.path(), 0, "", "127.0.0.1:8080");
    let out = run_until_exit(&config);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(path_str(&key)), "names the file: {err}");
    assert!(err.contains("mode 0640"), "says the mode: {err}");
    assert!(
        err.contains(&format!("chmod 600 {}", path_str(&key))),
        "says the fix: {err}"
    );
    assert!(
        err.contains("identity.allow_insecure_key_permissions"),
        "names the override: {err}"
    );
    assert!(!stdout(&out).contains("usher ready"), "{}", stdout(&out));

    // The operator accepts the risk: it starts, and says so once.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "  bundle: certs/bundle.pem\n",
        "  bundle: certs/bundle.pem\n  allow_insecure_key_permissions: true\n",
    );
    std::fs::write(&config, text).unwrap();
    let sidecar = UsherProcess::start(&config);
    let warnings: Vec<serde_json::Value> = sidecar
        .startup
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("INSECURE"))
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{:?}", sidecar.startup);
    let warning = &warnings[0];
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["target"], "usher::audit");
    assert_eq!(warning["key"], path_str(&key));
    assert_eq!(warning["mode"], "0640");
}

// ---- ca token, ca serve, intermediates ----------------------------------

#[test]
fn ca_token_prints_a_token_and_keeps_only_its_hash() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let out = run(&[
        "ca",
        "token",
        "--ca-dir",
        path_str(&ca),
        "--spiffe-id",
        &format!("spiffe://{TD}/ns/shop/*"),
        "--ttl",
        "10m",
        "--single-use",
    ]);
    assert_success(&out);
    let token = stdout(&out).trim().to_string();
    assert!(token.starts_with("usher-bt-"), "{token}");
    let stored = std::fs::read_to_string(ca.join("tokens.jsonl")).unwrap();
    assert!(
        !stored.contains(&token),
        "the token itself must not be stored"
    );
    assert!(stored.contains("single_use"), "{stored}");
    assert_eq!(
        mode(&ca.join("tokens.jsonl")) & 0o077,
        0,
        "tokens file is private"
    );

    let out = run(&[
        "ca",
        "token",
        "--ca-dir",
        path_str(&ca),
        "--spiffe-id",
        "spiffe://other.domain/ns/x",
    ]);
    let err = assert_failure(&out);
    assert!(
        err.contains("trust domain") || err.contains("other.domain"),
        "{err}"
    );
}

#[test]
fn ca_init_makes_an_intermediate_below_a_root() {
    let tmp = tempfile::tempdir().unwrap();
    let root = init_ca(tmp.path());
    let inter = tmp.path().join("intermediate");
    assert_success(&run(&[
        "ca",
        "init",
        "--dir",
        path_str(&inter),
        "--parent-dir",
        path_str(&root),
    ]));
    let (out, certs) = issue(tmp.path(), &inter, &format!("spiffe://{TD}/ns/a/sa/b"), &[]);
    assert_success(&out);
    // The chain served is leaf + intermediate; the bundle is the root.
    let chain: Vec<_> = CertificateDer::pem_file_iter(certs.join("cert.pem"))
        .unwrap()
        .collect();
    assert_eq!(chain.len(), 2, "leaf and intermediate");
    assert_eq!(
        std::fs::read_to_string(certs.join("bundle.pem")).unwrap(),
        std::fs::read_to_string(root.join("ca.pem")).unwrap()
    );
}

#[test]
fn ca_init_below_a_parent_keeps_its_trust_domain_and_says_intermediate() {
    let tmp = tempfile::tempdir().unwrap();
    let root = init_ca(tmp.path());
    let inter = tmp.path().join("intermediate");
    let out = run(&[
        "ca",
        "init",
        "--dir",
        path_str(&inter),
        "--parent-dir",
        path_str(&root),
        "--trust-domain",
        "other.local",
    ]);
    let err = assert_failure(&out);
    assert_eq!(out.status.code(), Some(2), "a usage error: {err}");
    assert!(err.contains("\"other.local\""), "{err}");
    assert!(err.contains(&format!("\"{TD}\"")), "the parent's: {err}");
    assert!(err.contains(path_str(&root)), "names the parent: {err}");
    assert!(!inter.join("ca-key.pem").exists(), "nothing is written");

    // The parent's own trust domain (or none) is fine, and it is reported
    // as what it is.
    let out = run(&[
        "ca",
        "init",
        "--dir",
        path_str(&inter),
        "--parent-dir",
        path_str(&root),
        "--trust-domain",
        TD,
    ]);
    assert_success(&out);
    let text = stdout(&out);
    assert!(text.contains("intermediate certificate"), "{text}");
    assert!(!text.contains("root certificate"), "{text}");
    assert!(text.contains(TD), "{text}");
    assert!(text.contains(path_str(&inter.join("bundle.pem"))), "{text}");
    let der = CertificateDer::from_pem_file(inter.join("ca.pem")).unwrap();
    assert_eq!(
        usher_ca::spiffe_id_from_cert_der(&der).unwrap().as_str(),
        "spiffe://mesh.local"
    );

    // A root still says root.
    let out = run(&[
        "ca",
        "init",
        "--trust-domain",
        TD,
        "--dir",
        path_str(&tmp.path().join("root2")),
    ]);
    assert_success(&out);
    assert!(
        stdout(&out).contains("root certificate"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn ca_serve_runs_until_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "ca",
            "serve",
            "--ca-dir",
            path_str(&ca),
            "--listen",
            "127.0.0.1:0",
            "--cert-ttl",
            "1h",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .find(|l| l.contains("usher CA ready"));
    let line = ready.expect("the CA logs that it is ready");
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(
        v["listen"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{line}"
    );
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(0));
}

#[test]
fn ca_serve_takes_service_account_tokens_and_a_state_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let ca = init_ca(tmp.path());
    let serve = |extra: &[&str]| {
        let mut args = vec![
            "ca",
            "serve",
            "--ca-dir",
            path_str(&ca),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        run(&args)
    };
    // The k8s options that only mean something with an issuer or keys.
    for orphan in [
        &["--k8s-audience", "mesh"][..],
        &["--k8s-ca-file", "ca.crt"][..],
        &["--k8s-api-token-file", "token"][..],
    ] {
        let out = serve(orphan);
        assert_eq!(out.status.code(), Some(2), "{orphan:?}");
        assert!(
            stderr(&out).contains("--k8s-issuer or --k8s-jwks"),
            "{}",
            stderr(&out)
        );
    }
    // Keys over plain HTTP are refused on the command line.
    let out = serve(&["--k8s-jwks", "http://kubernetes.default.svc/openid/v1/jwks"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("https"), "{}", stderr(&out));
    // Keys without the issuer whose tokens they sign: refused (`iss` is
    // always checked).
    let missing = tmp.path().join("missing.json");
    let out = serve(&["--k8s-jwks", path_str(&missing)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("give --k8s-issuer"),
        "{}",
        stderr(&out)
    );
    // Keys that cannot be read: the CA does not start.
    let out = serve(&[
        "--k8s-issuer",
        "https://kubernetes.default.svc.cluster.local",
        "--k8s-jwks",
        path_str(&missing),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot read --k8s-jwks"),
        "{}",
        stderr(&out)
    );

    // A JWKS file and a state directory: it starts, and says so.
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let mut jwk =
        jsonwebtoken::jwk::Jwk::from_encoding_key(&key, jsonwebtoken::Algorithm::ES256).unwrap();
    jwk.common.key_id = Some("k1".to_owned());
    let jwks = tmp.path().join("jwks.json");
    std::fs::write(&jwks, serde_json::json!({ "keys": [jwk] }).to_string()).unwrap();
    let state = tmp.path().join("state");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_usher"))
        .args([
            "ca",
            "serve",
            "--ca-dir",
            path_str(&ca),
            "--state-dir",
            path_str(&state),
            "--listen",
            "127.0.0.1:0",
            "--k8s-issuer",
            "https://kubernetes.default.svc.cluster.local",
            "--k8s-jwks",
            path_str(&jwks),
            "--k8s-audience",
            "mesh-ca",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    let mut loaded = None;
    let mut ready = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if line.contains("service account issuer keys loaded") {
            loaded = Some(line);
        } else if line.contains("usher CA ready") {
            ready = Some(line);
            break;
        }
    }
    let loaded: serde_json::Value = serde_json::from_str(&loaded.expect("keys loaded")).unwrap();
    assert_eq!(loaded["kids"], "k1", "{loaded}");
    let ready: serde_json::Value = serde_json::from_str(&ready.expect("ready")).unwrap();
    assert_eq!(ready["k8s_audience"], "mesh-ca", "{ready}");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // What the server wrote went to the state directory.
    assert!(state.join("issued.jsonl").exists());
    assert!(!ca.join("issued.jsonl").exists());

    // `ca token --state-dir` records the token where that server reads it.
    let out = run(&[
        "ca",
        "token",
        "--ca-dir",
        path_str(&ca),
        "--state-dir",
        path_str(&state),
        "--spiffe-id",
        &format!("spiffe://{TD}/ns/shop/*"),
    ]);
    assert_success(&out);
    assert!(state.join("tokens.jsonl").exists());
    assert!(!ca.join("tokens.jsonl").exists());
}

/// A CA and an issued `orders` identity in `dir` (ca/, certs/).
fn issue_orders(dir: &Path) {
    let ca = dir.join("ca");
    let certs = dir.join("certs");
    assert_success(&run(&[
        "ca",
        "init",
        "--trust-domain",
        TD,
        "--dir",
        path_str(&ca),
    ]));
    assert_success(&run(&[
        "ca",
        "issue",
        "--ca-dir",
        path_str(&ca),
        "--spiffe-id",
        ORDERS,
        "--out",
        path_str(&certs),
    ]));
}

const CHECKED: &str = "service: orders\nidentity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: BUNDLE\ninbound:\n  app: 127.0.0.1:8080\n  listen: 127.0.0.1:PORT\npolicy:\n  files: [POLICY]\nauthentication:\n  jwt:\n    - issuer: https://login.test\n      jwks_file: JWKS\n";

#[test]
fn check_reports_every_problem_with_its_key_and_binds_nothing() {
    let dir = tempfile::tempdir().unwrap();
    issue_orders(dir.path());
    // inbound.listen is a port the test holds: a `check` that bound it
    // would fail ("address in use") instead of passing below.
    let (_held, port) = held_port();
    let checked = CHECKED.replace("PORT", &port.to_string());
    std::fs::write(
        dir.path().join("bad.rego"),
        "package usher.authz\nallow if { x := 1 \n",
    )
    .unwrap();
    let yaml = checked
        .replace("BUNDLE", "certs/missing.pem")
        .replace("POLICY", "bad.rego")
        .replace("JWKS", "absent.json");
    let config = dir.path().join("usher.yaml");
    std::fs::write(&config, yaml).unwrap();
    let out = run(&["check", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("key `identity.bundle`: cannot read"), "{err}");
    assert!(
        err.contains("key `policy`: ") && err.contains("bad.rego:3"),
        "{err}"
    );
    assert!(
        err.contains("key `authentication.jwt[0].jwks_file`: cannot read"),
        "{err}"
    );
    assert!(err.contains("3 problem(s) found"), "{err}");

    // Fixed: OK, exit 0, with the port still held by the test.
    std::fs::write(
        dir.path().join("ok.rego"),
        "package usher.authz\ndefault allow := false\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("jwks.json"),
        r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"k","alg":"ES256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}"#,
    )
    .unwrap();
    let yaml = checked
        .replace("BUNDLE", "certs/bundle.pem")
        .replace("POLICY", "ok.rego")
        .replace("JWKS", "jwks.json");
    std::fs::write(&config, yaml).unwrap();
    let out = run(&["check", "--config", path_str(&config)]);
    assert_success(&out);
    assert!(
        stdout(&out).contains(&format!("OK (service orders, identity {ORDERS}")),
        "{}",
        stdout(&out)
    );
}

#[test]
fn check_refuses_a_key_that_does_not_match_its_certificate() {
    let dir = tempfile::tempdir().unwrap();
    issue_orders(dir.path());
    // Another identity's key beside orders' certificate.
    let other = dir.path().join("other");
    assert_success(&run(&[
        "ca",
        "issue",
        "--ca-dir",
        path_str(&dir.path().join("ca")),
        "--spiffe-id",
        "spiffe://mesh.local/ns/shop/sa/other",
        "--out",
        path_str(&other),
    ]));
    let yaml = "service: orders\nidentity:\n  cert: certs/cert.pem\n  key: other/key.pem\n  bundle: certs/bundle.pem\ninbound:\n  app: 127.0.0.1:8080\n";
    let config = dir.path().join("usher.yaml");
    std::fs::write(&config, yaml).unwrap();
    let err = stderr(&run(&["check", "--config", path_str(&config)]));
    assert!(
        err.contains("key `identity.key`") && err.contains("does not match"),
        "{err}"
    );
}

#[test]
fn a_yaml_syntax_error_names_line_column_and_no_placeholder_key() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("usher.yaml");
    std::fs::write(&config, "service: x\n- a\n").unwrap();
    for cmd in ["check", "run"] {
        let out = run(&[cmd, "--config", path_str(&config)]);
        let err = assert_failure(&out);
        assert!(err.contains("line 2 column 1"), "{cmd}: {err}");
        assert!(!err.contains('?'), "{cmd}: {err}");
    }
}

/// Keys that moved to `server:` still work under `inbound:`; `usher check`
/// says where they live now, and still passes.
#[test]
fn check_warns_about_a_moved_key_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    issue_orders(dir.path());
    let base = "service: orders\nidentity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\ninbound:\n  app: 127.0.0.1:8080\n  listen: 127.0.0.1:1\n";
    let config = dir.path().join("usher.yaml");
    std::fs::write(&config, format!("{base}  max_connections: 2\n")).unwrap();
    let out = run(&["check", "--config", path_str(&config)]);
    assert_success(&out);
    let err = stderr(&out);
    assert!(
        err.contains("key `inbound.max_connections`: warning: moved to server.max_connections"),
        "{err}"
    );
    assert!(err.contains("old spelling still works"), "{err}");

    // In its new home: no warning.
    std::fs::write(&config, format!("{base}server:\n  max_connections: 2\n")).unwrap();
    let out = run(&["check", "--config", path_str(&config)]);
    assert_success(&out);
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));

    // In both: refused, naming both spellings.
    std::fs::write(
        &config,
        format!("{base}  max_connections: 2\nserver:\n  max_connections: 3\n"),
    )
    .unwrap();
    let out = run(&["check", "--config", path_str(&config)]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("key `inbound.max_connections`: given twice")
            && err.contains("server.max_connections"),
        "{err}"
    );
}

/// A policy that calls `http.send` on the default single worker thread:
/// every decision holds that thread for as long as the call takes, so
/// `usher check` says so (and passes); with two workers it does not.
#[test]
fn check_warns_when_a_policy_calling_out_would_hold_the_only_thread() {
    let dir = tempfile::tempdir().unwrap();
    issue_orders(dir.path());
    std::fs::write(
        dir.path().join("authz.rego"),
        "package usher.authz\n\ndefault allow := false\n\nallow if {\n\tresp := http.send({\"method\": \"GET\", \"url\": \"http://127.0.0.1:1/ok\"})\n\tresp.status_code == 200\n}\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("pure.rego"),
        "package usher.authz\n\ndefault allow := false\n\nallow if input.attributes.request.http.method == \"GET\"\n",
    )
    .unwrap();
    let base = "service: orders\nidentity:\n  cert: certs/cert.pem\n  key: certs/key.pem\n  bundle: certs/bundle.pem\ninbound:\n  app: 127.0.0.1:8080\n  listen: 127.0.0.1:1\n";
    let config = dir.path().join("usher.yaml");
    let check = |extra: &str| {
        std::fs::write(&config, format!("{base}{extra}")).unwrap();
        let out = run(&["check", "--config", path_str(&config)]);
        assert_success(&out);
        stderr(&out)
    };
    let err = check("policy:\n  files: [authz.rego]\n");
    assert!(
        err.contains("key `runtime.workers`: warning: the policy calls http.send"),
        "{err}"
    );
    let err = check("policy:\n  files: [authz.rego]\nruntime:\n  workers: 2\n");
    assert!(!err.contains("warning"), "two workers: {err}");
    let err = check("policy:\n  files: [pure.rego]\n");
    assert!(
        !err.contains("warning"),
        "a policy that does not call out: {err}"
    );
}
