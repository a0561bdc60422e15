//! `usher ca init` and `usher ca issue`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use usher_ca::{init_ca, load_ca, write_issued, IssueRequest, SpiffeId};

use crate::CliError;

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a new root CA (ECDSA P-256) for a trust domain.
    #[command(
        after_help = "Example:\n  usher ca init --trust-domain mesh.local --dir ./ca\n\n\
Writes DIR/ca.pem (the root certificate, share it) and DIR/ca-key.pem (mode 0600, keep it secret).\n\
Refuses to overwrite an existing CA unless --force is given."
    )]
    Init {
        /// The SPIFFE trust domain, e.g. mesh.local (with --parent-dir: the parent's; if given, it must be the same).
        #[arg(long, value_name = "TD", required_unless_present = "parent_dir")]
        trust_domain: Option<String>,
        /// Where to write the CA files.
        #[arg(long, value_name = "CA_DIR")]
        dir: PathBuf,
        /// Make an intermediate CA signed by the CA in PARENT_DIR (the root stays offline there).
        #[arg(long, value_name = "PARENT_DIR", conflicts_with_all = ["import_cert", "import_key"])]
        parent_dir: Option<PathBuf>,
        /// Import an existing CA certificate (PEM), e.g. from cert-manager or your PKI.
        #[arg(long, value_name = "FILE", requires_all = ["import_key", "import_bundle"])]
        import_cert: Option<PathBuf>,
        /// The imported CA's private key (PEM).
        #[arg(long, value_name = "FILE", requires = "import_cert")]
        import_key: Option<PathBuf>,
        /// The root certificate(s) the imported CA chains to (PEM): the trust bundle.
        #[arg(long, value_name = "FILE", requires = "import_cert")]
        import_bundle: Option<PathBuf>,
        /// Intermediates between the imported CA and the root (PEM), if any.
        #[arg(long, value_name = "FILE", requires = "import_cert")]
        import_chain: Option<PathBuf>,
        /// Replace an existing CA in DIR (every certificate it issued stops being trusted).
        #[arg(long)]
        force: bool,
    },
    /// Mint a bootstrap token: lets a sidecar obtain its first certificate from `usher ca serve`.
    #[command(
        after_help = "Example:\n  usher ca token --ca-dir ./ca --spiffe-id 'spiffe://mesh.local/ns/shop/*' --ttl 1h --single-use\n\n\
Prints the token once; the CA keeps only its SHA-256 hash (CA_DIR/tokens.jsonl, or STATE_DIR's).\n\
Mount it as a file for the sidecar (identity.ca.token_file)."
    )]
    Token {
        /// The CA folder.
        #[arg(long, value_name = "CA_DIR")]
        ca_dir: PathBuf,
        /// The state folder of a `ca serve --state-dir` (default: CA_DIR).
        #[arg(long, value_name = "STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// The SPIFFE ID the token may obtain, or a prefix ending in /* (whole path segments).
        #[arg(long, value_name = "ID|PATTERN")]
        spiffe_id: String,
        /// How long the token can be used.
        #[arg(long, value_name = "DURATION", default_value = "1h", value_parser = parse_duration)]
        ttl: Duration,
        /// The token works once.
        #[arg(long)]
        single_use: bool,
    },
    /// Run the CA server: sidecars enrol with a token and renew with their certificate.
    #[command(
        after_help = "Examples:\n  usher ca serve --ca-dir ./ca --listen 0.0.0.0:8443 --cert-ttl 24h --dns ca.mesh.svc\n  \
usher ca serve --ca-dir /etc/usher-ca/issuing --state-dir /var/lib/usher-ca --allow-group-readable-key \\\n      \
--listen 0.0.0.0:8443 --dns usher-ca.usher-system.svc \\\n      \
--k8s-issuer https://kubernetes.default.svc.cluster.local \\\n      \
--k8s-jwks https://kubernetes.default.svc/openid/v1/jwks \\\n      \
--k8s-ca-file /var/run/secrets/kubernetes.io/serviceaccount/ca.crt \\\n      \
--k8s-api-token-file /var/run/secrets/kubernetes.io/serviceaccount/token\n\n\
HTTPS (TLS 1.3). POST /v1/enrol (bootstrap token + CSR), POST /v1/renew (mutual TLS with the current\n\
certificate + CSR), GET /v1/bundle. Private keys never cross the network: sidecars send CSRs.\n\
With --k8s-issuer (its keys from --k8s-jwks or OIDC discovery), /v1/enrol also takes a Kubernetes projected service account token\n\
(audience --k8s-audience) and issues spiffe://TD/ns/NS/sa/SA from it; bootstrap tokens keep working.\n\
Every issued certificate is appended to STATE_DIR/issued.jsonl (default: CA_DIR)."
    )]
    Serve {
        /// The CA folder.
        #[arg(long, value_name = "CA_DIR")]
        ca_dir: PathBuf,
        /// Address to listen on.
        #[arg(long, value_name = "ADDR")]
        listen: std::net::SocketAddr,
        /// Lifetime of issued workload certificates (seconds to days: 30s, 1h, 24h).
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        cert_ttl: Duration,
        /// A DNS name sidecars use to reach the CA (in its server certificate); repeatable.
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
        /// Failed enrolments one client address may make per window; after that it gets 429 until the window ends.
        #[arg(long, value_name = "N", default_value_t = usher_ca::server::DEFAULT_ENROL_FAILURE_LIMIT)]
        enrol_failure_limit: u32,
        /// The window of --enrol-failure-limit.
        #[arg(long, value_name = "DURATION", default_value = "1m", value_parser = parse_duration)]
        enrol_failure_window: Duration,
        /// Where to write issued.jsonl and read (and mark spent) bootstrap tokens, if not CA_DIR (which may then be read-only, e.g. a Kubernetes Secret).
        #[arg(long, value_name = "STATE_DIR")]
        state_dir: Option<PathBuf>,
        /// Accept a CA key its group may read (mode 0440, as a Kubernetes Secret volume with fsGroup makes it).
        #[arg(long)]
        allow_group_readable_key: bool,
        /// Enrol Kubernetes projected service account tokens of this issuer (the API server's --service-account-issuer); without --k8s-jwks, its keys are found by OIDC discovery.
        #[arg(long, value_name = "URL")]
        k8s_issuer: Option<String>,
        /// The issuer's keys (JWKS): a file, or an https:// URL such as https://kubernetes.default.svc/openid/v1/jwks.
        #[arg(long, value_name = "FILE|URL", value_parser = parse_jwks_source)]
        k8s_jwks: Option<usher_ca::JwksSource>,
        /// The audience a service account token must be for [default: usher-ca].
        #[arg(long, value_name = "AUDIENCE")]
        k8s_audience: Option<String>,
        /// Roots (PEM) that verify the HTTPS server of the keys, e.g. the cluster CA (default: the Mozilla roots).
        #[arg(long, value_name = "FILE")]
        k8s_ca_file: Option<PathBuf>,
        /// A bearer token sent when fetching the keys from the issuer's or --k8s-jwks's host (the CA's own service account token); re-read each time.
        #[arg(long, value_name = "FILE")]
        k8s_api_token_file: Option<PathBuf>,
    },
    /// Issue a workload certificate (X.509-SVID) with a freshly made key.
    #[command(
        after_help = "Example:\n  usher ca issue --ca-dir ./ca --spiffe-id spiffe://mesh.local/ns/shop/sa/orders --out ./certs --ttl 24h\n\n\
Writes OUT/cert.pem, OUT/key.pem (mode 0600) and OUT/bundle.pem (the trusted root)."
    )]
    Issue {
        /// The CA folder made by `usher ca init`.
        #[arg(long, value_name = "CA_DIR")]
        ca_dir: PathBuf,
        /// The workload's SPIFFE ID, in the CA's trust domain.
        #[arg(long, value_name = "ID")]
        spiffe_id: String,
        /// Where to write cert.pem, key.pem and bundle.pem.
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// Certificate lifetime, e.g. 1h, 24h, 7d.
        #[arg(long, value_name = "DURATION", default_value = "24h", value_parser = parse_duration)]
        ttl: Duration,
        /// An extra DNS name (SAN) for the certificate; repeatable.
        #[arg(long = "dns", value_name = "NAME")]
        dns: Vec<String>,
    },
}

/// What `usher ca init` made, for its report.
enum CaKind {
    Root,
    /// Below the CA in this folder.
    Intermediate(PathBuf),
    Imported,
}

fn parse_jwks_source(s: &str) -> Result<usher_ca::JwksSource, String> {
    usher_ca::JwksSource::parse(s)
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("expected a duration such as 30m, 24h or 7d, got {s:?}"))
}

pub(crate) fn run(cmd: CaCommand) -> Result<(), CliError> {
    match cmd {
        CaCommand::Init {
            trust_domain,
            dir,
            parent_dir,
            import_cert,
            import_key,
            import_bundle,
            import_chain,
            force,
        } => {
            let kind = match (&parent_dir, &import_cert) {
                (Some(parent), _) => CaKind::Intermediate(parent.clone()),
                (None, Some(_)) => CaKind::Imported,
                (None, None) => CaKind::Root,
            };
            let ca = match (parent_dir, import_cert) {
                (Some(parent), _) => {
                    // An intermediate serves its parent's trust domain; a
                    // different --trust-domain would be silently ignored.
                    if let Some(td) = &trust_domain {
                        let parent_td = usher_ca::trust_domain_of(&parent)?;
                        if *td != parent_td {
                            return Err(CliError::Usage(format!(
                                "--trust-domain {td:?} differs from the trust domain of the parent CA in {} ({parent_td:?}); \
                                 an intermediate CA always serves its parent's trust domain: \
                                 leave out --trust-domain (or give {parent_td})",
                                parent.display()
                            )));
                        }
                    }
                    usher_ca::init_intermediate(&dir, &parent, force)?
                }
                (None, Some(cert)) => {
                    let read = |p: &PathBuf| {
                        std::fs::read_to_string(p).map_err(|e| {
                            CliError::Usage(format!("cannot read {}: {e}", p.display()))
                        })
                    };
                    let td = trust_domain.clone().ok_or_else(|| {
                        CliError::Usage("--import-cert needs --trust-domain".into())
                    })?;
                    let (Some(key), Some(bundle)) = (import_key, import_bundle) else {
                        return Err(CliError::Usage(
                            "--import-cert needs --import-key and --import-bundle".into(),
                        ));
                    };
                    let chain = match &import_chain {
                        Some(p) => Some(read(p)?),
                        None => None,
                    };
                    usher_ca::import_ca(
                        &dir,
                        &read(&cert)?,
                        &read(&key)?,
                        &read(&bundle)?,
                        chain.as_deref(),
                        &td,
                        force,
                    )?
                }
                (None, None) => {
                    let td = trust_domain
                        .ok_or_else(|| CliError::Usage("--trust-domain is required".into()))?;
                    init_ca(&dir, &td, force)?
                }
            };
            let cert = dir.join(usher_ca::CA_CERT_FILE).display().to_string();
            let key = dir.join(usher_ca::CA_KEY_FILE).display().to_string();
            let bundle = dir.join(usher_ca::CA_BUNDLE_FILE).display().to_string();
            let td = ca.trust_domain();
            match kind {
                CaKind::Root => println!(
                    "created root CA for trust domain {td} in {}\n  {cert}  root certificate (share)\n  {key}  private key (0600, keep secret)",
                    dir.display(),
                ),
                CaKind::Intermediate(parent) => println!(
                    "created intermediate CA for trust domain {td} in {}, signed by the CA in {}\n  {cert}  intermediate certificate\n  {key}  private key (0600, keep secret)\n  {bundle}  trust bundle: the root (share)",
                    dir.display(),
                    parent.display(),
                ),
                CaKind::Imported => println!(
                    "imported CA for trust domain {td} into {}\n  {cert}  CA certificate\n  {key}  private key (0600, keep secret)\n  {bundle}  trust bundle: the root(s) (share)",
                    dir.display(),
                ),
            }
            Ok(())
        }
        CaCommand::Token {
            ca_dir,
            state_dir,
            spiffe_id,
            ttl,
            single_use,
        } => {
            let pattern = usher_ca::IdPattern::parse(&spiffe_id)
                .map_err(|e| CliError::Usage(format!("--spiffe-id {spiffe_id:?}: {e}")))?;
            let spec = usher_ca::TokenSpec {
                pattern,
                ttl,
                single_use,
            };
            let state_dir = state_dir.as_deref().unwrap_or(&ca_dir);
            let token =
                usher_ca::mint_token_in(&ca_dir, state_dir, &spec, std::time::SystemTime::now())?;
            println!("{token}");
            Ok(())
        }
        CaCommand::Serve {
            ca_dir,
            listen,
            cert_ttl,
            dns,
            enrol_failure_limit,
            enrol_failure_window,
            state_dir,
            allow_group_readable_key,
            k8s_issuer,
            k8s_jwks,
            k8s_audience,
            k8s_ca_file,
            k8s_api_token_file,
        } => {
            let mut config = usher_ca::CaServerConfig::new(ca_dir, listen);
            config.cert_ttl = cert_ttl;
            config.dns_names = dns;
            config.enrol_failure_limit = enrol_failure_limit;
            config.enrol_failure_window = enrol_failure_window;
            config.state_dir = state_dir;
            config.allow_group_readable_key = allow_group_readable_key;
            if k8s_issuer.is_some() || k8s_jwks.is_some() {
                let mut k8s = usher_ca::K8sAuthConfig::new(k8s_issuer, k8s_jwks);
                if let Some(audience) = k8s_audience {
                    k8s.audience = audience;
                }
                k8s.ca_file = k8s_ca_file;
                k8s.api_token_file = k8s_api_token_file;
                config.k8s = Some(k8s);
            } else if k8s_audience.is_some()
                || k8s_ca_file.is_some()
                || k8s_api_token_file.is_some()
            {
                return Err(CliError::Usage(
                    "--k8s-audience, --k8s-ca-file and --k8s-api-token-file need --k8s-issuer \
                     or --k8s-jwks"
                        .into(),
                ));
            }
            serve(config)
        }
        CaCommand::Issue {
            ca_dir,
            spiffe_id,
            out,
            ttl,
            dns,
        } => {
            let id = SpiffeId::parse(&spiffe_id)
                .map_err(|e| CliError::Usage(format!("--spiffe-id {spiffe_id:?}: {e}")))?;
            let ca = load_ca(&ca_dir)?;
            let mut req = IssueRequest::new(id);
            req.ttl = ttl;
            req.dns_names = dns;
            let issued = ca.issue(&req)?;
            write_issued(&out, &issued)?;
            println!(
                "issued {} (serial {}, expires {})\n  {}\n  {}  (0600)\n  {}",
                req.spiffe_id,
                issued.serial_hex,
                humantime::format_rfc3339_seconds(issued.not_after),
                out.join("cert.pem").display(),
                out.join("key.pem").display(),
                out.join("bundle.pem").display(),
            );
            Ok(())
        }
    }
}

/// `usher ca serve`: runs until SIGTERM or SIGINT.
fn serve(config: usher_ca::CaServerConfig) -> Result<(), CliError> {
    usher_proxy::telemetry::logs::init_json();
    let rt = crate::runtime(2)?;
    rt.block_on(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let err =
            |e: std::io::Error| CliError::Runtime(format!("cannot install signal handlers: {e}"));
        let mut term = signal(SignalKind::terminate()).map_err(err)?;
        let mut int = signal(SignalKind::interrupt()).map_err(err)?;
        let cert_ttl = config.cert_ttl;
        // "-": only bootstrap tokens enrol.
        let k8s_audience = config.k8s.as_ref().map(|k| k.audience.clone());
        let server = usher_ca::CaServer::start(config)
            .await
            .map_err(|e| CliError::Runtime(format!("ca serve: {e}")))?;
        tracing::info!(
            listen = %server.addr,
            cert_ttl = ?cert_ttl,
            k8s_audience = k8s_audience.as_deref().unwrap_or("-"),
            "usher CA ready"
        );
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::info!("stopping the CA server");
        server.shutdown().await;
        Ok(())
    })
}
