//! Transparent interception end to end, on the real kernel: three hosts in
//! network namespaces on a bridge — `a` (an app and its sidecar), `b` (an
//! app on two ports and its sidecar), `ext` (outside the mesh) — with the
//! rules installed by `usher init-net`, the sidecars as real `usher run`
//! processes under their own UID, and apps and clients that know nothing
//! about usher (transparent/probe.py). Needs root (CI has it).

use std::path::Path;

use crate::support::netns::{chown_tree, contains, set_mode, Lab};
use crate::support::process::UsherProcess;
use crate::support::{id, Pki};

const PROXY: u32 = 2020;
const APP: u32 = 3030;

struct World {
    lab: Lab,
    _pki: Pki,
    _a: UsherProcess,
    b: UsherProcess,
}

fn certs(pki: &Pki, name: &str) -> std::path::PathBuf {
    let dir = pki.issue(name, &id(name));
    set_mode(pki.dir.path(), 0o755);
    chown_tree(&dir, PROXY);
    dir
}

fn identity(dir: &Path) -> String {
    let d = dir.display();
    format!("identity:\n  cert: {d}/cert.pem\n  key: {d}/key.pem\n  bundle: {d}/bundle.pem\n")
}

/// Both sidecars up behind their rules; `b_inbound` is added to b's
/// `inbound:` section, `a_unknown` is a's `outbound.unknown`.
fn world(b_inbound: &str, a_unknown: &str) -> World {
    // `victim`: a host outside the mesh that only `b` should never be made
    // to reach on a neighbour's behalf.
    let mut lab = Lab::new(
        &["a", "b", "ext", "victim"],
        include_str!("transparent/probe.py"),
    );
    let pki = Pki::new();
    let (a_certs, b_certs) = (certs(&pki, "a"), certs(&pki, "b"));
    let b_ip = lab.ip4("b");
    let policy = lab.file(
        "b/policy.rego",
        &format!(
            "package usher.authz\n\ndefault allow := false\n\n\
             allow if input.attributes.source.principal == \"{a}\"\n\n\
             # Plain-text callers (permissive ports) have no principal.\n\
             allow if {{\n  not input.attributes.source.principal\n  startswith(input.attributes.request.http.path, \"/public\")\n}}\n",
            a = id("a")
        ),
    );
    let b_config = lab.file(
        "b/usher.yaml",
        &format!(
            "service: b\n{}inbound:\n  listen: \"[::]:15006\"\n  app: 127.0.0.1:8080\n{b_inbound}\
             outbound:\n  listen: 127.0.0.1:15001\n  listen_ipv6: \"[::1]:15001\"\n  routes: []\n\
             admin:\n  listen: 127.0.0.1:15000\n\
             policy:\n  files: [{}]\n",
            identity(&b_certs),
            policy.display()
        ),
    );
    let a_config = lab.file(
        "a/usher.yaml",
        &format!(
            "service: a\n{}inbound:\n  listen: \"[::]:15006\"\n  app: 127.0.0.1:8080\n\
             outbound:\n  listen: 127.0.0.1:15001\n  listen_ipv6: \"[::1]:15001\"\n  detect_timeout: 300ms\n  unknown: {a_unknown}\n\
             \x20 routes:\n\
             \x20   - {{host: b, address: \"{b_ip}:8080\", identity: \"{b}\"}}\n\
             \x20   - {{host: b9090, address: \"{b_ip}:9090\", identity: \"{b}\"}}\n\
             \x20   - {{host: b6060, address: \"{b_ip}:6060\", identity: \"{b}\"}}\n\
             admin:\n  listen: 127.0.0.1:15000\n",
            identity(&a_certs),
            b = id("b"),
        ),
    );
    // b's app listens on two ports, one of them on loopback only too.
    lab.serve("b", APP, &["http", "8080", "9090"]);
    lab.serve("b", APP, &["http-local", "6060"]);
    lab.serve("ext", APP, &["http", "8000", "8001"]);
    lab.serve("ext", APP, &["echo", "7000"]);
    lab.serve("ext", APP, &["echo", "7001"]);
    lab.serve("ext", APP, &["banner", "7002"]);
    lab.serve("victim", APP, &["http", "7100"]);
    let b = lab.usher("b", PROXY, &b_config);
    let a = lab.usher("a", PROXY, &a_config);
    for host in ["a", "b"] {
        lab.init_net(host, &["--proxy-uid", "2020"]);
    }
    World {
        lab,
        _pki: pki,
        _a: a,
        b,
    }
}

/// An app in `a` calls `host_header` at `ip:port`, unaware of usher.
fn get(w: &World, ip: &str, port: &str, host_header: &str, path: &str) -> String {
    w.lab.probe("a", APP, &["get", ip, port, host_header, path])
}

#[test]
fn mesh_traffic_is_captured_on_both_sides_and_reaches_the_port_dialled() {
    let w = world("", "refuse");
    let b_ip = w.lab.ip4("b");
    let xfcc = format!("By={};URI={}", id("b"), id("a"));
    // The app calls b's address as it would without a mesh: captured by a,
    // carried over mTLS, captured by b, handed to the app on that port with
    // the caller's verified identity. On the wire between the pods: TLS,
    // never the request.
    let capture = w.lab.capture("b", "tcp port 8080");
    assert_eq!(
        get(&w, &b_ip, "8080", "b", "/secret-path-xyz"),
        format!("200 port=8080 xfcc={xfcc} path=/secret-path-xyz")
    );
    let wire = capture.stop();
    assert!(
        contains(&wire, &[0x16, 0x03]),
        "no TLS record captured ({} bytes)",
        wire.len()
    );
    assert!(
        !contains(&wire, b"secret-path-xyz"),
        "the request crossed the wire in plain text"
    );
    assert!(
        !contains(&wire, b"GET /"),
        "the request line crossed the wire in plain text"
    );
    assert_eq!(
        get(&w, &b_ip, "9090", "b9090", "/x"),
        format!("200 port=9090 xfcc={xfcc} path=/x")
    );
    // IPv6 from the app is captured too (a's [::1]:15001 listener).
    assert_eq!(
        get(&w, &w.lab.ip6("b"), "8080", "b", "/v6"),
        format!("200 port=8080 xfcc={xfcc} path=/v6")
    );
    // Plain text from outside the mesh: b is strict.
    let plain = w
        .lab
        .probe("ext", APP, &["get", &b_ip, "8080", "b", "/public"]);
    assert!(plain.starts_with("error"), "{plain}");
    let metrics = w.lab.probe(
        "b",
        APP,
        &["get", "127.0.0.1", "15000", "admin", "/metrics"],
    );
    let refused = metrics
        .lines()
        .find(|l| l.starts_with("usher_tls_handshake_failures_total{direction=\"inbound\""))
        .unwrap_or_else(|| panic!("no inbound handshake failure counted\n{metrics}"));
    assert!(refused.ends_with(" 1"), "{refused}");
    drop(w.b);
}

#[test]
fn permissive_ports_serve_plain_text_callers_without_an_identity() {
    let w = world(
        "  mode: strict\n  port_modes: {9090: permissive}\n",
        "refuse",
    );
    let b_ip = w.lab.ip4("b");
    let ext = |port: &str, path: &str| w.lab.probe("ext", APP, &["get", &b_ip, port, "b", path]);
    // No identity: the policy lets plain text reach /public only.
    assert_eq!(
        ext("9090", "/public/x"),
        "200 port=9090 xfcc=- path=/public/x"
    );
    assert!(
        ext("9090", "/private").starts_with("403 "),
        "{}",
        ext("9090", "/private")
    );
    // A plain-text caller cannot claim an identity with the header.
    let forged = w.lab.probe(
        "ext",
        APP,
        &[
            "get",
            &b_ip,
            "9090",
            "b",
            "/public/f",
            &format!("x-forwarded-client-cert:By=x;URI={}", id("a")),
        ],
    );
    assert_eq!(forged, "200 port=9090 xfcc=- path=/public/f");
    // Port 8080 stays strict.
    assert!(ext("8080", "/public/x").starts_with("error"));
    // mTLS callers are unaffected on the permissive port.
    assert_eq!(
        get(&w, &b_ip, "9090", "b9090", "/private"),
        format!(
            "200 port=9090 xfcc=By={};URI={} path=/private",
            id("b"),
            id("a")
        )
    );
    let metrics = w.lab.probe(
        "b",
        APP,
        &["get", "127.0.0.1", "15000", "admin", "/metrics"],
    );
    assert!(metrics.contains("peer=\"unauthenticated\""), "{metrics}");
    assert!(metrics.contains("tls=\"false\""), "{metrics}");
}

#[test]
fn what_no_route_covers_is_refused_or_passed_through_as_configured() {
    let ext_ip = {
        // The lab is made inside `world`; its addresses are fixed by order.
        "10.203.0.3"
    };
    let w = world(
        "",
        &format!("{{default: refuse, passthrough: [\"{ext_ip}/32:8000\", \"{ext_ip}/32:7000\", \"{ext_ip}/32:7002\"]}}"),
    );
    assert_eq!(w.lab.ip4("ext"), ext_ip);
    // HTTP to a destination on the passthrough list reaches it as sent.
    assert_eq!(
        get(&w, ext_ip, "8000", "api.example", "/v1"),
        "200 port=8000 xfcc=- path=/v1"
    );
    // Elsewhere: refused, naming the host.
    let refused = get(&w, ext_ip, "8001", "api.example", "/v1");
    assert!(refused.starts_with("404 "), "{refused}");
    // Not HTTP (a database, TLS from the app): passed through byte for
    // byte, or closed.
    let send = |port: &str, text: &str| w.lab.probe("a", APP, &["send", ext_ip, port, text]);
    assert_eq!(send("7000", "PING\r\n"), "PING");
    assert_eq!(send("7001", "PING\r\n"), "closed");
    // A server that speaks first: after the detection timeout, passed
    // through.
    assert_eq!(send("7002", ""), "hello");
    let metrics = w.lab.probe(
        "a",
        APP,
        &["get", "127.0.0.1", "15000", "admin", "/metrics"],
    );
    for series in [
        "usher_outbound_unknown_destinations_total{protocol=\"http\",action=\"passthrough\"} 1",
        "usher_outbound_unknown_destinations_total{protocol=\"http\",action=\"refused\"} 1",
        "usher_outbound_unknown_destinations_total{protocol=\"tcp\",action=\"passthrough\"} 2",
        "usher_outbound_unknown_destinations_total{protocol=\"tcp\",action=\"refused\"} 1",
    ] {
        assert!(metrics.contains(series), "{series}\n{metrics}");
    }
}

/// A port the app binds to loopback only (a debug server) is not opened
/// to the mesh by the redirect: usher reaches ports other than
/// `inbound.app`'s at the address the caller dialled, as Istio does, so a
/// mesh peer dialling it finds nothing there.
#[test]
fn loopback_only_services_stay_private() {
    let w = world("", "refuse");
    let local = w
        .lab
        .probe("b", APP, &["get", "127.0.0.1", "6060", "x", "/"]);
    assert!(local.starts_with("200 port=6060"), "{local}");
    let via_mesh = get(&w, &w.lab.ip4("b"), "6060", "b6060", "/");
    assert!(
        via_mesh.starts_with("503 usher: the local service is unavailable"),
        "{via_mesh}"
    );
}

/// Attacks on the inbound side of a pod whose default is permissive and one
/// port strict: a plain-text caller dialling the listener itself gets the
/// strict port's mode (the port it is served); a neighbour that routes a
/// packet for another host through the pod cannot make usher reach that
/// host.
#[test]
fn neighbours_cannot_bypass_the_port_mode_or_use_the_pod_as_a_relay() {
    let w = world(
        "  mode: permissive\n  port_modes: {8080: strict}\n",
        "refuse",
    );
    let b_ip = w.lab.ip4("b");
    let ext = |ip: &str, port: &str| {
        w.lab
            .probe("ext", APP, &["get", ip, port, "b", "/public/x"])
    };
    assert_eq!(ext(&b_ip, "9090"), "200 port=9090 xfcc=- path=/public/x");
    assert!(
        ext(&b_ip, "8080").starts_with("error"),
        "{}",
        ext(&b_ip, "8080")
    );
    // Straight to the listener: served as inbound.app's port 8080: strict.
    let direct = ext(&b_ip, "15006");
    assert!(direct.starts_with("error"), "{direct}");
    // The victim answers anyone directly...
    let victim = w.lab.ip4("victim");
    assert_eq!(ext(&victim, "7100"), "200 port=7100 xfcc=- path=/public/x");
    // ...but a packet for it routed through b is not redirected to usher
    // (not addressed to the pod), and b does not forward it.
    let via = format!("{victim}/32");
    let out = w
        .lab
        .exec("ext", "ip", &["route", "add", &via, "via", &b_ip]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let relayed = ext(&victim, "7100");
    assert!(relayed.starts_with("error"), "{relayed}");
}
