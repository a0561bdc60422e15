//! `usher inject`: Kubernetes manifests in, the same with usher added out.

use std::io::Read;
use std::path::PathBuf;

use clap::Args;

use crate::CliError;
use usher_proxy::inject::{inject_stream, InjectOptions};

#[derive(Args, Debug)]
pub struct InjectArgs {
    /// Manifests to read (multi-document YAML); `-` or none: stdin.
    #[arg(long = "filename", short = 'f', value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Remove what an earlier `usher inject` added instead.
    #[arg(long)]
    uninject: bool,
    /// The sidecar's image.
    #[arg(long, value_name = "IMAGE")]
    image: Option<String>,
    /// The image of the init container that runs `usher init-net` (it
    /// needs nft or iptables).
    #[arg(long, value_name = "IMAGE")]
    init_image: Option<String>,
    /// The UID usher runs as (init-net leaves its traffic alone).
    #[arg(long, value_name = "UID")]
    proxy_uid: Option<u32>,
}

pub(crate) fn run(args: InjectArgs) -> Result<(), CliError> {
    let defaults = InjectOptions::default();
    let opts = InjectOptions {
        image: args.image.unwrap_or(defaults.image),
        init_image: args.init_image.unwrap_or(defaults.init_image),
        proxy_uid: match args.proxy_uid {
            Some(0) => {
                return Err(CliError::Usage(
                    "inject: --proxy-uid 0: usher must not run as root".into(),
                ))
            }
            Some(uid) => uid,
            None => defaults.proxy_uid,
        },
        uninject: args.uninject,
    };
    let mut inputs = Vec::new();
    if args.files.is_empty() || args.files.iter().any(|f| f.as_os_str() == "-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| CliError::Usage(format!("inject: cannot read stdin: {e}")))?;
        inputs.push(("stdin".to_string(), text));
    }
    for f in args.files.iter().filter(|f| f.as_os_str() != "-") {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CliError::Usage(format!("inject: {}: {e}", f.display())))?;
        inputs.push((f.display().to_string(), text));
    }
    let mut out = String::new();
    for (name, text) in inputs {
        let injected = inject_stream(&text, &opts)
            .map_err(|e| CliError::Failed(format!("inject: {name}: {e}")))?;
        if !out.is_empty() && !injected.is_empty() {
            out.push_str("---\n");
        }
        out.push_str(&injected);
    }
    print!("{out}");
    Ok(())
}
