//! `usher ca init` and `usher ca issue`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Subcommand;
use usher_ca::{init_ca, load_ca, write_issued, IssueRequest, SpiffeId};

use super::CliError;

#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Create a new root CA (ECDSA P-256) for a trust domain.
    #[command(
        after_help = "Example:\n  usher ca init --trust-domain mesh.local --dir ./ca\n\n\
Writes DIR/ca.pem (the root certificate, share it) and DIR/ca-key.pem (mode 0600, keep it secret).\n\
Refuses to overwrite an existing CA unless --force is given."
    )]
    Init {
        /// The SPIFFE trust domain, e.g. mesh.local.
        #[arg(long, value_name = "TD")]
        trust_domain: String,
        /// Where to write the CA files.
        #[arg(long, value_name = "CA_DIR")]
        dir: PathBuf,
        /// Replace an existing CA in DIR (every certificate it issued stops being trusted).
        #[arg(long)]
        force: bool,
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

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|_| format!("expected a duration such as 30m, 24h or 7d, got {s:?}"))
}

pub fn run(cmd: CaCommand) -> Result<(), CliError> {
    match cmd {
        CaCommand::Init {
            trust_domain,
            dir,
            force,
        } => {
            let ca = init_ca(&dir, &trust_domain, force)?;
            println!(
                "created CA for trust domain {} in {}\n  {}  root certificate (share)\n  {}  private key (0600, keep secret)",
                ca.trust_domain(),
                dir.display(),
                dir.join(usher_ca::CA_CERT_FILE).display(),
                dir.join(usher_ca::CA_KEY_FILE).display(),
            );
            Ok(())
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
