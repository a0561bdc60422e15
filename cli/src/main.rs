//! The `usher` binary: `usher run`, `usher check`, `usher ca ...`,
//! `usher policy ...`, `usher init-net`, `usher inject`, `usher demo` (see
//! `usher --help`). The sidecar itself is the `usher_proxy` library.
//!
//! Library errors are typed; here they become one readable line on stderr
//! and a non-zero exit code.
#![forbid(unsafe_code)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod ca;
mod demo;
mod init_net;
mod inject;
mod policy;
mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "usher",
    version,
    about = "A service-mesh sidecar: mutual TLS with SPIFFE identities between services",
    long_about = "usher runs beside each service. The service speaks plain HTTP to 127.0.0.1; \
usher carries its calls to other services over mutual TLS with short-lived SPIFFE X.509 \
certificates from its bundled mini-CA, and checks who is calling on the way in.",
    after_help = "Examples:\n  usher demo                          a whole mesh on this machine, explained\n  usher ca init --trust-domain mesh.local --dir ca\n  usher ca issue --ca-dir ca --spiffe-id spiffe://mesh.local/ns/shop/sa/orders --out certs\n  usher policy test examples/policies/\n  usher run --config usher.yaml"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the sidecar.
    #[command(
        after_help = "Example:\n  usher run --config /etc/usher/usher.yaml\n\n\
Logs are JSON lines on stdout; set RUST_LOG (e.g. RUST_LOG=debug) for more detail.\n\
SIGTERM or SIGINT: stop accepting, let in-flight requests finish (shutdown.drain_timeout), exit 0."
    )]
    Run {
        /// The sidecar's configuration file (see README, "Configuration").
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Check a configuration without running it: everything `run` would
    /// load and verify, every problem with its config key; binds nothing.
    #[command(
        after_help = "Example:\n  usher check --config usher.yaml\n\nExit status: 0 when `usher run` would start with this configuration, 1 otherwise."
    )]
    Check {
        /// The sidecar's configuration file.
        #[arg(long, short, value_name = "FILE")]
        config: PathBuf,
    },
    /// Rego policies: check, evaluate, test (without a sidecar).
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The mini-CA: make a root, issue workload certificates.
    #[command(
        subcommand,
        after_help = "Example:\n  usher ca init --trust-domain mesh.local --dir ./ca\n  \
usher ca issue --ca-dir ./ca --spiffe-id spiffe://mesh.local/ns/shop/sa/orders --out ./certs\n\n\
See `usher ca init --help` and `usher ca issue --help` for the files each writes."
    )]
    Ca(ca::CaCommand),
    /// Start a whole mesh on this machine (a throw-away CA, two services,
    /// two sidecars), send requests through it and explain what happened.
    #[command(
        after_help = "Example:\n  usher demo\n\nNeeds no set-up and no free fixed ports; cleans up after itself."
    )]
    Demo,
    /// Redirect the pod's TCP traffic to usher (nftables or iptables), so
    /// that the app needs no proxy settings. Run once per pod, in its
    /// network namespace, with CAP_NET_ADMIN (an init container).
    #[command(
        name = "init-net",
        after_help = "Examples:
  usher init-net                                 install (nftables), print the rules
  usher init-net --skip-inbound-ports 22 --skip-outbound-cidrs 169.254.169.254/32
  usher init-net --backend iptables --dry-run    print what would be installed
  usher init-net --remove

Running it again replaces what it installed. usher itself must run as --proxy-uid."
    )]
    InitNet(init_net::InitNetArgs),
    /// Add usher to Kubernetes workloads (Pod, Deployment, StatefulSet,
    /// DaemonSet, ReplicaSet, Job, CronJob): the interception init
    /// container, the native sidecar and their volumes.
    #[command(
        after_help = "Examples:\n  usher inject -f deploy.yaml | kubectl apply -f -\n  kubectl get deploy orders -o yaml | usher inject | kubectl apply -f -\n  usher inject --uninject -f injected.yaml\n\n\
Per pod (annotations on the pod template): usher.io/inject: disabled, usher.io/config-map (default <name>-usher),\n\
usher.io/policy-config-map, usher.io/skip-inbound-ports, usher.io/skip-outbound-ports,\n\
usher.io/skip-outbound-cidrs, usher.io/log-level. Injecting twice changes nothing."
    )]
    Inject(inject::InjectArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run { config } => run::run(&config),
        Command::Check { config } => return check(&config),
        Command::Ca(cmd) => ca::run(cmd),
        Command::Policy(cmd) => policy::run(cmd),
        Command::Demo => crate::demo::run(),
        Command::InitNet(args) => init_net::run(args),
        Command::Inject(args) => inject::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("usher: {err}");
            ExitCode::from(err.exit_code())
        }
    }
}

/// `usher check`: every problem on stderr, one per line; 0 or 1.
fn check(config: &std::path::Path) -> ExitCode {
    let checked = usher_proxy::check::check(config);
    for w in &checked.warnings {
        eprintln!(
            "{}: key `{}`: warning: {}",
            config.display(),
            w.key,
            w.message
        );
    }
    match checked.result {
        Ok(summary) => {
            let policy = summary
                .policy_revision
                .map_or_else(|| "no policy".to_string(), |r| format!("policy {r}"));
            println!(
                "{}: OK (service {}, identity {}, {} route(s), {policy})",
                config.display(),
                summary.service,
                summary.spiffe_id,
                summary.routes
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems {
                if p.key.is_empty() {
                    eprintln!("{}: {}", config.display(), p.message);
                } else {
                    eprintln!("{}: key `{}`: {}", config.display(), p.key, p.message);
                }
            }
            eprintln!("usher check: {} problem(s) found", problems.len());
            ExitCode::from(1)
        }
    }
}

/// A failed command, as the operator should read it.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] usher_proxy::config::ConfigError),
    #[error("{0}")]
    Start(#[from] usher_proxy::sidecar::StartError),
    #[error("{0}{hint}", hint = ca_hint(.0))]
    Ca(#[from] usher_ca::CaError),
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Runtime(String),
    /// The command ran and the answer is "no" (policy errors).
    #[error("{0}")]
    Failed(String),
    /// `usher policy test`: a test failed, errored or was skipped (exit 2,
    /// as `opa test`).
    #[error("some policy tests did not pass")]
    TestsFailed,
}

/// The command-line spelling of what a CA error asks for.
fn ca_hint(err: &usher_ca::CaError) -> &'static str {
    match err {
        usher_ca::CaError::AlreadyExists { .. } => "; run it again with --force to replace it",
        _ => "",
    }
}

impl CliError {
    fn exit_code(&self) -> u8 {
        match self {
            CliError::Config(_) | CliError::Usage(_) => 2,
            // A JWKS file named by the config that is missing or not a key
            // set is a config error like any other, not a start failure.
            CliError::Start(usher_proxy::sidecar::StartError::Authn(_)) => 2,
            CliError::TestsFailed => 2,
            _ => 1,
        }
    }
}

/// A Tokio runtime with `workers` threads: one thread is a current-thread
/// runtime (no cross-thread wake-ups), more is the work-stealing scheduler.
pub fn runtime(workers: usize) -> Result<tokio::runtime::Runtime, CliError> {
    let mut builder = if workers <= 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(workers);
        b
    };
    builder
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(format!("cannot start the async runtime: {e}")))
}
