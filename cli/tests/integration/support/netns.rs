//! A small network of namespaces for tests that need the real kernel:
//! hosts on one bridge (`10.203.0.N/24`, `fd23::N/64`), processes started in
//! them (as root or as a given UID), all removed on drop. Needs root,
//! iproute2, util-linux's setpriv and Python 3 (CI has them).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::process::UsherProcess;

static NEXT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} {args:?}: {e}"))
}

pub(crate) fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub(crate) fn require_root() {
    assert_eq!(
        ok("id", &["-u"]).trim(),
        "0",
        "the network-namespace tests need root (CI runs as root)"
    );
}

/// Hosts on a bridge, each in its own network namespace.
pub(crate) struct Lab {
    id: String,
    hosts: Vec<String>,
    pub dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    /// `hosts[i]` gets `10.203.0.{i+1}` and `fd23::{i+1}`; `probe` is a
    /// script the hosts' processes may run (copied world-readable).
    pub(crate) fn new(hosts: &[&str], probe: &str) -> Lab {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let id = format!("{}{n}", std::process::id() % 100_000);
        let dir = tempfile::tempdir().unwrap();
        set_mode(dir.path(), 0o755);
        let lab = Lab {
            id: id.clone(),
            hosts: hosts.iter().map(|h| format!("usher-{h}-{id}")).collect(),
            dir,
            children: Vec::new(),
        };
        std::fs::write(lab.dir.path().join("probe.py"), probe).unwrap();
        set_mode(&lab.dir.path().join("probe.py"), 0o644);
        let switch = lab.switch();
        ok("ip", &["netns", "add", &switch]);
        ok(
            "ip",
            &["-n", &switch, "link", "add", "br0", "type", "bridge"],
        );
        ok("ip", &["-n", &switch, "link", "set", "br0", "up"]);
        for (i, ns) in lab.hosts.iter().enumerate() {
            let (inner, outer) = (format!("u{id}h{i}"), format!("u{id}s{i}"));
            ok("ip", &["netns", "add", ns]);
            ok("ip", &["-n", ns, "link", "set", "lo", "up"]);
            ok(
                "ip",
                &[
                    "link", "add", &inner, "type", "veth", "peer", "name", &outer,
                ],
            );
            ok("ip", &["link", "set", &inner, "netns", ns]);
            ok("ip", &["link", "set", &outer, "netns", &switch]);
            ok(
                "ip",
                &["-n", &switch, "link", "set", &outer, "master", "br0", "up"],
            );
            let v4 = format!("10.203.0.{}/24", i + 1);
            let v6 = format!("fd23::{}/64", i + 1);
            ok("ip", &["-n", ns, "addr", "add", &v4, "dev", &inner]);
            ok(
                "ip",
                &["-n", ns, "addr", "add", &v6, "dev", &inner, "nodad"],
            );
            ok("ip", &["-n", ns, "link", "set", &inner, "up"]);
        }
        lab
    }

    fn switch(&self) -> String {
        format!("usher-sw-{}", self.id)
    }

    fn index(&self, host: &str) -> usize {
        self.hosts
            .iter()
            .position(|h| h.starts_with(&format!("usher-{host}-")))
            .unwrap_or_else(|| panic!("no host {host}"))
    }

    pub(crate) fn ns(&self, host: &str) -> &str {
        &self.hosts[self.index(host)]
    }

    pub(crate) fn ip4(&self, host: &str) -> String {
        format!("10.203.0.{}", self.index(host) + 1)
    }

    pub(crate) fn ip6(&self, host: &str) -> String {
        format!("fd23::{}", self.index(host) + 1)
    }

    /// Writes `name` under the lab's folder, readable by every UID.
    pub(crate) fn file(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).unwrap();
            set_mode(parent, 0o755);
        }
        std::fs::write(&path, contents).unwrap();
        set_mode(&path, 0o644);
        path
    }

    /// `program args` in `host`'s namespace, as root.
    pub(crate) fn exec(&self, host: &str, program: &str, args: &[&str]) -> Output {
        let mut all = vec!["netns", "exec", self.ns(host), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// A command that runs `program` in `host`'s namespace as `uid`.
    pub(crate) fn command(&self, host: &str, uid: u32, program: &str) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", self.ns(host), "setpriv"])
            .arg(format!("--reuid={uid}"))
            .arg(format!("--regid={uid}"))
            .args(["--clear-groups", program]);
        cmd
    }

    /// Starts `probe.py args` in `host` as `uid`; returns once it prints
    /// "ready".
    pub(crate) fn serve(&mut self, host: &str, uid: u32, args: &[&str]) {
        let mut cmd = self.command(host, uid, "/usr/bin/python3");
        let mut child = cmd
            .arg(self.dir.path().join("probe.py"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready", "probe {args:?} in {host}");
        self.children.push(child);
    }

    /// `probe.py args` in `host` as `uid`, to completion: its output.
    pub(crate) fn probe(&self, host: &str, uid: u32, args: &[&str]) -> String {
        let out = self
            .command(host, uid, "/usr/bin/python3")
            .arg(self.dir.path().join("probe.py"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// `usher run --config config` in `host` as `uid`, once ready.
    pub(crate) fn usher(&self, host: &str, uid: u32, config: &Path) -> UsherProcess {
        let mut cmd = self.command(host, uid, env!("CARGO_BIN_EXE_usher"));
        cmd.args(["run", "--config"]).arg(config);
        UsherProcess::spawn(cmd)
    }

    /// `usher init-net args` in `host` (root, as an init container runs).
    pub(crate) fn init_net(&self, host: &str, args: &[&str]) {
        let mut all = vec!["init-net"];
        all.extend_from_slice(args);
        let out = self.exec(host, env!("CARGO_BIN_EXE_usher"), &all);
        assert!(
            out.status.success(),
            "init-net in {host}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.hosts.iter().chain(std::iter::once(&self.switch())) {
            let _ = run("ip", &["netns", "del", ns]);
        }
    }
}

pub(crate) fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Hands `dir` and the files in it to `uid` (keys must be 0600 and the
/// sidecar's own).
pub(crate) fn chown_tree(dir: &Path, uid: u32) {
    ok(
        "chown",
        &["-R", &format!("{uid}:{uid}"), dir.to_str().unwrap()],
    );
}

/// The size of a pcap file's global header (no packet yet).
const PCAP_HEADER: u64 = 24;

/// A packet capture (tcpdump) running in a host's namespace.
pub(crate) struct Capture {
    child: Child,
    file: PathBuf,
}

impl Lab {
    /// The host's interface on the bridge.
    pub(crate) fn iface(&self, host: &str) -> String {
        format!("u{}h{}", self.id, self.index(host))
    }

    /// Starts `tcpdump` on `host`'s bridge interface (what crosses the wire
    /// between hosts, not loopback) with `filter`; returns once it captures.
    pub(crate) fn capture(&self, host: &str, filter: &str) -> Capture {
        let file = self.dir.path().join(format!(
            "{host}-{}.pcap",
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let iface = self.iface(host);
        let mut args = vec![
            "netns",
            "exec",
            self.ns(host),
            "tcpdump",
            "-Z",
            "root",
            "-i",
            &iface,
            "-U",
            "-n",
            "-w",
        ];
        let path = file.to_str().unwrap().to_string();
        args.push(&path);
        args.extend(filter.split(' '));
        let mut child = Command::new("ip")
            .args(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("tcpdump (apt install tcpdump)");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        while stderr.read_line(&mut line).unwrap() > 0 && !line.contains("listening on") {
            line.clear();
        }
        assert!(
            line.contains("listening on"),
            "tcpdump did not start: {line}"
        );
        Capture { child, file }
    }
}

impl Capture {
    /// Stops the capture (SIGINT: tcpdump writes what it has) and returns
    /// the pcap file's bytes.
    pub(crate) fn stop(mut self) -> Vec<u8> {
        // Packets are written as they come (-U); wait (bounded) until some
        // are in the file before stopping.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while std::fs::metadata(&self.file).map_or(0, |m| m.len()) <= PCAP_HEADER
            && std::time::Instant::now() < deadline
        {
            std::thread::yield_now();
        }
        ok("kill", &["-INT", &self.child.id().to_string()]);
        let _ = self.child.wait();
        std::fs::read(&self.file).unwrap()
    }
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}
