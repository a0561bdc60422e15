//! `usher demo` on a fresh machine: no set-up, exits 0, explains each step.

use std::process::Command;

#[test]
fn demo_runs_the_mesh_and_exits_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_usher"))
        .arg("demo")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "caller verified by usher as spiffe://demo.mesh/ns/shop/sa/frontend",
        "over HTTP/2.0",
        "502 Bad Gateway: usher: peer identity did not match",
        "404 Not Found: usher: no route for host \"inventory\"",
        "403 Forbidden: usher: request denied by policy",
        "a client certificate is required",
        "the certificate is not signed by the mesh's CA",
        "frontend CLIENT GET /orders/42",
        "  orders SERVER GET /orders/42",
        "usher_policy_decisions_total{decision=\"deny\",mode=\"enforce\"} 1",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in:\n{stdout}"
        );
    }
    assert!(!stdout.contains("UNEXPECTED"), "{stdout}");
    // The throw-away folder is gone.
    let dir = stdout
        .lines()
        .find_map(|l| l.strip_prefix("Working in "))
        .and_then(|l| l.split(' ').next())
        .expect("the demo names its folder");
    assert!(!std::path::Path::new(dir).exists(), "{dir} was not removed");
}
