//! Test support: a throw-away CA, real sidecars on ephemeral loopback ports,
//! a real backend app and real HTTP clients. No mocks.

pub(crate) mod backend;
pub(crate) mod client;
pub(crate) mod netns;
pub(crate) mod otlp;
pub(crate) mod process;
pub(crate) mod raw;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use tempfile::TempDir;
use usher_ca::{init_ca, write_issued, Ca, IssueRequest, SpiffeId};
use usher_proxy::{Config, Sidecar};

pub(crate) const TD: &str = "mesh.test";

pub(crate) fn id(sa: &str) -> SpiffeId {
    SpiffeId::parse(&format!("spiffe://{TD}/ns/test/sa/{sa}")).unwrap()
}

/// A CA in a temporary folder, issuing into sub-folders of it.
pub(crate) struct Pki {
    pub dir: TempDir,
    pub ca: Ca,
}

impl Pki {
    pub(crate) fn new() -> Pki {
        Pki::with_trust_domain(TD)
    }

    pub(crate) fn with_trust_domain(td: &str) -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = init_ca(&dir.path().join("ca"), td, false).unwrap();
        Pki { dir, ca }
    }

    /// Issues a certificate for `sa` into `<tmp>/<name>/` and returns the folder.
    pub(crate) fn issue(&self, name: &str, spiffe_id: &SpiffeId) -> PathBuf {
        self.issue_with(name, IssueRequest::new(spiffe_id.clone()))
    }

    pub(crate) fn issue_with(&self, name: &str, req: IssueRequest) -> PathBuf {
        let out = self.dir.path().join(name);
        write_issued(&out, &self.ca.issue(&req).unwrap()).unwrap();
        out
    }

    /// A certificate that expired an hour ago.
    pub(crate) fn issue_expired(&self, name: &str, spiffe_id: &SpiffeId) -> PathBuf {
        let mut req = IssueRequest::new(spiffe_id.clone());
        req.not_before = Some(SystemTime::now() - Duration::from_secs(7200));
        req.ttl = Duration::from_secs(3600);
        self.issue_with(name, req)
    }
}

/// One route in a sidecar's config.
pub(crate) struct RouteSpec {
    pub host: String,
    pub address: SocketAddr,
    pub identity: SpiffeId,
}

/// Writes a `usher.yaml` for a sidecar whose certificates are in `certs`,
/// with every listener on an ephemeral loopback port.
pub(crate) fn write_config(
    dir: &Path,
    certs: &Path,
    app: SocketAddr,
    routes: &[RouteSpec],
    extra: &str,
) -> PathBuf {
    write_config_with(dir, certs, app, routes, "", extra)
}

/// [`write_config`] with `inbound_extra` (lines indented by two spaces)
/// added to the `inbound:` section.
pub(crate) fn write_config_with(
    dir: &Path,
    certs: &Path,
    app: SocketAddr,
    routes: &[RouteSpec],
    inbound_extra: &str,
    extra: &str,
) -> PathBuf {
    // An `extra` that names the service replaces the default name.
    let names_service = extra.starts_with("service:") || extra.contains("\nservice:");
    let mut yaml = format!(
        "{service}identity:\n  cert: {c}/cert.pem\n  key: {c}/key.pem\n  bundle: {c}/bundle.pem\n\
inbound:\n  listen: 127.0.0.1:0\n  app: {app}\n  app_connect_timeout: 10s\n{inbound_extra}\
admin:\n  listen: 127.0.0.1:0\n\
outbound:\n  listen: 127.0.0.1:0\n  connect_timeout: 2s\n  routes:\n",
        c = certs.display(),
        service = if names_service { "" } else { "service: test\n" },
    );
    if routes.is_empty() {
        yaml = yaml.replace("  routes:\n", "  routes: []\n");
    }
    for r in routes {
        yaml.push_str(&format!(
            "    - host: {}\n      address: {}\n      identity: {}\n",
            r.host, r.address, r.identity
        ));
    }
    yaml.push_str(extra);
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("usher.yaml");
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Starts an in-process sidecar from a config written to disk, through the
/// same loader and start-up as `usher run`.
pub(crate) async fn start_sidecar(config_path: &Path) -> Sidecar {
    let config = Config::load(config_path).unwrap();
    Sidecar::start(&config).await.unwrap()
}

/// The usual pair: client sidecar "a" (routes host `b` to sidecar "b"),
/// server sidecar "b" in front of `app`.
pub(crate) struct Mesh {
    pub pki: Pki,
    pub a: Sidecar,
    pub b: Sidecar,
}

impl Mesh {
    pub(crate) async fn start(app: SocketAddr) -> Mesh {
        Mesh::start_with(app, &[], "").await
    }

    /// Like [`Mesh::start`], with `files` (name, contents) written into b's
    /// folder and `b_extra` appended to b's config (e.g. a `policy:` section).
    pub(crate) async fn start_with(app: SocketAddr, files: &[(&str, &str)], b_extra: &str) -> Mesh {
        Mesh::start_full(app, files, "", b_extra).await
    }

    /// Like [`Mesh::start_with`], with `a_extra` appended to a's config too.
    pub(crate) async fn start_full(
        app: SocketAddr,
        files: &[(&str, &str)],
        a_extra: &str,
        b_extra: &str,
    ) -> Mesh {
        let pki = Pki::new();
        let b_dir = pki.dir.path().join("b");
        std::fs::create_dir_all(&b_dir).unwrap();
        for (name, contents) in files {
            std::fs::write(b_dir.join(name), contents).unwrap();
        }
        let b_certs = pki.issue("b-certs", &id("b"));
        let b = start_sidecar(&write_config(&b_dir, &b_certs, app, &[], b_extra)).await;
        let a_certs = pki.issue("a-certs", &id("a"));
        let routes = [
            RouteSpec {
                host: "b".into(),
                address: b.addrs.inbound,
                identity: id("b"),
            },
            // Same peer, but the route expects someone else.
            RouteSpec {
                host: "impostor".into(),
                address: b.addrs.inbound,
                identity: id("not-b"),
            },
        ];
        // The app behind "a" is never called in these tests; point it at b's app.
        let a = start_sidecar(&write_config(
            &pki.dir.path().join("a"),
            &a_certs,
            app,
            &routes,
            a_extra,
        ))
        .await;
        Mesh { pki, a, b }
    }

    /// b's folder (its config, policy files).
    pub(crate) fn b_dir(&self) -> PathBuf {
        self.pki.dir.path().join("b")
    }

    /// Another client sidecar, `name`, routing host "b" to b.
    pub(crate) async fn client(&self, name: &str) -> Sidecar {
        let certs = self.pki.issue(&format!("{name}-certs"), &id(name));
        let routes = [RouteSpec {
            host: "b".into(),
            address: self.b.addrs.inbound,
            identity: id("b"),
        }];
        let app = self.b.addrs.admin; // never called
        start_sidecar(&write_config(
            &self.pki.dir.path().join(name),
            &certs,
            app,
            &routes,
            "",
        ))
        .await
    }
}

/// Replaces `path` atomically (write aside, rename), as editors and
/// configuration management do.
pub(crate) fn replace_file(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp-write");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Asserts that `answer`, a `(status, body)` as the clients here return it,
/// has the status `want`; on failure the message says what was asked
/// (`context`) and shows the body. Returns the body.
#[track_caller]
pub(crate) fn assert_status<S, W>(
    answer: (S, String),
    want: W,
    context: impl std::fmt::Display,
) -> String
where
    S: PartialEq<W> + std::fmt::Display,
    W: std::fmt::Display,
{
    let (status, body) = answer;
    assert!(
        status == want,
        "{context}: status {status}, expected {want}; body: {body}"
    );
    body
}

/// Polls `check` until it returns true or `deadline` passes.
pub(crate) async fn wait_until<F, Fut>(deadline: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + deadline;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
