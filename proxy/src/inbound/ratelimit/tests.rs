use super::*;

fn limits(rps: u32, burst: u32) -> Arc<RateLimits> {
    let config = RateLimitConfig {
        per_caller: Some(BucketConfig {
            requests_per_second: rps,
            burst,
        }),
        routes: vec![crate::config::RouteLimitConfig {
            path_prefix: "/expensive".into(),
            requests_per_second: 1,
            burst: 1,
        }],
        evict_after: Duration::from_secs(60),
    };
    RateLimits::new(&config)
}

#[test]
fn a_burst_then_refusal_with_a_retry_time() {
    let rl = limits(1, 3);
    let a: Arc<str> = Arc::from("spiffe://td/a");
    for _ in 0..3 {
        assert!(rl.check(&a, "/").is_ok());
    }
    let refused = rl.check(&a, "/").unwrap_err();
    assert_eq!(refused.limit, 3);
    assert_eq!(refused.scope, "caller");
    assert!(refused.retry_after > Duration::ZERO && refused.retry_after <= Duration::from_secs(1));
    // Callers have their own buckets.
    let b: Arc<str> = Arc::from("spiffe://td/b");
    assert!(rl.check(&b, "/").is_ok());
}

#[test]
fn route_buckets_are_per_caller_and_prefix() {
    let rl = limits(1000, 1000);
    let a: Arc<str> = Arc::from("spiffe://td/a");
    assert!(rl.check(&a, "/expensive/report").is_ok());
    let refused = rl.check(&a, "/expensive/other").unwrap_err();
    assert_eq!(refused.scope, "route");
    assert!(
        rl.check(&a, "/cheap").is_ok(),
        "other paths are not limited by the route"
    );
    let b: Arc<str> = Arc::from("spiffe://td/b");
    assert!(rl.check(&b, "/expensive").is_ok());
}

#[test]
fn refilled_buckets_are_evicted() {
    let rl = limits(1_000_000, 1);
    for i in 0..100 {
        let id: Arc<str> = Arc::from(format!("spiffe://td/c{i}"));
        let _ = rl.check(&id, "/");
    }
    assert_eq!(rl.bucket_count(), 100);
    // At a million tokens a second a bucket refills within a microsecond:
    // eviction empties the table (polled with a deadline, no sleep).
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while rl.bucket_count() > 0 && std::time::Instant::now() < deadline {
        for b in rl.per_caller.iter() {
            b.limiter.retain_recent();
        }
    }
    assert_eq!(rl.bucket_count(), 0);
}
