//! Trace context from the network: `traceparent`/`tracestate` (W3C) and B3
//! (single `b3` and multi `x-b3-*`), read by `extract` on every inbound and
//! outbound request and rewritten by `inject`.
//!
//! Input: lines, each `<digit>value`, the digit picking the header (see
//! `NAMES`; repeated headers are appended). Values `http` rejects are skipped.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use usher_proxy::telemetry::propagation::{
    extract, inject, parse_b3_single, parse_traceparent, B3Form, Extracted, B3, B3_FLAGS,
    B3_PARENT_SPAN_ID, B3_SAMPLED, B3_SPAN_ID, B3_TRACE_ID, TRACEPARENT, TRACESTATE,
};

const NAMES: [&HeaderName; 8] = [
    &TRACEPARENT,
    &TRACESTATE,
    &B3,
    &B3_TRACE_ID,
    &B3_SPAN_ID,
    &B3_PARENT_SPAN_ID,
    &B3_SAMPLED,
    &B3_FLAGS,
];

fn header_map(data: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in data.split(|&b| b == b'\n') {
        let Some((&selector, value)) = line.split_first() else {
            continue;
        };
        // b'0'..=b'7' map to 0..=7, as does any byte modulo 8.
        let name = NAMES[usize::from(selector % 8)];
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name.clone(), value);
        }
    }
    headers
}

type Ids = (String, String, bool);

fn ids(cx: &opentelemetry::trace::SpanContext) -> Ids {
    (
        cx.trace_id().to_string(),
        cx.span_id().to_string(),
        cx.is_sampled(),
    )
}

fn parent_ids(e: &Extracted) -> Option<Ids> {
    e.parent.as_ref().map(ids)
}

fuzz_target!(|data: &[u8]| {
    // The parsers on raw bytes, and a parsed context is well-formed.
    for cx in [parse_traceparent(data), parse_b3_single(data)]
        .into_iter()
        .flatten()
    {
        assert!(cx.is_valid() && cx.is_remote());
    }

    let mut headers = header_map(data);
    for v in headers.values() {
        let _ = (
            parse_traceparent(v.as_bytes()),
            parse_b3_single(v.as_bytes()),
        );
    }

    let incoming = extract(&headers);
    let expected_form = if headers.contains_key(&B3) {
        B3Form::Single
    } else if headers.contains_key(&B3_TRACE_ID) {
        B3Form::Multi
    } else {
        B3Form::None
    };
    assert_eq!(incoming.b3, expected_form);
    let Some(parent) = incoming.parent.clone() else {
        // No valid context: a new trace starts, and a lone tracestate goes.
        return;
    };
    assert!(parent.is_valid() && parent.is_remote());
    let want = ids(&parent);

    // What usher sends on: traceparent always, and the B3 form that came in.
    inject(&mut headers, &parent, &incoming);
    let out = extract(&headers);
    assert_eq!(
        parent_ids(&out),
        Some(want.clone()),
        "round trip via traceparent"
    );
    assert_eq!(out.b3, incoming.b3, "B3 form kept");
    let tp = headers.get(&TRACEPARENT).expect("traceparent written");
    assert_eq!(headers.get_all(&TRACEPARENT).iter().count(), 1);
    assert_eq!(
        parse_traceparent(tp.as_bytes()).as_ref().map(ids),
        Some(want.clone())
    );

    // The B3 headers alone carry the same context.
    headers.remove(&TRACEPARENT);
    let b3_only = extract(&headers);
    match incoming.b3 {
        B3Form::None => assert_eq!(b3_only.parent, None),
        B3Form::Single => {
            assert_eq!(headers.get_all(&B3).iter().count(), 1);
            assert_eq!(parent_ids(&b3_only), Some(want), "round trip via b3");
        }
        B3Form::Multi => {
            assert_eq!(parent_ids(&b3_only), Some(want), "round trip via x-b3-*");
        }
    }
});
