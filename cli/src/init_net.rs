//! `usher init-net`: redirect the pod's TCP to the sidecar (run once per
//! pod, in its network namespace, by an init container with NET_ADMIN).

use clap::Args;
use usher_netinit::{Backend, Cidr, Plan};

use crate::CliError;

#[derive(Args, Debug)]
pub struct InitNetArgs {
    /// nft (one `inet usher` table) or iptables (USHER_* chains in `nat`).
    #[arg(long, default_value = "nft", value_parser = clap::value_parser!(Backend))]
    backend: Backend,
    /// The UID usher runs as: its own connections are never redirected.
    #[arg(long, default_value_t = usher_netinit::DEFAULT_PROXY_UID, value_name = "UID")]
    proxy_uid: u32,
    /// The port of usher's inbound listener (`inbound.listen`).
    #[arg(long, default_value_t = 15006, value_name = "PORT")]
    inbound_port: u16,
    /// The port of usher's outbound listener (`outbound.listen`).
    #[arg(long, default_value_t = 15001, value_name = "PORT")]
    outbound_port: u16,
    /// The port of usher's admin listener (never redirected).
    #[arg(long, default_value_t = 15000, value_name = "PORT")]
    admin_port: u16,
    /// Inbound ports to leave alone, comma-separated (e.g. 22,9090).
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    skip_inbound_ports: Vec<u16>,
    /// Outbound destination ports to leave alone, comma-separated.
    #[arg(long, value_delimiter = ',', value_name = "PORTS")]
    skip_outbound_ports: Vec<u16>,
    /// Outbound destinations to leave alone, comma-separated CIDRs
    /// (e.g. 169.254.169.254/32,fd00::/8).
    #[arg(long, value_delimiter = ',', value_name = "CIDRS", value_parser = clap::value_parser!(Cidr))]
    skip_outbound_cidrs: Vec<Cidr>,
    /// Print the rules that would be installed; change nothing.
    #[arg(long)]
    dry_run: bool,
    /// Remove what an earlier run installed.
    #[arg(long, conflicts_with = "dry_run")]
    remove: bool,
    /// Print what is installed now; change nothing.
    #[arg(long, conflicts_with_all = ["dry_run", "remove"])]
    show: bool,
}

pub(crate) fn run(args: InitNetArgs) -> Result<(), CliError> {
    let plan = Plan {
        backend: args.backend,
        inbound_port: args.inbound_port,
        outbound_port: args.outbound_port,
        admin_port: args.admin_port,
        proxy_uid: args.proxy_uid,
        skip_inbound_ports: args.skip_inbound_ports,
        skip_outbound_ports: args.skip_outbound_ports,
        skip_outbound_cidrs: args.skip_outbound_cidrs,
    };
    let failed = |e: usher_netinit::NetInitError| CliError::Failed(format!("init-net: {e}"));
    if args.show {
        match usher_netinit::installed(plan.backend).map_err(failed)? {
            Some(rules) => print!("{rules}"),
            None => println!("usher init-net: nothing installed ({})", name(plan.backend)),
        }
        return Ok(());
    }
    if args.remove {
        let had = usher_netinit::remove(plan.backend).map_err(failed)?;
        println!(
            "usher init-net: {} ({})",
            if had { "removed" } else { "nothing to remove" },
            name(plan.backend)
        );
        return Ok(());
    }
    plan.validate()
        .map_err(|e| CliError::Usage(format!("init-net: {e}")))?;
    if args.dry_run {
        print!("{}", usher_netinit::describe(&plan));
        return Ok(());
    }
    let rules = usher_netinit::apply(&plan).map_err(failed)?;
    println!("usher init-net: installed ({}):", name(plan.backend));
    print!("{rules}");
    Ok(())
}

fn name(backend: Backend) -> &'static str {
    match backend {
        Backend::Nft => "nftables table inet usher",
        Backend::Iptables => "iptables chains USHER_INBOUND, USHER_OUTBOUND",
    }
}
