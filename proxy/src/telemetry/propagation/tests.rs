use super::*;

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const SPAN: &str = "00f067aa0ba902b7";

fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        h.append(*k, HeaderValue::from_str(v).unwrap());
    }
    h
}

fn ids(cx: &SpanContext) -> (String, String, bool) {
    (
        cx.trace_id().to_string(),
        cx.span_id().to_string(),
        cx.is_sampled(),
    )
}

#[test]
fn w3c_traceparent_is_read() {
    let tp = format!("00-{TRACE}-{SPAN}-01");
    let cx = parse_traceparent(tp.as_bytes()).unwrap();
    assert_eq!(ids(&cx), (TRACE.into(), SPAN.into(), true));
    assert!(cx.is_remote());
    let tp = format!("00-{TRACE}-{SPAN}-00");
    assert!(!parse_traceparent(tp.as_bytes()).unwrap().is_sampled());
}

#[test]
fn w3c_future_version_is_read_by_its_prefix() {
    let tp = format!("cc-{TRACE}-{SPAN}-01-what-the-future-brings");
    assert!(parse_traceparent(tp.as_bytes()).is_some());
    let tp = format!("cc-{TRACE}-{SPAN}-01x");
    assert!(parse_traceparent(tp.as_bytes()).is_none());
}

#[test]
fn w3c_invalid_values_are_ignored() {
    let zero_trace = format!("00-{}-{SPAN}-01", "0".repeat(32));
    let zero_span = format!("00-{TRACE}-{}-01", "0".repeat(16));
    let upper = format!("00-{}-{SPAN}-01", TRACE.to_uppercase());
    let v00_too_long = format!("00-{TRACE}-{SPAN}-01-extra");
    let version_ff = format!("ff-{TRACE}-{SPAN}-01");
    let bad_sep = format!("00_{TRACE}-{SPAN}-01");
    let short = format!("00-{TRACE}-{SPAN}-1");
    for bad in [
        zero_trace,
        zero_span,
        upper,
        v00_too_long,
        version_ff,
        bad_sep,
        short,
        String::new(),
        "garbage".into(),
    ] {
        assert!(
            parse_traceparent(bad.as_bytes()).is_none(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn b3_single_forms() {
    let cx = parse_b3_single(format!("{TRACE}-{SPAN}-1").as_bytes()).unwrap();
    assert_eq!(ids(&cx), (TRACE.into(), SPAN.into(), true));
    let cx = parse_b3_single(format!("{TRACE}-{SPAN}-0-{SPAN}").as_bytes()).unwrap();
    assert!(!cx.is_sampled());
    let cx = parse_b3_single(format!("{TRACE}-{SPAN}-d").as_bytes()).unwrap();
    assert!(cx.is_sampled());
    let cx = parse_b3_single(format!("{TRACE}-{SPAN}").as_bytes()).unwrap();
    assert!(
        cx.is_sampled(),
        "a deferred decision follows usher's sampler"
    );
    // 64-bit trace ids are the low half of a 128-bit one.
    let cx = parse_b3_single(format!("a3ce929d0e0e4736-{SPAN}-1").as_bytes()).unwrap();
    assert_eq!(
        cx.trace_id().to_string(),
        "0000000000000000a3ce929d0e0e4736"
    );
    for bad in [
        "0",
        "1",
        "",
        &format!("{TRACE}-{SPAN}-x"),
        &format!("{TRACE}-{SPAN}-1-{SPAN}-x"),
    ] {
        assert!(
            parse_b3_single(bad.as_bytes()).is_none(),
            "{bad:?} accepted"
        );
    }
}

#[test]
fn b3_multi_forms() {
    let h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "1"),
    ]);
    let got = extract(&h);
    assert_eq!(got.b3, B3Form::Multi);
    assert_eq!(ids(&got.parent.unwrap()), (TRACE.into(), SPAN.into(), true));
    let h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "0"),
    ]);
    assert!(!extract(&h).parent.unwrap().is_sampled());
    let h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-sampled", "0"),
        ("x-b3-flags", "1"),
    ]);
    assert!(
        extract(&h).parent.unwrap().is_sampled(),
        "debug forces sampling"
    );
    let h = headers(&[("x-b3-traceid", TRACE)]);
    assert_eq!(extract(&h).parent, None);
}

#[test]
fn w3c_wins_over_b3() {
    let other = "11111111111111111111111111111111";
    let h = headers(&[
        ("traceparent", &format!("00-{TRACE}-{SPAN}-01")),
        ("b3", &format!("{other}-{SPAN}-1")),
    ]);
    let got = extract(&h);
    assert_eq!(got.parent.unwrap().trace_id().to_string(), TRACE);
    assert_eq!(got.b3, B3Form::Single);
}

#[test]
fn inject_writes_traceparent_and_the_b3_form_that_came_in() {
    let cx = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex("1111111111111111").unwrap(),
        TraceFlags::SAMPLED,
        false,
        TraceState::NONE,
    );
    let mut h = headers(&[("b3", &format!("{TRACE}-{SPAN}-1")), ("tracestate", "a=b")]);
    let incoming = extract(&h);
    inject(&mut h, &cx, &incoming);
    assert_eq!(
        h.get("traceparent").unwrap(),
        &format!("00-{TRACE}-1111111111111111-01")
    );
    assert_eq!(h.get("b3").unwrap(), &format!("{TRACE}-1111111111111111-1"));
    assert_eq!(
        h.get("tracestate").unwrap(),
        "a=b",
        "kept with a valid parent"
    );

    let mut h = headers(&[
        ("x-b3-traceid", TRACE),
        ("x-b3-spanid", SPAN),
        ("x-b3-parentspanid", SPAN),
        ("x-b3-sampled", "1"),
    ]);
    let incoming = extract(&h);
    inject(&mut h, &cx, &incoming);
    assert_eq!(h.get("x-b3-spanid").unwrap(), "1111111111111111");
    assert_eq!(h.get("x-b3-traceid").unwrap(), TRACE);
    assert!(h.get("x-b3-parentspanid").is_none());
    assert_eq!(h.get("x-b3-sampled").unwrap(), "1");
}

#[test]
fn a_tracestate_without_a_valid_traceparent_is_dropped() {
    let cx = SpanContext::new(
        TraceId::from_hex(TRACE).unwrap(),
        SpanId::from_hex(SPAN).unwrap(),
        TraceFlags::default(),
        false,
        TraceState::NONE,
    );
    let mut h = headers(&[("traceparent", "junk"), ("tracestate", "a=b")]);
    let incoming = extract(&h);
    inject(&mut h, &cx, &incoming);
    assert!(h.get("tracestate").is_none());
    assert_eq!(
        h.get("traceparent").unwrap(),
        &format!("00-{TRACE}-{SPAN}-00")
    );
}

#[test]
fn roundtrip_through_inject_and_extract() {
    for _ in 0..100 {
        let cx = SpanContext::new(
            TraceId::from_bytes(fastrand::u128(1..).to_be_bytes()),
            SpanId::from_bytes(fastrand::u64(1..).to_be_bytes()),
            if fastrand::bool() {
                TraceFlags::SAMPLED
            } else {
                TraceFlags::default()
            },
            false,
            TraceState::NONE,
        );
        let mut h = HeaderMap::new();
        inject(
            &mut h,
            &cx,
            &Extracted {
                parent: None,
                b3: B3Form::Single,
            },
        );
        let back = extract(&h).parent.unwrap();
        assert_eq!(ids(&back), ids(&cx));
        let b3 = parse_b3_single(h.get("b3").unwrap().as_bytes()).unwrap();
        assert_eq!(ids(&b3), ids(&cx));
    }
}
