//! `strip_spoofable` + `strip_hop_by_hop`: usher never parses
//! x-forwarded-client-cert, it removes whatever a caller sent and sets its
//! own; these two run on every request's headers.
//!
//! Input: lines, each `name:value`, or `<digit>value` for one of the
//! headers these functions care about (so the fuzzer need not guess names).
//! A line starting with `!` sets `upgrade`. Names or values `http` rejects
//! are skipped.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue, CONNECTION, TE, UPGRADE};
use libfuzzer_sys::fuzz_target;
use usher_proxy::headers::{strip_hop_by_hop, strip_spoofable, XFCC};

const NAMES: [&str; 10] = [
    "x-forwarded-client-cert",
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "host",
    "x-custom",
    "X-Forwarded-Client-Cert",
];

const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
];

fn header_map(data: &[u8]) -> (HeaderMap, bool) {
    let mut headers = HeaderMap::new();
    let mut upgrade = false;
    for line in data.split(|&b| b == b'\n') {
        let (name, value): (&[u8], &[u8]) = match line.first() {
            Some(b'!') => {
                upgrade = true;
                continue;
            }
            Some(d @ b'0'..=b'9') => (NAMES[usize::from(d - b'0')].as_bytes(), &line[1..]),
            _ => match line.iter().position(|&b| b == b':') {
                Some(i) => (&line[..i], &line[i + 1..]),
                None => continue,
            },
        };
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value))
        else {
            continue;
        };
        headers.append(name, value);
    }
    (headers, upgrade)
}

/// Names listed in `Connection` that are not handled on their own.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|t| {
            !["keep-alive", "close", "upgrade", "te", ""]
                .iter()
                .any(|k| t.eq_ignore_ascii_case(k))
        })
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect()
}

fn values<'a>(h: &'a HeaderMap, name: &HeaderName) -> Vec<&'a HeaderValue> {
    h.get_all(name).iter().collect()
}

fuzz_target!(|data: &[u8]| {
    let (original, upgrade) = header_map(data);

    // strip_spoofable: no XFCC is left, nothing else is touched.
    let mut headers = original.clone();
    strip_spoofable(&mut headers);
    assert!(
        !headers.contains_key(&XFCC),
        "XFCC survived strip_spoofable"
    );
    assert!(!headers.contains_key("x-forwarded-client-cert"));
    for name in original.keys().filter(|n| **n != XFCC) {
        assert_eq!(values(&headers, name), values(&original, name), "{name}");
    }
    assert_eq!(
        headers.len(),
        original.len() - original.get_all(&XFCC).iter().count()
    );

    // strip_hop_by_hop.
    let named = connection_named(&headers);
    let before = headers.clone();
    strip_hop_by_hop(&mut headers, upgrade);
    assert!(
        !headers.contains_key(&XFCC),
        "strip_hop_by_hop brought XFCC back"
    );
    for gone in ["keep-alive", "proxy-connection", "transfer-encoding"] {
        assert!(!headers.contains_key(gone), "{gone} kept");
    }
    if upgrade {
        assert_eq!(values(&headers, &CONNECTION), ["upgrade"]);
        assert_eq!(values(&headers, &UPGRADE), values(&before, &UPGRADE));
    } else {
        assert!(!headers.contains_key("connection"));
        assert!(!headers.contains_key("upgrade"));
    }
    let te = values(&headers, &TE);
    assert!(te.is_empty() || te == ["trailers"], "TE kept as {te:?}");
    // (`named` never holds upgrade or te: those are decided above.)
    for name in &named {
        let reinserted = upgrade && name == CONNECTION;
        if !reinserted {
            assert!(
                !headers.contains_key(name),
                "{name} listed in Connection but kept"
            );
        }
    }
    // Headers that are neither hop-by-hop nor named in Connection pass as they were.
    for name in before.keys() {
        if HOP_BY_HOP.contains(&name.as_str()) || named.contains(name) {
            continue;
        }
        assert_eq!(values(&headers, name), values(&before, name), "{name}");
    }
});
