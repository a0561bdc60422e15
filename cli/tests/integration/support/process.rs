//! Running the real `usher` binary as a child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub(crate) fn usher() -> Command {
    Command::new(env!("CARGO_BIN_EXE_usher"))
}

/// A running `usher run` and the addresses it reported when ready.
pub(crate) struct UsherProcess {
    pub child: Child,
    pub inbound: SocketAddr,
    pub outbound: SocketAddr,
    pub admin: SocketAddr,
    /// Every stdout line after the ready line.
    pub lines: mpsc::Receiver<String>,
    /// The stdout lines before the ready line.
    pub startup: Vec<String>,
}

impl UsherProcess {
    /// Starts `usher run --config FILE` and waits (10 s at most) for its
    /// "usher ready" log line, which names the bound addresses.
    pub(crate) fn start(config: &Path) -> UsherProcess {
        UsherProcess::start_with_env(config, &[])
    }

    /// [`UsherProcess::start`] with environment variables set.
    pub(crate) fn start_with_env(config: &Path, env: &[(&str, &str)]) -> UsherProcess {
        let mut cmd = usher();
        cmd.args(["run", "--config"])
            .arg(config)
            .envs(env.iter().copied());
        UsherProcess::spawn(cmd)
    }

    /// Runs `cmd` (an `usher run`, possibly wrapped, e.g. in `ip netns
    /// exec`) and waits for its ready line.
    pub(crate) fn spawn(mut cmd: Command) -> UsherProcess {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn usher");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        // Owned by an UsherProcess from here on, so that a panic below
        // (not ready in time) kills and reaps the child in Drop instead of
        // leaving it running.
        let unknown = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut process = UsherProcess {
            child,
            inbound: unknown,
            outbound: unknown,
            admin: unknown,
            lines: rx,
            startup: Vec::new(),
        };
        loop {
            let line = process
                .lines
                .recv_timeout(Duration::from_secs(10))
                .expect("usher did not report ready within 10 s");
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                process.startup.push(line);
                continue;
            };
            if v["message"] != "usher ready" {
                process.startup.push(line);
            } else {
                let addr = |k: &str| v[k].as_str().unwrap().parse().unwrap();
                process.inbound = addr("inbound");
                process.outbound = addr("outbound");
                process.admin = addr("admin");
                return process;
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Peak resident set size (VmHWM) in KiB, from /proc.
    pub(crate) fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Waits for the process to exit, up to `deadline`.
    pub(crate) fn wait_exit(&mut self, deadline: Duration) -> Option<std::process::ExitStatus> {
        let end = std::time::Instant::now() + deadline;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() >= end {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for UsherProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
