//! Per-caller rate limits (`rate_limit:`): token buckets keyed by the
//! caller's SPIFFE ID, and optionally by caller and path prefix
//! (governor's GCRA, lock-sharded keyed state, no global lock).
//!
//! Over the limit: a [`RateLimited`] error, which `respond` answers with
//! 429, `Retry-After` and the IETF `RateLimit-Limit`, `RateLimit-Remaining`,
//! `RateLimit-Reset` headers, counts in `usher_rate_limited_total` and logs
//! (at most one warn line a second, with the count, so a flood does not
//! flood the log: the throttle is here, the line is written there). Buckets of callers
//! that have been quiet long enough to refill are dropped every
//! `evict_after`, so memory follows the active callers only.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::{ready, Either, Ready};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use http::{Request, Response};
use tokio_util::sync::CancellationToken;

use crate::body::RequestBody;
use crate::config::{BucketConfig, RateLimitConfig};
use crate::respond::{ProxyBody, ProxyError, RateLimited};
use crate::target::TelemetryPeer;

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

pub(crate) struct RateLimits {
    per_caller: Option<Bucket>,
    routes: Vec<(String, Bucket)>,
    clock: DefaultClock,
    /// Rejections since the last warn line, and that line's second.
    unlogged: AtomicU64,
    last_log: AtomicU64,
}

impl RateLimits {
    pub(crate) fn new(config: &RateLimitConfig) -> Arc<RateLimits> {
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
            unlogged: AtomicU64::new(0),
            last_log: AtomicU64::new(0),
        })
    }

    /// Takes one token from the caller's bucket(s); the route bucket is
    /// the first whose prefix matches the path.
    pub(crate) fn check(&self, caller: &Arc<str>, path: &str) -> Result<(), RateLimited> {
        if let Some(b) = &self.per_caller {
            if let Err(not_until) = b.limiter.check_key(caller) {
                return Err(RateLimited {
                    limit: b.burst,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    scope: "caller",
                    log_line: None,
                });
            }
        }
        if let Some((_, b)) = self
            .routes
            .iter()
            .find(|(p, _)| path.starts_with(p.as_str()))
        {
            if let Err(not_until) = b.limiter.check_key(caller) {
                return Err(RateLimited {
                    limit: b.burst,
                    retry_after: not_until.wait_time_from(self.clock.now()),
                    scope: "route",
                    log_line: None,
                });
            }
        }
        Ok(())
    }

    /// Forgets buckets that have refilled, every `every`.
    pub(crate) fn spawn_eviction(self: &Arc<Self>, every: Duration, shutdown: CancellationToken) {
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

    #[cfg(test)]
    pub(crate) fn bucket_count(&self) -> usize {
        self.per_caller
            .iter()
            .chain(self.routes.iter().map(|(_, b)| b))
            .map(|b| b.limiter.len())
            .sum()
    }

    /// Counts a refusal; when a warn line is due (at most one a second),
    /// returns how many were refused since the last one.
    fn throttle_log(&self) -> Option<u64> {
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
            return Some(n);
        }
        None
    }
}

/// The rate-limit step of the inbound stack, for the connection `T`
/// (buckets are keyed by the caller's ID).
pub(crate) struct RateLimitLayer<T> {
    target: Arc<T>,
    limits: Arc<RateLimits>,
}

impl<T> RateLimitLayer<T> {
    pub(crate) fn new(target: Arc<T>, limits: Arc<RateLimits>) -> Self {
        RateLimitLayer { target, limits }
    }
}

impl<T, S> tower::Layer<S> for RateLimitLayer<T> {
    type Service = RateLimit<T, S>;

    fn layer(&self, inner: S) -> RateLimit<T, S> {
        RateLimit {
            target: self.target.clone(),
            limits: self.limits.clone(),
            inner,
        }
    }
}

pub(crate) struct RateLimit<T, S> {
    target: Arc<T>,
    limits: Arc<RateLimits>,
    inner: S,
}

impl<T, S: Clone> Clone for RateLimit<T, S> {
    fn clone(&self) -> Self {
        RateLimit {
            target: self.target.clone(),
            limits: self.limits.clone(),
            inner: self.inner.clone(),
        }
    }
}

impl<T, S> tower::Service<Request<RequestBody>> for RateLimit<T, S>
where
    T: TelemetryPeer,
    S: tower::Service<Request<RequestBody>, Response = Response<ProxyBody>, Error = ProxyError>,
{
    type Response = Response<ProxyBody>;
    type Error = ProxyError;
    type Future = Either<Ready<Result<Response<ProxyBody>, ProxyError>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ProxyError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<RequestBody>) -> Self::Future {
        let peer = self.target.telemetry_peer();
        // A caller without an identity (plain text, permissive mode) is
        // known by its address, so that one cannot drain the others' bucket.
        let by_address: Arc<str>;
        let caller = if peer.id.is_empty() {
            by_address = Arc::from(peer.addr.map(|a| a.ip().to_string()).unwrap_or_default());
            &by_address
        } else {
            &peer.id
        };
        match self.limits.check(caller, req.uri().path()) {
            Ok(()) => Either::Right(self.inner.call(req)),
            Err(mut limited) => {
                limited.log_line = self.limits.throttle_log();
                Either::Left(ready(Err(ProxyError::RateLimited(limited))))
            }
        }
    }
}

#[cfg(test)]
mod tests;
