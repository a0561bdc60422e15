//! Hop-by-hop headers, upgrades, spoofable identity headers and authorities.

use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST, TE, TRANSFER_ENCODING, UPGRADE};
use http::{Request, Version};

use super::*;

fn map(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    h
}

fn values<'a>(h: &'a HeaderMap, name: &str) -> Vec<&'a str> {
    h.get_all(name)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect()
}

/// Headers that belong to the message, not the hop.
const END_TO_END: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("content-length", "12"),
    ("authorization", "Bearer x"),
    ("cache-control", "no-cache"),
    ("x-request-id", "abc"),
    ("accept", "text/html"),
    ("accept", "application/json"),
];

fn assert_end_to_end_untouched(h: &HeaderMap) {
    for (k, _) in END_TO_END {
        let expected: Vec<&str> = END_TO_END
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| *v)
            .collect();
        assert_eq!(values(h, k), expected, "{k} is end-to-end");
    }
}

#[test]
fn strip_removes_the_fixed_hop_by_hop_headers() {
    let mut pairs = vec![
        ("connection", "keep-alive"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "websocket"),
    ];
    pairs.extend_from_slice(END_TO_END);
    let mut h = map(&pairs);
    strip_hop_by_hop(&mut h, false);
    for name in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
    ] {
        assert!(!h.contains_key(name), "{name} is removed");
    }
    assert_end_to_end_untouched(&h);
    assert_eq!(h.len(), END_TO_END.len());
}

#[test]
fn strip_removes_the_fixed_ones_without_a_connection_header() {
    let mut h = map(&[
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("transfer-encoding", "chunked"),
        ("upgrade", "h2c"),
        ("x-request-id", "abc"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(h.len(), 1, "{h:?}");
    assert!(h.contains_key("x-request-id"));
}

#[test]
fn strip_removes_headers_named_in_connection() {
    let mut pairs = vec![
        ("connection", "close, X-Hop-One"),
        ("connection", " x-hop-two ,keep-alive"),
        ("x-hop-one", "1"),
        ("x-hop-two", "2"),
        ("x-hop-two", "2b"),
    ];
    pairs.extend_from_slice(END_TO_END);
    let mut h = map(&pairs);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key("x-hop-one"));
    assert!(
        !h.contains_key("x-hop-two"),
        "every value of a named header"
    );
    assert!(!h.contains_key(CONNECTION));
    assert_end_to_end_untouched(&h);
    assert_eq!(h.len(), END_TO_END.len());
}

#[test]
fn connection_naming_an_invalid_header_name_is_ignored() {
    let mut h = map(&[
        ("connection", "bad name, x-hop"),
        ("x-hop", "1"),
        ("x-keep", "1"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key("x-hop"));
    assert_eq!(values(&h, "x-keep"), ["1"]);
}

#[test]
fn te_trailers_is_kept_and_other_te_values_dropped() {
    let mut h = map(&[("te", "trailers")]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(values(&h, "te"), ["trailers"]);

    let mut h = map(&[("te", "gzip")]);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key(TE));

    let mut h = map(&[("te", "gzip;q=0.5, deflate")]);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key(TE));
}

#[test]
fn te_is_reduced_to_exactly_trailers() {
    // HTTP/2 refuses a TE with anything but "trailers" (RFC 9113 §8.2.2),
    // so whatever else an HTTP/1.1 client listed is dropped.
    for pairs in [
        &[("te", "trailers"), ("te", "gzip")][..],
        &[("te", "gzip"), ("te", "trailers")][..],
        &[("te", "gzip, Trailers")][..],
    ] {
        let mut h = map(pairs);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(values(&h, "te"), ["trailers"], "from {pairs:?}");
    }
}

#[test]
fn te_trailers_survives_connection_te() {
    // RFC 9110 §10.1.4: an HTTP/1.1 sender of TE also sends `Connection: TE`.
    let mut h = map(&[
        ("connection", "TE, x-hop"),
        ("te", "trailers"),
        ("x-hop", "1"),
    ]);
    strip_hop_by_hop(&mut h, false);
    assert_eq!(values(&h, "te"), ["trailers"]);
    assert!(!h.contains_key("x-hop"));
    assert!(!h.contains_key(CONNECTION));

    let mut h = map(&[("connection", "te"), ("te", "gzip")]);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key(TE));
}

#[test]
fn upgrade_keeps_upgrade_and_sets_connection_upgrade() {
    let mut pairs = vec![
        ("connection", "keep-alive, Upgrade, x-hop"),
        ("upgrade", "websocket"),
        ("keep-alive", "timeout=5"),
        ("x-hop", "1"),
        ("transfer-encoding", "chunked"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];
    pairs.extend_from_slice(END_TO_END);
    let mut h = map(&pairs);
    strip_hop_by_hop(&mut h, true);
    assert_eq!(values(&h, "upgrade"), ["websocket"]);
    assert_eq!(values(&h, "connection"), ["upgrade"]);
    assert!(!h.contains_key("keep-alive"));
    assert!(!h.contains_key("x-hop"));
    assert!(!h.contains_key(TRANSFER_ENCODING));
    assert_eq!(
        values(&h, "sec-websocket-key"),
        ["dGhlIHNhbXBsZSBub25jZQ=="]
    );
    assert_end_to_end_untouched(&h);
}

#[test]
fn without_upgrade_the_upgrade_header_goes_even_if_named_in_connection() {
    let mut h = map(&[("connection", "upgrade"), ("upgrade", "websocket")]);
    strip_hop_by_hop(&mut h, false);
    assert!(!h.contains_key(UPGRADE));
    assert!(!h.contains_key(CONNECTION));
}

fn request(version: Version, pairs: &[(&str, &str)]) -> Request<()> {
    let mut req = Request::builder()
        .version(version)
        .uri("/")
        .body(())
        .unwrap();
    *req.headers_mut() = map(pairs);
    req
}

#[test]
fn is_upgrade_needs_http11_an_upgrade_header_and_connection_upgrade() {
    let ws = [("connection", "Upgrade"), ("upgrade", "websocket")];
    assert!(is_upgrade(&request(Version::HTTP_11, &ws)));
    assert!(is_upgrade(&request(
        Version::HTTP_11,
        &[
            ("connection", "keep-alive, upgrade"),
            ("upgrade", "websocket")
        ]
    )));
    assert!(is_upgrade(&request(
        Version::HTTP_11,
        &[
            ("connection", "keep-alive"),
            ("connection", "UPGRADE"),
            ("upgrade", "echo")
        ]
    )));

    // Missing either half.
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("upgrade", "websocket")]
    )));
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("connection", "upgrade")]
    )));
    // "upgrade" must be a whole token.
    assert!(!is_upgrade(&request(
        Version::HTTP_11,
        &[("connection", "upgraded"), ("upgrade", "websocket")]
    )));
    assert!(!is_upgrade(&request(Version::HTTP_11, &[])));

    // HTTP/2 never upgrades (RFC 9113 §8.6); HTTP/1.0 neither.
    assert!(!is_upgrade(&request(Version::HTTP_2, &ws)));
    assert!(!is_upgrade(&request(Version::HTTP_10, &ws)));
}

#[test]
fn strip_spoofable_removes_every_xfcc_value() {
    let mut h = map(&[
        (
            "x-forwarded-client-cert",
            "By=spiffe://evil/a;URI=spiffe://evil/b",
        ),
        (
            "X-Forwarded-Client-Cert",
            "URI=spiffe://mesh.local/ns/x/sa/admin",
        ),
        ("x-forwarded-for", "10.0.0.1"),
        ("x-request-id", "abc"),
    ]);
    assert_eq!(values(&h, "x-forwarded-client-cert").len(), 2);
    strip_spoofable(&mut h);
    assert!(!h.contains_key(&XFCC));
    assert_eq!(values(&h, "x-forwarded-for"), ["10.0.0.1"]);
    assert_eq!(values(&h, "x-request-id"), ["abc"]);
    assert_eq!(h.len(), 2);
}

#[test]
fn authority_comes_from_the_uri_for_h2() {
    let req = Request::builder()
        .version(Version::HTTP_2)
        .uri("http://payments.shop:8080/pay")
        .header(HOST, "ignored")
        .body(())
        .unwrap();
    assert_eq!(authority(&req), Some("payments.shop:8080"));
}

#[test]
fn authority_comes_from_host_for_h1() {
    let req = Request::builder()
        .uri("/pay")
        .header(HOST, "payments.shop")
        .body(())
        .unwrap();
    assert_eq!(authority(&req), Some("payments.shop"));
}

#[test]
fn authority_is_none_without_uri_authority_or_host() {
    let req = Request::builder().uri("/pay").body(()).unwrap();
    assert_eq!(authority(&req), None);

    // A Host that is not text is no authority either.
    let req = Request::builder()
        .uri("/pay")
        .header(HOST, HeaderValue::from_bytes(b"b\xff").unwrap())
        .body(())
        .unwrap();
    assert_eq!(authority(&req), None);
}

#[test]
fn host_of_drops_port_brackets_and_userinfo() {
    assert_eq!(host_of("b"), "b");
    assert_eq!(host_of("b:80"), "b");
    assert_eq!(host_of("payments.shop.svc:15006"), "payments.shop.svc");
    assert_eq!(host_of("[::1]:8080"), "::1");
    assert_eq!(host_of("[::1]"), "::1");
    assert_eq!(host_of("user@b:1"), "b");
    assert_eq!(host_of("user:pw@b"), "b");
    assert_eq!(host_of("10.0.0.1:443"), "10.0.0.1");
    assert_eq!(host_of(""), "");
}

#[test]
fn a_non_ascii_token_in_connection_does_not_hide_the_others() {
    // Found by fuzzing (fuzz/fuzz_targets/xfcc.rs): the whole value used
    // to be skipped when any byte was not ASCII.
    let mut h = HeaderMap::new();
    h.insert(
        CONNECTION,
        HeaderValue::from_bytes(b"x-foo, \xc3\xa9, keep-alive").unwrap(),
    );
    h.insert("x-foo", HeaderValue::from_static("secret"));
    h.insert("x-kept", HeaderValue::from_static("1"));
    strip_hop_by_hop(&mut h, false);
    assert!(h.get("x-foo").is_none(), "named in Connection: removed");
    assert!(h.get(CONNECTION).is_none());
    assert_eq!(h["x-kept"], "1");
}
