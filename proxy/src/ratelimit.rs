//! Per-caller rate limits (`rate_limit:`): token buckets keyed by the
//! caller's SPIFFE ID, and optionally by caller and path prefix
//! (governor's GCRA, lock-sharded keyed state, no global lock).
//!
//! Over the limit: 429 with `Retry-After` and the IETF `RateLimit-Limit`,
//! `RateLimit-Remaining`, `RateLimit-Reset` headers, counted in
//! `usher_rate_limited_total` and logged (at most one warn line a second,
//! with the count, so a flood does not flood the log). Buckets of callers
//! that have been quiet long enough to refill are dropped every
//! `evict_after`, so memory follows the active callers only.

use std::convert::Infallible;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{ready, Either, Ready};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::header::{HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use tokio_util::sync::CancellationToken;

use crate::body::RequestBody;
use crate::config::{BucketConfig, RateLimitConfig};
use crate::inbound::InboundConn;
use crate::respond::{text, ProxyBody};
use crate::telemetry::{ErrorKind, Metrics};

static LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
static REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
static RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

struct Bucket {
    limiter: DefaultKeyedRateLimiter<Arc<str>>,
    burst: u32,
}

impl Bucket {
    fn new(rps: u32, burst: u32) -> Bucket {
        let rps = NonZeroU32::new(rps).unwrap_or(NonZeroU32::MIN);
        let burst_nz = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        Bucket {
            limiter: DefaultKeyedRateLimiter::dashmap(Quota::per_second(rps).allow_burst(burst_nz)),
            burst,
        }
    }
}

pub struct RateLimits {
    per_caller: Option<Bucket>,
    routes: Vec<(String, Bucket)>,
    clock: DefaultClock,
    metrics: Arc<Metrics>,
    /// Rejections since the last warn line, and that line's second.
    unlogged: AtomicU64,
    last_log: AtomicU64,
}

/// Why a request was refused, and what to tell the caller.
pub struct Limited {
    pub limit: u32,
    pub retry_after: Duration,
    pub scope: &'static str,
}

impl RateLimits {
    pub fn new(config: &RateLimitConfig, metrics: Arc<Metrics>) -> Arc<RateLimits> {
        let bucket = |b: &BucketConfig| Bucket::new(b.requests_per_second, b.burst);
        Arc::new(RateLimits {
            per_caller: config.per_caller.as_ref().map(bucket),
            routes: config
                .routes
                .iter()
                .map(|r| {
                    (
                        r.path_prefix.clone(),
                        Bucket::new(r.requests_per_second, r.burst),
                    )
                })
                .collect(),
            clock: DefaultClock::default(),
            metrics,
            unlogged: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
        })
    }

    /// Takes one token from the caller's bucket(s); the route bucket is
    /// the first whose prefix matches the path.
    pub fn check(&self, caller: &Arc<str>, path: &str) -> Result<(), Limited> {
        if let Some(b) = &self.per_caller {
            if let Err(not_until) = b.limiter.check_key(caller) {
                return Err(Limited {
                    limit: b.burst,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    scope: "caller",
                });
            }
        }
        if let Some((_, b)) = self
            .routes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            if let Err(not_until) = b.limiter.check_key(caller) {
                return Err(Limited {
                    limit: b.burst,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    scope: "route",
                });
            }
        }
        Ok(())
    }

    /// Forgets buckets that have refilled, every `every`.
    pub fn spawn_eviction(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(every) => {}
                }
                for b in this
                    .per_caller
                    .iter()
                    .chain(this.routes.iter().map(|(_, b)| b))
                {
                    b.limiter.retain_recent();
                    b.limiter.shrink_to_fit();
                }
            }
        });
    }

    pub fn bucket_count(&self) -> usize {
        self.per_caller
            .iter()
            .chain(self.routes.iter().map(|(_, b)| b))
            .map(|b| b.limiter.len())
            .sum()
    }

    fn log(&self, peer: &str, limited: &Limited) {
        self.metrics.rate_limited(limited.scope);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let n = self.unlogged.fetch_add(1, Ordering::Relaxed) + 1;
        let last = self.last_log.load(Ordering::Relaxed);
        if now > last
            && self
                .last_log
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            self.unlogged.store(0, Ordering::Relaxed);
            tracing::warn!(
                target: "usher::ratelimit",
                peer,
                scope = limited.scope,
                limit = limited.limit,
                refused_since_last_line = n,
                "request refused: rate limit"
            );
        }
    }
}

/// 429 with the headers that say what the limit is and when to retry.
pub fn too_many(limited: &Limited) -> Response<ProxyBody> {
    let secs = limited.retry_after.as_secs() + u64::from(limited.retry_after.subsec_nanos() > 0);
    let secs = secs.max(1);
    let mut resp = text(
        StatusCode::TOO_MANY_REQUESTS,
        "usher: rate limit exceeded; retry later\n",
    );
    let h = resp.headers_mut();
    h.insert(RETRY_AFTER, HeaderValue::from(secs));
    h.insert(LIMIT.clone(), HeaderValue::from(limited.limit));
    h.insert(REMAINING.clone(), HeaderValue::from_static("0"));
    h.insert(RESET.clone(), HeaderValue::from(secs));
    resp.extensions_mut().insert(ErrorKind("rate_limited"));
    resp
}

/// The rate-limit step of the inbound stack.
#[derive(Clone)]
pub struct RateLimit<S> {
    conn: Arc<InboundConn>,
    shared: Arc<RateLimits>,
    inner: S,
}

impl<S> RateLimit<S> {
    pub fn new(conn: Arc<InboundConn>, shared: Arc<RateLimits>, inner: S) -> Self {
        RateLimit {
            conn,
            shared,
            inner,
        }
    }
}

impl<S> tower::Service<Request<RequestBody>> for RateLimit<S>
where
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = Infallible>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<ProxyBody>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        match self.shared.check(&self.conn.peer_info.id, req.uri().path()) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(limited) => {
                self.shared.log(&self.conn.peer_info.id, &limited);
                Either::Left(ready(Ok(too_many(&limited))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
