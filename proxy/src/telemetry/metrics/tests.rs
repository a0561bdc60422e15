use super::*;

fn parse(text: &str) -> prometheus_parse::Scrape {
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn sample(scrape: &prometheus_parse::Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[test]
fn requests_are_counted_per_direction_code_and_peer() {
    let m = Metrics::new(10);
    let conn = ConnMetrics::new(m.clone(), Direction::Inbound);
    let peer = m.peer_label("spiffe://td/ns/a/sa/x");
    for _ in 0..3 {
        conn.record(&peer, 200, Duration::from_millis(2));
    }
    conn.record(&peer, 503, Duration::from_millis(700));
    let s = parse(&m.encode());
    let count = |code| {
        sample(
            &s,
            "usher_requests_total",
            &[
                ("direction", "inbound"),
                ("code", code),
                ("peer", "spiffe://td/ns/a/sa/x"),
            ],
        )
    };
    assert_eq!(count("200"), Some(3.0));
    assert_eq!(count("503"), Some(1.0));
    let text = m.encode();
    assert!(
        text.contains("usher_request_duration_seconds_bucket{le=\"0.0025\",direction=\"inbound\",class=\"2xx\",peer=\"spiffe://td/ns/a/sa/x\"} 3")
            || text.contains("usher_request_duration_seconds_bucket{direction=\"inbound\",class=\"2xx\",peer=\"spiffe://td/ns/a/sa/x\",le=\"0.0025\"} 3"),
        "{text}"
    );
}

#[test]
fn the_cache_is_per_connection_and_bounded() {
    let m = Metrics::new(10);
    let conn = ConnMetrics::new(m.clone(), Direction::Outbound);
    let peer = m.peer_label("spiffe://td/x");
    // More distinct codes than the cache holds: all still counted.
    for code in 200..220u16 {
        conn.record(&peer, code, Duration::ZERO);
        conn.record(&peer, code, Duration::ZERO);
    }
    assert!(conn.cache.lock().unwrap().len() <= CACHE_ENTRIES);
    let s = parse(&m.encode());
    for code in 200..220u16 {
        let code = code.to_string();
        assert_eq!(
            sample(&s, "usher_requests_total", &[("code", code.as_str())]),
            Some(2.0),
            "code {code}"
        );
    }
}

#[test]
fn peer_labels_stop_at_the_cap() {
    let m = Metrics::new(2);
    assert_eq!(&*m.peer_label("a"), "a");
    assert_eq!(&*m.peer_label("b"), "b");
    assert_eq!(&*m.peer_label("c"), OTHER_PEER);
    assert_eq!(&*m.peer_label("a"), "a", "known peers keep their label");
}

#[test]
fn fixed_counters_and_gauges() {
    let m = Metrics::new(10);
    {
        let _open = m.connection_opened(Direction::Inbound);
        let s = parse(&m.encode());
        assert_eq!(
            sample(&s, "usher_open_connections", &[("direction", "inbound")]),
            Some(1.0)
        );
    }
    m.handshake_failed(Direction::Inbound, "unknown_ca");
    m.policy_decision(false, true);
    m.policy_decision(true, false);
    m.spans_dropped(SpanDrop::QueueFull, 3);
    m.spans_exported(5);
    m.set_cert_expiry(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
    let s = parse(&m.encode());
    assert_eq!(
        sample(&s, "usher_open_connections", &[("direction", "inbound")]),
        Some(0.0)
    );
    assert_eq!(
        sample(&s, "usher_connections_total", &[("direction", "inbound")]),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "usher_tls_handshake_failures_total",
            &[("reason", "unknown_ca")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "usher_policy_decisions_total",
            &[("decision", "allow"), ("mode", "enforce")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "usher_policy_decisions_total",
            &[("decision", "deny"), ("mode", "audit")]
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &s,
            "usher_trace_spans_dropped_total",
            &[("reason", "queue_full")]
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(&s, "usher_trace_spans_exported_total", &[]),
        Some(5.0)
    );
    assert_eq!(
        sample(&s, "usher_identity_cert_expiry_timestamp_seconds", &[]),
        Some(1_900_000_000.0)
    );
    assert_eq!(sample(&s, "usher_build_info", &[]), Some(1.0));
}
