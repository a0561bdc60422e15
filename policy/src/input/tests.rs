use super::*;
use http::HeaderValue;
use serde_json::json;

fn request<'a>(headers: &'a HeaderMap, path: &'a str) -> RequestInput<'a> {
    RequestInput {
        source_principal: Some("spiffe://mesh.local/ns/shop/sa/frontend"),
        source_address: "10.1.2.3:40000".parse().unwrap(),
        destination_principal: "spiffe://mesh.local/ns/shop/sa/orders",
        destination_address: "[fd00::8]:15006".parse().unwrap(),
        method: "POST",
        path,
        host: "orders.shop",
        scheme: "https",
        protocol: "HTTP/2",
        headers,
        request_id: "req-42",
        body: None,
        jwt_claims: None,
    }
}

#[test]
fn every_field_in_the_opa_envoy_shape() {
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("text/plain"));
    headers.insert("x-trace", HeaderValue::from_static("abc"));
    let claims = json!({"sub": "alice", "roles": ["admin"]});
    let input = RequestInput {
        jwt_claims: Some(&claims),
        ..request(&headers, "/api/v1/orders?page=2")
    };
    let v = input.to_json();
    assert_eq!(
        v,
        json!({
            "attributes": {
                "source": {
                    "address": {"socketAddress": {"address": "10.1.2.3", "portValue": 40000}},
                    "principal": "spiffe://mesh.local/ns/shop/sa/frontend",
                },
                "destination": {
                    "address": {"socketAddress": {"address": "fd00::8", "portValue": 15006}},
                    "principal": "spiffe://mesh.local/ns/shop/sa/orders",
                },
                "request": {"http": {
                    "id": "req-42",
                    "method": "POST",
                    "path": "/api/v1/orders?page=2",
                    "host": "orders.shop",
                    "scheme": "https",
                    "protocol": "HTTP/2",
                    "headers": {"content-type": "text/plain", "x-trace": "abc"},
                }},
            },
            "parsed_path": ["api", "v1", "orders"],
            "parsed_query": {"page": ["2"]},
            "usher": {"jwt": {"claims": {"sub": "alice", "roles": ["admin"]}}},
            "version": {"ext_authz": "v3", "encoding": "protojson"},
        })
    );
}

#[test]
fn absent_principal_claims_and_body_leave_no_key() {
    let headers = HeaderMap::new();
    let input = RequestInput {
        source_principal: None,
        ..request(&headers, "/")
    };
    let v = input.to_json();
    assert!(v["attributes"]["source"].get("principal").is_none());
    assert!(v.get("usher").is_none());
    assert!(v.get("parsed_body").is_none());
    assert!(v.get("truncated_body").is_none());
    assert!(v["attributes"]["request"]["http"].get("body").is_none());
    assert_eq!(v["parsed_path"], json!([""]));
    assert_eq!(v["parsed_query"], json!({}));
}

#[test]
fn multi_value_and_non_utf8_headers() {
    let mut headers = HeaderMap::new();
    headers.append("accept", HeaderValue::from_static("text/html"));
    headers.append("accept", HeaderValue::from_static("application/json"));
    headers.append("x-bin", HeaderValue::from_bytes(b"caf\xe9").unwrap());
    headers.append("X-Upper", HeaderValue::from_static("v"));
    let v = request(&headers, "/").to_json();
    let h = &v["attributes"]["request"]["http"]["headers"];
    assert_eq!(h["accept"], "text/html, application/json");
    assert_eq!(h["x-bin"], "caf\u{fffd}");
    assert_eq!(h["x-upper"], "v");
}

#[test]
fn parsed_path_segments() {
    let cases: &[(&str, serde_json::Value)] = &[
        ("/", json!([""])),
        ("", json!([""])),
        ("/a/b", json!(["a", "b"])),
        ("//a//b/", json!(["a", "", "b", ""])),
        ("/a%20b/caf%C3%A9", json!(["a b", "café"])),
        // Decoded first, then split, as opa-envoy-plugin (Go's url.Parse) does.
        ("/admin%2Fusers", json!(["admin", "users"])),
        ("/a+b", json!(["a+b"])),
        // A malformed escape is kept as it is.
        ("/100%/x%zz", json!(["100%", "x%zz"])),
        ("/x?y=1", json!(["x"])),
        ("/x#frag", json!(["x"])),
    ];
    for (path, want) in cases {
        let (p, _) = split_path(path);
        let got = serde_json::to_value(parsed_path(p)).unwrap();
        assert_eq!(&got, want, "{path}");
    }
}

#[test]
fn parsed_query_values() {
    let cases: &[(&str, serde_json::Value)] = &[
        ("", json!({})),
        (
            "a=1&a=2&b=&c",
            json!({"a": ["1", "2"], "b": [""], "c": [""]}),
        ),
        (
            "q=a+b%21&sp%20ace=%E2%9C%93",
            json!({"q": ["a b!"], "sp ace": ["✓"]}),
        ),
        // Bad escapes and `;` skip the pair (Go's url.ParseQuery).
        ("bad=%zz&ok=1&x;y=2", json!({"ok": ["1"]})),
        ("&&=v&k=a=b", json!({"": ["v"], "k": ["a=b"]})),
    ];
    for (query, want) in cases {
        let got = serde_json::to_value(parsed_query(query)).unwrap();
        assert_eq!(&got, want, "{query}");
    }
    let headers = HeaderMap::new();
    let v = request(&headers, "/search?tag=a&tag=b#frag").to_json();
    assert_eq!(v["parsed_query"], json!({"tag": ["a", "b"]}));
}

#[test]
fn json_body_is_parsed() {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    let body = BodyInput {
        bytes: bytes::Bytes::from_static(br#"{"amount": 10, "items": ["a"]}"#),
        truncated: false,
    };
    let input = RequestInput {
        body: Some(&body),
        ..request(&headers, "/pay")
    };
    let v = input.to_json();
    assert_eq!(
        v["attributes"]["request"]["http"]["body"],
        r#"{"amount": 10, "items": ["a"]}"#
    );
    assert_eq!(v["parsed_body"], json!({"amount": 10, "items": ["a"]}));
    assert_eq!(v["truncated_body"], false);
}

#[test]
fn truncated_other_type_or_invalid_body_is_not_parsed() {
    let json_type = {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h
    };
    let text_type = {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("text/plain"));
        h
    };
    let cases = [
        (&json_type, &br#"{"amount": 1"#[..], true),
        (&text_type, &br#"{"amount": 1}"#[..], false),
        (&json_type, &b"not json"[..], false),
        (&json_type, &b""[..], false),
        (&json_type, &b"\xff\xfe"[..], false),
    ];
    for (headers, bytes, truncated) in cases {
        let body = BodyInput {
            bytes: bytes::Bytes::copy_from_slice(bytes),
            truncated,
        };
        let input = RequestInput {
            body: Some(&body),
            ..request(headers, "/")
        };
        let v = input.to_json();
        assert_eq!(v["parsed_body"], serde_json::Value::Null, "{bytes:?}");
        assert_eq!(v["truncated_body"], truncated);
        assert_eq!(
            v["attributes"]["request"]["http"]["body"],
            String::from_utf8_lossy(bytes).as_ref()
        );
    }
}

#[test]
fn values_reused_between_requests_are_never_stale() {
    // The per-thread cache reuses the last peer objects and header values:
    // a change in any of them must show.
    let mut h1 = HeaderMap::new();
    h1.insert("accept", HeaderValue::from_static("*/*"));
    h1.insert("user-agent", HeaderValue::from_static("a"));
    let mut h2 = HeaderMap::new();
    h2.insert("accept", HeaderValue::from_static("*/*"));
    h2.insert("user-agent", HeaderValue::from_static("b"));
    let first = request(&h1, "/one").to_json();
    let second = RequestInput {
        source_principal: Some("spiffe://mesh.local/ns/shop/sa/other"),
        source_address: "10.1.2.3:40001".parse().unwrap(),
        destination_address: "[fd00::9]:15006".parse().unwrap(),
        method: "GET",
        ..request(&h2, "/two")
    }
    .to_json();
    assert_eq!(
        first["attributes"]["request"]["http"]["headers"]["user-agent"],
        "a"
    );
    let a = &second["attributes"];
    assert_eq!(
        a["request"]["http"]["headers"],
        json!({"accept": "*/*", "user-agent": "b"})
    );
    assert_eq!(a["request"]["http"]["method"], "GET");
    assert_eq!(
        a["source"]["principal"],
        "spiffe://mesh.local/ns/shop/sa/other"
    );
    assert_eq!(a["source"]["address"]["socketAddress"]["portValue"], 40001);
    assert_eq!(
        a["destination"]["address"]["socketAddress"]["address"],
        "fd00::9"
    );
    let third = RequestInput {
        source_principal: None,
        ..request(&h1, "/three")
    }
    .to_json();
    assert!(third["attributes"]["source"].get("principal").is_none());
    assert_eq!(third["attributes"]["request"]["http"]["method"], "POST");
}
