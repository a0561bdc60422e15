use super::*;

fn req(version: Version, lines: &[(&str, &str)], uri: &str) -> Request<()> {
    let mut b = Request::get(uri).version(version);
    for (k, v) in lines {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap()
}

fn h1(lines: &[(&str, &str)], uri: &str) -> Request<()> {
    req(Version::HTTP_11, lines, uri)
}

#[test]
fn connection_cannot_name_a_header_usher_sets_later() {
    let s = Sanitizer::default();
    let mut r = h1(
        &[
            ("host", "b"),
            ("connection", "x-forwarded-client-cert, close, x-user"),
            ("x-user", "forged"),
        ],
        "/orders/1",
    );
    s.apply(&mut r).unwrap();
    assert!(r.headers().get("connection").is_none());
    assert!(r.headers().get("x-user").is_none());
}

#[test]
fn protected_headers_go_in_every_spelling() {
    let s = Sanitizer::default();
    let mut r = h1(
        &[
            ("host", "b"),
            (
                "x_forwarded_client_cert",
                "By=x;URI=spiffe://mesh.test/sa/admin",
            ),
            ("X-Forwarded-Client-Cert", "forged"),
            ("x_forwarded_for", "10.0.0.1"),
            ("x-real-ip", "10.0.0.1"),
            ("x_real_ip", "10.0.0.1"),
            ("x_request_id", "kept"),
        ],
        "/",
    );
    s.apply(&mut r).unwrap();
    let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["host", "x_request_id"]);
}

#[test]
fn h2c_upgrades_are_stripped_and_unknown_ones_refused() {
    let s = Sanitizer::default();
    let mut r = h1(
        &[
            ("host", "b"),
            ("upgrade", "h2c"),
            ("http2-settings", "AAMAAABkAAQAAP__"),
            ("connection", "Upgrade, HTTP2-Settings"),
        ],
        "/orders/1",
    );
    s.apply(&mut r).unwrap();
    assert!(r.headers().get("upgrade").is_none());
    assert!(r.headers().get("http2-settings").is_none());
    assert!(r.headers().get("connection").is_none());

    let mut r = h1(
        &[
            ("host", "b"),
            ("upgrade", "foo/1"),
            ("connection", "upgrade"),
        ],
        "/",
    );
    assert_eq!(s.apply(&mut r), Err(Refusal::UpgradeNotAllowed));

    // An offer of websocket and h2c keeps only websocket.
    let mut r = h1(
        &[
            ("host", "b"),
            ("upgrade", "h2c, WebSocket"),
            ("connection", "upgrade"),
        ],
        "/",
    );
    s.apply(&mut r).unwrap();
    assert_eq!(r.headers()["upgrade"], "WebSocket");
    assert_eq!(r.headers()["connection"], "upgrade");
}

#[test]
fn connect_is_refused() {
    let s = Sanitizer::default();
    let mut r = Request::connect("b:443").body(()).unwrap();
    assert_eq!(s.apply(&mut r), Err(Refusal::Connect));
}

#[test]
fn one_host_per_request() {
    let s = Sanitizer::default();
    let mut r = h1(&[("host", "admin.orders")], "http://public.orders/x");
    s.apply(&mut r).unwrap();
    assert_eq!(r.headers()["host"], "public.orders");

    let mut r = h1(&[("host", "a"), ("host", "b")], "/");
    assert_eq!(s.apply(&mut r), Err(Refusal::DuplicateHost));

    let mut r = h1(&[], "/");
    assert_eq!(s.apply(&mut r), Err(Refusal::MissingHost));

    let mut r = h1(&[("host", "a b")], "/");
    assert_eq!(s.apply(&mut r), Err(Refusal::InvalidHost));

    let mut r = h1(&[("host", "evil@b")], "/");
    assert_eq!(s.apply(&mut r), Err(Refusal::InvalidHost));

    let mut r = req(Version::HTTP_2, &[("host", "admin")], "https://public/x");
    assert_eq!(s.apply(&mut r), Err(Refusal::HostMismatch));

    let mut r = req(Version::HTTP_2, &[("host", "PUBLIC")], "https://public/x");
    s.apply(&mut r).unwrap();
    assert!(r.headers().get("host").is_none());
    assert_eq!(r.uri().authority().unwrap(), "public");
}

#[test]
fn path_is_rewritten_query_kept() {
    let s = Sanitizer::default();
    let mut r = h1(&[("host", "b")], "/orders/%2e%2e//admin/./stats?x=%2e%2e");
    s.apply(&mut r).unwrap();
    assert_eq!(r.uri(), "/admin/stats?x=%2e%2e");

    let mut r = h1(&[("host", "b")], "/orders/%00");
    assert_eq!(s.apply(&mut r), Err(Refusal::Path(PathError::Nul)));
}

#[test]
fn outbound_rules_leave_the_path_alone() {
    let s = Sanitizer::new(
        vec!["websocket".into()],
        None,
        vec![headers::XFCC.clone()],
        vec![],
    );
    let mut r = h1(&[("host", "b"), ("x-forwarded-for", "1.2.3.4")], "/a/../b");
    s.apply(&mut r).unwrap();
    assert_eq!(r.uri(), "/a/../b");
    assert_eq!(r.headers()["x-forwarded-for"], "1.2.3.4");
}

#[test]
fn hosts_follow_the_uri_grammar() {
    for ok in [
        "b",
        "b:8080",
        "orders.shop.svc:65535",
        "10.0.0.1:80",
        "[::1]",
        "[::1]:443",
        "a_b~c",
    ] {
        assert!(valid_host(ok.as_bytes()), "{ok}");
    }
    for bad in [
        "b:1:2:3",
        "admin.internal:x",
        "b:99999",
        "::",
        "a]b",
        ":80",
        "b:",
        "[]",
        "[x]",
        "a b",
        "u@b",
        "b:123456",
    ] {
        assert!(!valid_host(bad.as_bytes()), "{bad}");
    }
}

#[test]
fn lower_case_standard_methods_and_odd_targets_are_refused() {
    let s = Sanitizer::default();
    let mut r = Request::builder()
        .method("delete")
        .uri("/orders/1")
        .header("host", "b")
        .body(())
        .unwrap();
    assert_eq!(s.apply(&mut r), Err(Refusal::MethodCase));
    // An extension method of its own is fine.
    let mut r = Request::builder()
        .method("purge")
        .uri("/x")
        .header("host", "b")
        .body(())
        .unwrap();
    s.apply(&mut r).unwrap();
    // `*` only for OPTIONS; an empty path is `/`.
    let mut r = h1(&[("host", "b")], "*");
    assert_eq!(s.apply(&mut r), Err(Refusal::Path(PathError::NotAbsolute)));
    let mut r = Request::options("*").header("host", "b").body(()).unwrap();
    s.apply(&mut r).unwrap();
    let mut r = h1(&[], "http://b?/admin");
    s.apply(&mut r).unwrap();
    assert_eq!(r.uri().path(), "/");
    assert_eq!(r.uri().query(), Some("/admin"));
}

#[test]
fn every_x_forwarded_header_and_override_headers_are_removed() {
    let s = Sanitizer::default();
    let mut r = h1(
        &[
            ("host", "b"),
            ("x-forwarded-user", "admin"),
            ("X_Forwarded_Email", "a@b"),
            ("x-forwarded-prefix", "/evil"),
            ("x-original-url", "/admin"),
            ("x-http-method-override", "DELETE"),
            ("x-forwardedness", "kept"),
        ],
        "/",
    );
    s.apply(&mut r).unwrap();
    let names: Vec<&str> = r.headers().keys().map(|k| k.as_str()).collect();
    assert_eq!(names, ["host", "x-forwardedness"]);
}

#[test]
fn trailer_cannot_declare_protected_or_hop_by_hop_names() {
    let s = Sanitizer::default();
    let mut r = h1(
        &[
            ("host", "b"),
            (
                "trailer",
                "X-Forwarded-Client-Cert, x_forwarded_client_cert, x-forwarded-user, checksum",
            ),
            ("trailer", "host, x-real-ip"),
        ],
        "/upload",
    );
    s.apply(&mut r).unwrap();
    let kept: Vec<_> = r.headers().get_all("trailer").iter().collect();
    assert_eq!(kept, ["checksum"]);

    let mut only = h1(
        &[("host", "b"), ("trailer", "x-forwarded-client-cert")],
        "/upload",
    );
    s.apply(&mut only).unwrap();
    assert!(only.headers().get("trailer").is_none());

    let mut fine = h1(&[("host", "b"), ("trailer", "checksum, grpc-x")], "/");
    s.apply(&mut fine).unwrap();
    assert_eq!(fine.headers()["trailer"], "checksum, grpc-x");
}
