//! Installing, listing and removing the rules through `nft` or
//! `iptables-restore` in the current network namespace.

use std::io::Write;
use std::process::{Command, Stdio};

use crate::plan::{Backend, Plan, PlanError};
use crate::{iptables, nft};

/// Why the rules could not be installed, listed or removed.
#[derive(Debug, thiserror::Error)]
pub enum NetInitError {
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("cannot run {tool}: {source} (the {package} package provides it)")]
    Spawn {
        tool: &'static str,
        package: &'static str,
        source: std::io::Error,
    },
    #[error("{tool} failed ({status}): {stderr}{hint}")]
    Failed {
        tool: &'static str,
        status: String,
        stderr: String,
        hint: &'static str,
    },
}

/// Installs `plan`, replacing what an earlier run installed; returns the
/// rules as the kernel now holds them.
pub fn apply(plan: &Plan) -> Result<String, NetInitError> {
    plan.validate()?;
    match plan.backend {
        Backend::Nft => {
            run("nft", &["-f", "-"], Some(&nft::script(plan)))?;
        }
        Backend::Iptables => {
            for (restore, tool, v4) in FAMILIES {
                run(
                    restore,
                    &["-w", "5", "--noflush"],
                    Some(&iptables::restore(plan, v4)),
                )?;
                for (builtin, chain) in iptables::JUMPS {
                    let check = iptables::jump_args(builtin, chain, "-C");
                    if run(tool, &as_strs(&check), None).is_err() {
                        run(
                            tool,
                            &as_strs(&iptables::jump_args(builtin, chain, "-A")),
                            None,
                        )?;
                    }
                }
            }
        }
    }
    Ok(installed(plan.backend)?.unwrap_or_default())
}

/// The rules usher installed with `backend`, as listed by `nft` or
/// `iptables-save`; `None` when there are none.
pub fn installed(backend: Backend) -> Result<Option<String>, NetInitError> {
    match backend {
        Backend::Nft => match run("nft", &["list", "table", "inet", nft::TABLE], None) {
            Ok(text) => Ok(Some(text)),
            Err(NetInitError::Failed { stderr, .. }) if stderr.contains("No such file") => Ok(None),
            Err(e) => Err(e),
        },
        Backend::Iptables => {
            let mut out = String::new();
            for (save, family) in [("iptables-save", "IPv4"), ("ip6tables-save", "IPv6")] {
                let text = run(save, &["-t", "nat"], None)?;
                let ours: Vec<&str> = text.lines().filter(|l| l.contains("USHER_")).collect();
                if !ours.is_empty() {
                    out.push_str(&format!("# {family} nat\n"));
                    for line in ours {
                        out.push_str(line);
                        out.push('\n');
                    }
                }
            }
            Ok((!out.is_empty()).then_some(out))
        }
    }
}

/// Removes what usher installed with `backend`; whether there was anything.
pub fn remove(backend: Backend) -> Result<bool, NetInitError> {
    let had = installed(backend)?.is_some();
    if !had {
        return Ok(false);
    }
    match backend {
        Backend::Nft => {
            run("nft", &["delete", "table", "inet", nft::TABLE], None)?;
        }
        Backend::Iptables => {
            for (_, tool, _) in FAMILIES {
                for (builtin, chain) in iptables::JUMPS {
                    // A jump added twice by hand is removed twice.
                    while run(
                        tool,
                        &as_strs(&iptables::jump_args(builtin, chain, "-D")),
                        None,
                    )
                    .is_ok()
                    {}
                }
                for chain in [iptables::INBOUND, iptables::OUTBOUND] {
                    for op in ["-F", "-X"] {
                        // Absent chains are fine: nothing to remove.
                        let _ = run(tool, &["-w", "5", "-t", "nat", op, chain], None);
                    }
                }
            }
        }
    }
    Ok(true)
}

/// `(restore tool, tool, IPv4?)` per family.
const FAMILIES: [(&str, &str, bool); 2] = [
    ("iptables-restore", "iptables", true),
    ("ip6tables-restore", "ip6tables", false),
];

fn as_strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Runs `tool args` with `stdin`; its stdout, or why it failed.
fn run(tool: &'static str, args: &[&str], stdin: Option<&str>) -> Result<String, NetInitError> {
    let package = if tool == "nft" {
        "nftables"
    } else {
        "iptables"
    };
    let mut child = Command::new(tool)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetInitError::Spawn {
            tool,
            package,
            source,
        })?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // A tool that exits early closes the pipe: its status says why.
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetInitError::Spawn {
            tool,
            package,
            source,
        })?;
    if out.status.success() {
        return Ok(String::from_utf8_lossy(&out.stdout).into_owned());
    }
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let hint = if stderr.contains("Operation not permitted") || stderr.contains("Permission denied")
    {
        " (this needs CAP_NET_ADMIN in the pod's network namespace)"
    } else {
        ""
    };
    Err(NetInitError::Failed {
        tool,
        status: out.status.to_string(),
        stderr,
        hint,
    })
}

/// What [`apply`] would hand to the tools, for `--dry-run`.
pub fn describe(plan: &Plan) -> String {
    match plan.backend {
        Backend::Nft => format!("# nft -f -\n{}", nft::ruleset(plan)),
        Backend::Iptables => {
            let mut s = String::new();
            for (restore, tool, v4) in FAMILIES {
                s.push_str(&format!(
                    "# {restore} --noflush\n{}",
                    iptables::restore(plan, v4)
                ));
                for (builtin, chain) in iptables::JUMPS {
                    s.push_str(&format!(
                        "# {tool} -t nat -A {builtin} -p tcp -j {chain} (unless present)\n"
                    ));
                }
            }
            s
        }
    }
}
