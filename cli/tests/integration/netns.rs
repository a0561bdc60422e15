//! `usher init-net` against the real kernel: a pod and a peer in two network
//! namespaces joined by a veth pair, the rules installed by the real binary
//! with the real `nft` / `iptables`, and TCP probes (netns/probe.py)
//! that report which port a connection reached and its original
//! destination (`SO_ORIGINAL_DST`). Needs root (CI runs as root), iproute2,
//! nftables, iptables, util-linux's setpriv and Python 3.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::support::netns::{ok, require_root, run as sh, set_mode};

const PROXY_UID: &str = "2020";
const APP_UID: &str = "3030";

static NEXT: AtomicU32 = AtomicU32::new(0);

fn usher() -> &'static str {
    env!("CARGO_BIN_EXE_usher")
}

/// Two namespaces, `pod` (10.201.0.2, fd20::2) and `peer` (10.201.0.1 and
/// 10.201.0.9, fd20::1), removed on drop with their processes.
struct Net {
    pod: String,
    peer: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Net {
    fn new() -> Net {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}-{n}", std::process::id());
        let (pod, peer) = (format!("usher-pod-{id}"), format!("usher-peer-{id}"));
        let (va, vb) = (
            format!("up{}a{n}", std::process::id() % 100_000),
            format!("up{}b{n}", std::process::id() % 100_000),
        );
        // The probe must be readable by the unprivileged UIDs.
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let probe = dir.path().join("probe.py");
        std::fs::write(&probe, include_str!("netns/probe.py")).unwrap();
        set_mode(&probe, 0o644);
        let net = Net {
            pod,
            peer,
            dir,
            children: Vec::new(),
        };
        for ns in [&net.pod, &net.peer] {
            ok("ip", &["netns", "add", ns]);
            ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
        }
        ok(
            "ip",
            &["link", "add", &va, "type", "veth", "peer", "name", &vb],
        );
        ok("ip", &["link", "set", &va, "netns", &net.pod]);
        ok("ip", &["link", "set", &vb, "netns", &net.peer]);
        for (ns, dev, addrs) in [
            (&net.pod, &va, vec!["10.201.0.2/24"]),
            (&net.peer, &vb, vec!["10.201.0.1/24", "10.201.0.9/24"]),
        ] {
            for a in addrs {
                ok("ip", &["-n", ns, "addr", "add", a, "dev", dev]);
            }
            let v6 = if ns == &net.pod {
                "fd20::2/64"
            } else {
                "fd20::1/64"
            };
            ok("ip", &["-n", ns, "addr", "add", v6, "dev", dev, "nodad"]);
            ok("ip", &["-n", ns, "link", "set", dev, "up"]);
        }
        net
    }

    fn probe(&self) -> PathBuf {
        self.dir.path().join("probe.py")
    }

    /// Starts a probe server in `ns` on `ports`; returns once it listens.
    fn serve(&mut self, ns: &str, ports: &[&str]) {
        let probe = self.probe();
        let mut args = vec!["netns", "exec", ns, "/usr/bin/python3"];
        args.push(probe.to_str().unwrap());
        args.push("serve");
        args.extend_from_slice(ports);
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        // "ready" once every socket listens; EOF if the server died.
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "probe server in {ns} on {ports:?}");
        self.children.push(child);
    }

    /// Connects from `ns` as `uid`; the server's answer or "error ...".
    fn connect(&self, ns: &str, uid: &str, host: &str, port: &str) -> String {
        let probe = self.probe();
        let reuid = format!("--reuid={uid}");
        let regid = format!("--regid={uid}");
        ok(
            "ip",
            &[
                "netns",
                "exec",
                ns,
                "setpriv",
                &reuid,
                &regid,
                "--clear-groups",
                "/usr/bin/python3",
                probe.to_str().unwrap(),
                "connect",
                host,
                port,
            ],
        )
        .trim()
        .to_string()
    }

    fn init_net(&self, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", &self.pod, usher(), "init-net"];
        all.extend_from_slice(args);
        sh("ip", &all)
    }

    fn in_pod(&self, program: &str, args: &[&str]) -> String {
        let mut all = vec!["netns", "exec", &self.pod, program];
        all.extend_from_slice(args);
        ok("ip", &all)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in [&self.pod, &self.peer] {
            let _ = sh("ip", &["netns", "del", ns]);
        }
    }
}

/// Every path a connection can take, with and without the rules.
fn captures_what_it_should(backend: &str) {
    require_root();
    let mut net = Net::new();
    // In the pod: usher's inbound, outbound and admin listeners, a port to
    // skip, and a local-only service. In the peer: its services.
    let pod = net.pod.clone();
    let peer = net.peer.clone();
    net.serve(&pod, &["15006", "15001", "15000", "2222", "7000"]);
    net.serve(&peer, &["80", "5432", "8080"]);

    // Without rules nothing is captured.
    assert_eq!(
        net.connect(&peer, APP_UID, "10.201.0.2", "8080"),
        "error ECONNREFUSED"
    );
    assert_eq!(net.connect(&pod, APP_UID, "10.201.0.1", "80"), "80 none");

    let args = [
        "--backend",
        backend,
        "--proxy-uid",
        PROXY_UID,
        "--skip-inbound-ports",
        "2222",
        "--skip-outbound-ports",
        "5432",
        "--skip-outbound-cidrs",
        "10.201.0.9/32,fd99::/16",
    ];
    let out = net.init_net(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("usher init-net: installed ("),
        "{stdout}"
    );
    assert!(
        stdout.contains("15006") && stdout.contains("15001"),
        "{stdout}"
    );

    let expect = |net: &Net| {
        let checks: [(&str, &str, &str, &str, &str); 11] = [
            // Inbound, both families, any port: to 15006, original kept.
            (
                &net.peer,
                APP_UID,
                "10.201.0.2",
                "8080",
                "15006 10.201.0.2:8080",
            ),
            (
                &net.peer,
                APP_UID,
                "10.201.0.2",
                "9443",
                "15006 10.201.0.2:9443",
            ),
            (
                &net.peer,
                APP_UID,
                "fd20::2",
                "8080",
                "15006 [fd20::2]:8080",
            ),
            // The admin port and a skipped port are reached directly.
            (&net.peer, APP_UID, "10.201.0.2", "15000", "15000 none"),
            (&net.peer, APP_UID, "10.201.0.2", "2222", "2222 none"),
            // Outbound from the app, both families: to 15001.
            (&net.pod, APP_UID, "10.201.0.1", "80", "15001 10.201.0.1:80"),
            (&net.pod, APP_UID, "fd20::1", "8080", "15001 [fd20::1]:8080"),
            // usher's own traffic, skipped ports and CIDRs, and loopback
            // go where they were sent.
            (&net.pod, PROXY_UID, "10.201.0.1", "80", "80 none"),
            (&net.pod, APP_UID, "10.201.0.1", "5432", "5432 none"),
            (&net.pod, APP_UID, "10.201.0.9", "80", "80 none"),
            (&net.pod, APP_UID, "127.0.0.1", "7000", "7000 none"),
        ];
        for (ns, uid, host, port, want) in checks {
            assert_eq!(
                net.connect(ns, uid, host, port),
                want,
                "{ns} uid {uid} → {host}:{port}"
            );
        }
    };
    expect(&net);

    // Again: the same rules, once.
    let shown = net.init_net(&["--backend", backend, "--show"]);
    let before = String::from_utf8_lossy(&shown.stdout).into_owned();
    assert!(net.init_net(&args).status.success());
    let after = String::from_utf8_lossy(&net.init_net(&["--backend", backend, "--show"]).stdout)
        .into_owned();
    assert_eq!(before, after);
    match backend {
        "nft" => {
            let tables = net.in_pod("nft", &["list", "tables"]);
            assert_eq!(tables.matches("table inet usher").count(), 1, "{tables}");
        }
        _ => {
            for save in ["iptables-save", "ip6tables-save"] {
                let rules = net.in_pod(save, &["-t", "nat"]);
                assert_eq!(rules.matches("-j USHER_INBOUND").count(), 1, "{rules}");
                assert_eq!(rules.matches("-j USHER_OUTBOUND").count(), 1, "{rules}");
            }
        }
    }
    expect(&net);

    // Removed: back to no capture.
    let out = net.init_net(&["--backend", backend, "--remove"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!(
            "usher init-net: removed ({})",
            if backend == "nft" {
                "nftables table inet usher"
            } else {
                "iptables chains USHER_INBOUND, USHER_OUTBOUND"
            }
        )
    );
    let shown = net.init_net(&["--backend", backend, "--show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("nothing installed"));
    assert_eq!(
        net.connect(&peer, APP_UID, "10.201.0.2", "8080"),
        "error ECONNREFUSED"
    );
    assert_eq!(net.connect(&pod, APP_UID, "10.201.0.1", "80"), "80 none");
    let out = net.init_net(&["--backend", backend, "--remove"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("nothing to remove"));
}

#[test]
fn nftables_captures_inbound_and_outbound_tcp() {
    captures_what_it_should("nft");
}

#[test]
fn iptables_captures_inbound_and_outbound_tcp() {
    captures_what_it_should("iptables");
}

/// A plan that cannot work is refused before anything is installed.
#[test]
fn bad_plans_change_nothing() {
    require_root();
    let net = Net::new();
    let out = net.init_net(&["--admin-port", "15001"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("each listener needs its own port"));
    let out = net.init_net(&["--proxy-uid", "0"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("root"));
    let shown = net.init_net(&["--show"]);
    assert!(String::from_utf8_lossy(&shown.stdout).contains("nothing installed"));
}
