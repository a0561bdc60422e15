use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::requests::CACHE_ENTRIES;
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
    // Both decisions' drop counters exist before any drop (a scrape shows
    // a dropped denial as a change from 0).
    for decision in ["allow", "deny"] {
        assert_eq!(
            sample(
                &s,
                "usher_decision_log_dropped_total",
                &[("decision", decision)]
            ),
            Some(0.0)
        );
    }
}

/// One sample line of a text exposition, label values unescaped.
#[derive(Clone, Debug, PartialEq)]
struct Line {
    name: String,
    labels: Vec<(String, String)>,
    value: f64,
}

fn is_metric_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(s: &str) -> bool {
    is_metric_name(s) && !s.contains(':')
}

/// `name{k="v",…} value`, strictly: label values may only use the escapes
/// `\\`, `\"` and `\n`, and nothing may follow the value.
fn parse_line(line: &str) -> Line {
    let end = line.find(['{', ' ']).expect(line);
    let name = &line[..end];
    assert!(is_metric_name(name), "bad metric name: {line}");
    let mut labels = Vec::new();
    let mut rest = &line[end..];
    if let Some(after) = rest.strip_prefix('{') {
        let mut chars = after.char_indices().peekable();
        loop {
            let start = chars.peek().expect(line).0;
            let eq = after[start..].find('=').expect(line) + start;
            let key = &after[start..eq];
            assert!(is_label_name(key), "bad label name {key:?}: {line}");
            while chars.peek().is_some_and(|(i, _)| *i <= eq) {
                chars.next();
            }
            assert_eq!(chars.next().map(|c| c.1), Some('"'), "{line}");
            let mut value = String::new();
            loop {
                match chars.next().expect(line).1 {
                    '"' => break,
                    '\\' => match chars.next().expect(line).1 {
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        'n' => value.push('\n'),
                        other => panic!("bad escape \\{other}: {line}"),
                    },
                    '\n' => panic!("raw newline: {line}"),
                    c => value.push(c),
                }
            }
            assert!(
                labels.iter().all(|(k, _): &(String, String)| k != key),
                "label {key} twice: {line}"
            );
            labels.push((key.to_owned(), value));
            match chars.next().expect(line) {
                (_, ',') => continue,
                (i, '}') => {
                    rest = &after[i + 1..];
                    break;
                }
                (_, c) => panic!("unexpected {c:?}: {line}"),
            }
        }
    }
    let value = rest.strip_prefix(' ').expect(line);
    assert!(!value.contains(' '), "more than a value: {line}");
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        "NaN" => f64::NAN,
        v => v.parse().unwrap_or_else(|_| panic!("bad value: {line}")),
    };
    Line {
        name: name.to_owned(),
        labels,
        value,
    }
}

/// Reads a whole exposition as a strict parser of the format would, and
/// returns its samples. 0.0.4 (`om == false`): every family has one HELP
/// and one TYPE (counter, gauge, histogram, summary or untyped) under the
/// name its samples carry (histograms: `_bucket`/`_sum`/`_count`), and no
/// other comment. OpenMetrics: counters are named without `_total` and
/// their samples with it, `info` samples end in `_info`, `# UNIT` names the
/// family's suffix, and `# EOF` ends the text.
fn strict(text: &str, om: bool) -> Vec<Line> {
    let mut families: std::collections::HashMap<String, String> = Default::default();
    let mut helped = std::collections::HashSet::new();
    let mut current: Option<(String, String)> = None;
    let mut samples = Vec::new();
    let mut eof = false;
    for line in text.lines() {
        assert!(!eof, "text after # EOF: {line}");
        if let Some(comment) = line.strip_prefix("# ") {
            let (keyword, rest) = comment.split_once(' ').unwrap_or((comment, ""));
            match keyword {
                "HELP" => {
                    let (name, _) = rest.split_once(' ').expect(line);
                    assert!(is_metric_name(name), "{line}");
                    assert!(helped.insert(name.to_owned()), "HELP twice: {line}");
                }
                "TYPE" => {
                    let (name, ty) = rest.split_once(' ').expect(line);
                    let types: &[&str] = if om {
                        &[
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "summary",
                            "unknown",
                        ]
                    } else {
                        &["counter", "gauge", "histogram", "summary", "untyped"]
                    };
                    assert!(types.contains(&ty), "type {ty} in this format: {line}");
                    assert!(helped.contains(name), "TYPE without HELP: {line}");
                    assert!(
                        families.insert(name.to_owned(), ty.to_owned()).is_none(),
                        "family twice: {line}"
                    );
                    current = Some((name.to_owned(), ty.to_owned()));
                }
                "UNIT" if om => {
                    let (name, unit) = rest.split_once(' ').expect(line);
                    assert_eq!(Some(name), current.as_ref().map(|c| c.0.as_str()));
                    assert!(name.ends_with(&format!("_{unit}")), "{line}");
                }
                "EOF" if om && rest.is_empty() => eof = true,
                _ => panic!("not a line of this format: {line}"),
            }
            continue;
        }
        assert!(!line.is_empty(), "empty line");
        let sample = parse_line(line);
        let (family, ty) = current
            .as_ref()
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        let suffix = sample
            .name
            .strip_prefix(family.as_str())
            .unwrap_or_else(|| panic!("sample outside its family {family}: {line}"));
        let fits = match (ty.as_str(), om) {
            ("gauge", _) | ("untyped", false) | ("unknown", true) | ("counter", false) => {
                suffix.is_empty()
            }
            ("counter", true) => suffix == "_total" || suffix == "_created",
            ("info", true) => suffix == "_info",
            ("histogram", _) => {
                matches!(suffix, "_bucket" | "_sum" | "_count") || (om && suffix == "_created")
            }
            _ => false,
        };
        assert!(fits, "{ty} family {family} has sample {line}");
        if suffix == "_bucket" {
            assert!(sample.labels.iter().any(|(k, _)| k == "le"), "{line}");
        }
        samples.push(sample);
    }
    assert_eq!(eof, om, "# EOF only (and always) in OpenMetrics");
    samples
}

/// A registry with every kind of family usher has, all with samples.
fn busy_metrics() -> Arc<Metrics> {
    let m = Metrics::new(10);
    let conn = ConnMetrics::new(m.clone(), Direction::Inbound);
    let peer = m.peer_label("spiffe://td/ns/a/sa/x");
    conn.record(&peer, 200, Duration::from_millis(3));
    conn.record(&peer, 503, Duration::from_millis(30));
    conn.record_outcome(
        &peer,
        200,
        Outcome {
            grpc_status: Some(GrpcCode::from_header(b"5")),
            failure: true,
        },
        Duration::from_millis(1),
    );
    let _open = m.connection_opened(Direction::Outbound);
    m.handshake_failed(Direction::Inbound, "unknown_ca");
    m.policy_decision(false, true);
    m.renewal(true);
    m.set_cert_expiry(UNIX_EPOCH + Duration::from_secs(1_900_000_000));
    m.spans_exported(2);
    m.spans_dropped(SpanDrop::ExportFailed, 1);
    m.authn_failure("expired");
    m.rate_limited("caller");
    m.connection_refused(Direction::Inbound);
    m.upgraded(Direction::Outbound, "websocket", "websocket");
    m
}

#[test]
fn prometheus_text_is_valid_0_0_4_for_every_family() {
    let m = busy_metrics();
    let text = m.encode_as(Format::Prometheus);
    let samples = strict(&text, false);
    assert!(!samples.is_empty());
    for line in [
        "# TYPE usher_requests_total counter",
        "# TYPE usher_connections_total counter",
        "# TYPE usher_open_connections gauge",
        "# TYPE usher_request_duration_seconds histogram",
        "# TYPE usher_identity_cert_expiry_timestamp_seconds gauge",
        "# TYPE usher_build_info gauge",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    let build = format!(
        "usher_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    assert!(text.lines().any(|l| l == build), "{text}");
    for absent in ["# UNIT", "# EOF", " info\n"] {
        assert!(!text.contains(absent), "{absent:?} in\n{text}");
    }
    // A 0.0.4 parser sees the types (not untyped).
    let s = parse(&text);
    let kind = |name: &str| {
        s.samples
            .iter()
            .find(|x| x.metric == name)
            .map(|x| std::mem::discriminant(&x.value))
    };
    let counter = std::mem::discriminant(&prometheus_parse::Value::Counter(0.0));
    let gauge = std::mem::discriminant(&prometheus_parse::Value::Gauge(0.0));
    let histogram = std::mem::discriminant(&prometheus_parse::Value::Histogram(vec![]));
    assert_eq!(kind("usher_requests_total"), Some(counter));
    assert_eq!(kind("usher_trace_spans_exported_total"), Some(counter));
    assert_eq!(kind("usher_open_connections"), Some(gauge));
    assert_eq!(kind("usher_build_info"), Some(gauge));
    assert_eq!(kind("usher_request_duration_seconds"), Some(histogram));
    if cfg!(target_os = "linux") {
        assert_eq!(kind("process_cpu_seconds_total"), Some(counter));
        assert_eq!(kind("process_resident_memory_bytes"), Some(gauge));
    }
}

#[test]
fn openmetrics_text_is_valid_and_holds_the_same_samples() {
    let m = busy_metrics();
    let om = m.encode_as(Format::OpenMetrics);
    let om_samples = strict(&om, true);
    for line in [
        "# TYPE usher_requests counter",
        "# TYPE usher_build info",
        "# TYPE usher_request_duration_seconds histogram",
        "# UNIT usher_request_duration_seconds seconds",
    ] {
        assert!(om.lines().any(|l| l == line), "no {line:?} in\n{om}");
    }
    assert!(om.ends_with("# EOF\n"));
    // The same data in both formats (process_* move between scrapes).
    // Label order and the spelling of `le` (OpenMetrics: "1.0", 0.0.4 as
    // Go prints it: "1") may differ; the series and values may not.
    let text = m.encode_as(Format::Prometheus);
    let canonical = |lines: Vec<Line>| {
        let mut out: Vec<String> = lines
            .into_iter()
            .filter(|l| !l.name.starts_with("process_"))
            .map(|mut l| {
                for (k, v) in &mut l.labels {
                    if k == "le" {
                        *v = v.parse::<f64>().unwrap().to_string();
                    }
                }
                l.labels.sort();
                format!("{l:?}")
            })
            .collect();
        out.sort();
        out
    };
    let a = canonical(om_samples);
    assert!(a.len() > 30, "{a:?}");
    assert_eq!(a, canonical(strict(&text, false)));
}

#[test]
fn label_values_are_escaped_in_both_formats() {
    let m = Metrics::new(10);
    let conn = ConnMetrics::new(m.clone(), Direction::Inbound);
    let odd = "spiffe://td/a\"b\\c\nd";
    conn.record(&m.peer_label(odd), 200, Duration::ZERO);
    for format in [Format::Prometheus, Format::OpenMetrics] {
        let text = m.encode_as(format);
        assert!(text.contains(r#"peer="spiffe://td/a\"b\\c\nd""#), "{text}");
        let samples = strict(&text, format == Format::OpenMetrics);
        let requests = samples
            .iter()
            .find(|l| l.name == "usher_requests_total")
            .unwrap();
        assert!(requests
            .labels
            .contains(&("peer".to_owned(), odd.to_owned())));
    }
}

#[test]
fn requests_carry_a_classification_and_grpc_status_only_for_grpc() {
    let m = busy_metrics();
    let text = m.encode();
    let peer = "peer=\"spiffe://td/ns/a/sa/x\"";
    for line in [
        format!("usher_requests_total{{direction=\"inbound\",code=\"200\",{peer},classification=\"success\"}} 1"),
        format!("usher_requests_total{{direction=\"inbound\",code=\"503\",{peer},classification=\"failure\"}} 1"),
        format!("usher_requests_total{{direction=\"inbound\",code=\"200\",{peer},classification=\"failure\",grpc_status=\"5\"}} 1"),
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    assert_eq!(text.matches("grpc_status=").count(), 1, "{text}");
}

#[test]
fn grpc_outcomes_have_their_own_cache_entries() {
    let m = Metrics::new(10);
    let conn = ConnMetrics::new(m.clone(), Direction::Outbound);
    let peer = m.peer_label("spiffe://td/x");
    let grpc = |code: &[u8]| {
        let status = GrpcCode::from_header(code);
        Outcome {
            grpc_status: Some(status),
            failure: status != GrpcCode::OK,
        }
    };
    for _ in 0..2 {
        conn.record_outcome(&peer, 200, grpc(b"0"), Duration::ZERO);
        conn.record_outcome(&peer, 200, grpc(b"14"), Duration::ZERO);
        conn.record(&peer, 200, Duration::ZERO);
    }
    let s = parse(&m.encode());
    let count = |labels: &[(&str, &str)]| {
        s.samples
            .iter()
            .filter(|x| x.metric == "usher_requests_total")
            .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
            .filter(|x| {
                x.labels.get("grpc_status").is_some() == labels.iter().any(|l| l.0 == "grpc_status")
            })
            .count()
    };
    assert_eq!(
        count(&[("grpc_status", "0"), ("classification", "success")]),
        1
    );
    assert_eq!(
        count(&[("grpc_status", "14"), ("classification", "failure")]),
        1
    );
    assert_eq!(count(&[("classification", "success")]), 1);
    assert_eq!(
        sample(&s, "usher_requests_total", &[("grpc_status", "14")]),
        Some(2.0)
    );
}

#[test]
fn accept_headers_are_negotiated_like_prometheus_clients_do() {
    use Format::*;
    let cases: &[(Option<&str>, Format)] = &[
        (None, Prometheus),
        (Some(""), Prometheus),
        (Some("*/*"), Prometheus),
        (Some("application/json"), Prometheus),
        (Some("text/plain"), Prometheus),
        (Some("text/plain;version=0.0.4"), Prometheus),
        // Prometheus 2.x
        (
            Some("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1"),
            OpenMetrics,
        ),
        // Prometheus 3.x, with native histograms on (protobuf first).
        (
            Some("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited;q=0.6,application/openmetrics-text;version=1.0.0;escaping=allow-utf-8;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=1.0.0;escaping=allow-utf-8;q=0.3,text/plain;version=0.0.4;q=0.2,*/*;q=0.1"),
            OpenMetrics,
        ),
        (Some("application/openmetrics-text"), OpenMetrics),
        (Some("Application/OpenMetrics-Text; Version=\"1.0.0\""), OpenMetrics),
        (Some("application/openmetrics-text;version=0.0.1"), OpenMetrics),
        (Some("application/openmetrics-text;version=2.0.0"), Prometheus),
        (Some("application/openmetrics-text;q=0"), Prometheus),
        (Some("application/openmetrics-text;q=bad"), Prometheus),
        (
            Some("text/plain;version=0.0.4;q=0.9, application/openmetrics-text;q=0.5"),
            Prometheus,
        ),
        (
            Some("text/plain;version=0.0.4;q=0.5, application/openmetrics-text;q=0.9"),
            OpenMetrics,
        ),
    ];
    for (accept, want) in cases {
        assert_eq!(Format::negotiate(*accept), *want, "{accept:?}");
    }
    assert_eq!(
        OpenMetrics.content_type(),
        "application/openmetrics-text; version=1.0.0; charset=utf-8"
    );
    assert_eq!(
        Prometheus.content_type(),
        "text/plain; version=0.0.4; charset=utf-8"
    );
}

#[cfg(target_os = "linux")]
mod process_metrics {
    use super::super::process::*;
    use super::*;

    #[test]
    fn proc_files_are_parsed() {
        // A command name with spaces and parentheses.
        let stat = "4242 (usher (x) y) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 3 0 98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            parse_stat(stat),
            Some(Stat {
                utime: 250,
                stime: 130,
                starttime: 98765,
                vsize: 123456789,
            })
        );
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(
            parse_btime("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n"),
            Some(1_700_000_000)
        );
        assert_eq!(
            parse_rss("Name:\tusher\nVmSize:\t  10000 kB\nVmRSS:\t    5120 kB\n"),
            Some(5120 * 1024)
        );
        let limits =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
Max processes             63704                63704                processes \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_max_fds(limits), Some(1024));
        assert_eq!(
            parse_max_fds(
                "Max open files            unlimited            unlimited            files\n"
            ),
            None
        );
    }

    #[test]
    fn process_metrics_come_from_proc_self_in_both_formats() {
        let m = Metrics::new(10);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        for format in [Format::Prometheus, Format::OpenMetrics] {
            let text = m.encode_as(format);
            let samples = strict(&text, format == Format::OpenMetrics);
            let get = |name: &str| {
                samples
                    .iter()
                    .find(|l| l.name == name)
                    .map(|l| l.value)
                    .unwrap_or_else(|| panic!("no {name} in\n{text}"))
            };
            assert!(get("process_cpu_seconds_total") >= 0.0);
            let rss = get("process_resident_memory_bytes");
            assert!(rss > 1024.0 * 1024.0, "{rss}");
            assert!(get("process_virtual_memory_bytes") >= rss);
            let open = get("process_open_fds");
            assert!(open >= 3.0, "{open}");
            assert!(get("process_max_fds") >= open);
            let start = get("process_start_time_seconds");
            assert!(
                start <= now + 1.0 && start > now - 86_400.0,
                "{start} vs {now}"
            );
        }
        let text = m.encode();
        assert!(text.contains("# TYPE process_cpu_seconds_total counter\n"));
        let om = m.encode_as(Format::OpenMetrics);
        assert!(
            om.contains("# TYPE process_cpu_seconds counter\n# UNIT process_cpu_seconds seconds\n")
        );
    }
}

#[test]
fn upgrade_protocol_labels_are_bounded() {
    // The protocol switched to, by name, lower-cased, when it was offered.
    assert_eq!(upgrade_protocol("websocket", "websocket"), "websocket");
    assert_eq!(upgrade_protocol("WebSocket", "WebSocket"), "websocket");
    assert_eq!(
        upgrade_protocol("websocket/13", "WEBSOCKET/13"),
        "websocket"
    );
    assert_eq!(upgrade_protocol("foo, websocket", "websocket"), "websocket");
    // A 101 to a protocol the request did not offer (an app's invention).
    assert_eq!(upgrade_protocol("websocket", "x-made-up-1234"), "other");
    assert_eq!(upgrade_protocol("", "websocket"), "other");
    // Not a token, empty, or longer than 32 bytes, even if offered.
    for bad in ["web socket", "wé", "", "a\"b", &"x".repeat(33)] {
        assert_eq!(upgrade_protocol(bad, bad), "other", "{bad:?}");
    }
    let longest = "x".repeat(32);
    assert_eq!(upgrade_protocol(&longest, &longest), longest.as_str());

    let m = Metrics::new(10);
    m.upgraded(Direction::Inbound, "websocket", "WebSocket");
    m.upgraded(Direction::Inbound, "websocket", "websocket");
    m.upgraded(Direction::Inbound, "websocket", "nope");
    m.upgraded(Direction::Outbound, "websocket", "websocket");
    let s = parse(&m.encode());
    let count = |direction, protocol| {
        sample(
            &s,
            "usher_upgrades_total",
            &[("direction", direction), ("protocol", protocol)],
        )
    };
    assert_eq!(count("inbound", "websocket"), Some(2.0));
    assert_eq!(count("inbound", "other"), Some(1.0));
    assert_eq!(count("outbound", "websocket"), Some(1.0));
}
