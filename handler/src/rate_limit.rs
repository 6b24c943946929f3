//! Per-webhook token buckets.
//!
//! Hand-written rather than `governor`: a keyed governor limiter shares one quota
//! across its keys, while every Webhook carries its own rate and burst, which may
//! change at any registry update. A bucket is a few numbers; one mutex around the map
//! costs well under a microsecond per request.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use hookline_core::registry::RateLimit;

#[derive(Debug)]
struct Bucket {
    limit: RateLimit,
    tokens: f64,
    refilled_at: Instant,
}

impl Bucket {
    fn full(limit: RateLimit, now: Instant) -> Self {
        Self {
            limit,
            tokens: Self::burst(limit),
            refilled_at: now,
        }
    }

    // The operator keeps both at least 1; a zero from a bad record must not divide by zero.
    fn rate(limit: RateLimit) -> f64 {
        f64::from(limit.requests_per_second.max(1))
    }

    fn burst(limit: RateLimit) -> f64 {
        f64::from(limit.burst.max(1))
    }

    fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let rate = Self::rate(self.limit);
        let elapsed = now.saturating_duration_since(self.refilled_at);
        self.tokens = (self.tokens + elapsed.as_secs_f64() * rate).min(Self::burst(self.limit));
        self.refilled_at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / rate))
        }
    }
}

/// Token buckets keyed by webhook id. A bucket starts full (`burst` tokens) and
/// refills at `requests_per_second`; a changed limit starts a fresh bucket.
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<String, Bucket>,
}

impl RateLimiter {
    /// Takes one token from `webhook_id`'s bucket, or says how long until one is there.
    pub fn try_acquire(
        &mut self,
        webhook_id: &str,
        limit: RateLimit,
        now: Instant,
    ) -> Result<(), Duration> {
        match self.buckets.get_mut(webhook_id) {
            Some(bucket) if bucket.limit == limit => bucket.take(now),
            _ => {
                let mut bucket = Bucket::full(limit, now);
                let taken = bucket.take(now);
                self.buckets.insert(webhook_id.to_owned(), bucket);
                taken
            }
        }
    }

    /// Drops a deleted webhook's bucket.
    pub fn forget(&mut self, webhook_id: &str) {
        self.buckets.remove(webhook_id);
    }
}

/// A [`RateLimiter`] shared between requests.
#[derive(Debug, Default)]
pub struct SharedRateLimiter(Mutex<RateLimiter>);

impl SharedRateLimiter {
    pub fn try_acquire(&self, webhook_id: &str, limit: RateLimit) -> Result<(), Duration> {
        self.lock().try_acquire(webhook_id, limit, Instant::now())
    }

    pub fn forget(&self, webhook_id: &str) {
        self.lock().forget(webhook_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        // Every update leaves a bucket consistent, so a panicked holder harms nothing.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Whole seconds for `Retry-After`, rounded up and at least one.
pub fn retry_after_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: RateLimit = RateLimit {
        requests_per_second: 10,
        burst: 3,
    };

    #[test]
    fn burst_then_refill_at_the_rate() {
        let mut limiter = RateLimiter::default();
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire("a", LIMIT, start), Ok(()));
        }
        let wait = limiter.try_acquire("a", LIMIT, start).unwrap_err();
        assert_eq!(wait, Duration::from_millis(100));
        // Half a token later: still refused, with the rest of the wait.
        let wait = limiter
            .try_acquire("a", LIMIT, start + Duration::from_millis(50))
            .unwrap_err();
        assert!(wait > Duration::from_millis(49) && wait < Duration::from_millis(51));
        assert_eq!(
            limiter.try_acquire("a", LIMIT, start + Duration::from_millis(100)),
            Ok(())
        );
        // A long pause refills to the burst, not beyond.
        let later = start + Duration::from_secs(60);
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire("a", LIMIT, later), Ok(()));
        }
        assert!(limiter.try_acquire("a", LIMIT, later).is_err());
    }

    #[test]
    fn webhooks_have_separate_buckets_and_a_new_limit_a_fresh_one() {
        let mut limiter = RateLimiter::default();
        let now = Instant::now();
        for _ in 0..3 {
            limiter.try_acquire("a", LIMIT, now).unwrap();
        }
        assert!(limiter.try_acquire("a", LIMIT, now).is_err());
        assert_eq!(limiter.try_acquire("b", LIMIT, now), Ok(()));
        let raised = RateLimit {
            requests_per_second: 10,
            burst: 5,
        };
        assert_eq!(limiter.try_acquire("a", raised, now), Ok(()));
        limiter.forget("b");
        for _ in 0..3 {
            assert_eq!(limiter.try_acquire("b", LIMIT, now), Ok(()));
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(100)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1_001)), 2);
    }
}
