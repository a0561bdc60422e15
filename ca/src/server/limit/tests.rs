//! The per-address windows of failed enrolments, with a clock the tests
//! move by hand.

use super::*;

const WINDOW: Duration = Duration::from_secs(60);

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn after_the_limit_an_address_waits_until_its_window_ends() {
    let limits = EnrolLimits::new(3, WINDOW);
    let t0 = Instant::now();
    let a = ip("10.0.0.1");
    for i in 0..3 {
        assert_eq!(limits.check(a, t0), Ok(()), "failure {i} not yet limited");
        limits.failed(a, t0 + Duration::from_secs(i));
    }
    let at = t0 + Duration::from_secs(10);
    assert_eq!(limits.check(a, at), Err(Duration::from_secs(50)));
    // Another address is not affected.
    assert_eq!(limits.check(ip("10.0.0.2"), at), Ok(()));
    // The window ends: the address may try again.
    assert_eq!(limits.check(a, t0 + WINDOW), Ok(()));
}

#[test]
fn only_the_first_failure_of_a_window_is_logged_and_the_rest_are_summed_up() {
    let limits = EnrolLimits::new(3, WINDOW);
    let t0 = Instant::now();
    let a = ip("192.0.2.7");
    let first = limits.failed(a, t0);
    assert!(first.first);
    assert_eq!(first.limited_for, None);
    assert_eq!(first.ended, None);
    assert!(!limits.failed(a, t0).first);
    let third = limits.failed(a, t0 + Duration::from_secs(20));
    assert!(!third.first);
    assert_eq!(
        third.limited_for,
        Some(Duration::from_secs(40)),
        "the limit is reached once"
    );
    for _ in 0..4 {
        assert!(limits.check(a, t0 + Duration::from_secs(30)).is_err());
    }
    // Nothing has ended yet.
    assert_eq!(limits.sweep(t0 + Duration::from_secs(59)), []);
    assert_eq!(
        limits.sweep(t0 + WINDOW),
        [Summary {
            source: Source::Addr(a),
            failures: 3,
            not_logged: 2,
            rate_limited: 4,
        }]
    );
    // Swept: a new window starts with a logged failure.
    assert!(limits.failed(a, t0 + WINDOW).first);
}

#[test]
fn a_lone_failure_needs_no_summary() {
    let limits = EnrolLimits::new(3, WINDOW);
    let t0 = Instant::now();
    limits.failed(ip("192.0.2.8"), t0);
    assert_eq!(limits.sweep(t0 + WINDOW), []);
    assert_eq!(limits.drain(), []);
}

#[test]
fn a_new_failure_after_the_window_reports_the_old_one() {
    let limits = EnrolLimits::new(5, WINDOW);
    let t0 = Instant::now();
    let a = ip("192.0.2.9");
    limits.failed(a, t0);
    limits.failed(a, t0);
    let later = limits.failed(a, t0 + WINDOW + Duration::from_secs(1));
    assert!(later.first);
    assert_eq!(
        later.ended,
        Some(Summary {
            source: Source::Addr(a),
            failures: 2,
            not_logged: 1,
            rate_limited: 0,
        })
    );
}

#[test]
fn shutdown_drains_every_open_window() {
    let limits = EnrolLimits::new(1, WINDOW);
    let t0 = Instant::now();
    let a = ip("192.0.2.10");
    let failure = limits.failed(a, t0);
    assert!(failure.first);
    assert_eq!(failure.limited_for, Some(WINDOW), "a limit of one");
    assert!(limits.check(a, t0).is_err());
    assert_eq!(
        limits.drain(),
        [Summary {
            source: Source::Addr(a),
            failures: 1,
            not_logged: 0,
            rate_limited: 1,
        }]
    );
}

#[test]
fn ipv6_clients_share_their_64_and_mapped_ipv4_is_ipv4() {
    let limits = EnrolLimits::new(2, WINDOW);
    let t0 = Instant::now();
    limits.failed(ip("2001:db8:1:2::1"), t0);
    let second = limits.failed(ip("2001:db8:1:2:ffff::9"), t0);
    assert_eq!(second.source, Source::Addr(ip("2001:db8:1:2::")));
    assert!(!second.first, "the same /64");
    assert!(limits.check(ip("2001:db8:1:2::42"), t0).is_err());
    assert_eq!(limits.check(ip("2001:db8:1:3::1"), t0), Ok(()));
    assert_eq!(second.source.to_string(), "2001:db8:1:2::/64");

    limits.failed(ip("192.0.2.1"), t0);
    let mapped = limits.failed(ip("::ffff:192.0.2.1"), t0);
    assert_eq!(mapped.source, Source::Addr(ip("192.0.2.1")));
    assert!(!mapped.first);
}

#[test]
fn a_full_table_makes_room_from_ended_windows_then_shares_one_window() {
    let limits = EnrolLimits::new(2, WINDOW);
    let t0 = Instant::now();
    for i in 0..MAX_SOURCES as u32 {
        limits.failed(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)), t0);
    }
    // Full, and nothing has ended: newcomers share one window.
    let x = limits.failed(ip("198.51.100.1"), t0);
    assert_eq!(x.source, Source::Overflow);
    let y = limits.failed(ip("198.51.100.2"), t0);
    assert_eq!(y.source, Source::Overflow);
    assert!(limits.check(ip("198.51.100.3"), t0).is_err());
    // Later every window has ended: the newcomer gets its own again.
    let later = t0 + WINDOW;
    let z = limits.failed(ip("198.51.100.4"), later);
    assert_eq!(z.source, Source::Addr(ip("198.51.100.4")));
    assert!(z.first);
}

#[test]
fn retry_after_is_whole_seconds_rounded_up() {
    assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
    assert_eq!(retry_after_secs(Duration::ZERO), 1);
    assert_eq!(retry_after_secs(Duration::from_millis(59_001)), 60);
    assert_eq!(retry_after_secs(Duration::from_secs(60)), 60);
}
