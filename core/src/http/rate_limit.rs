//! The query API's rate limit per key: a key over it gets a 429 with `Retry-After`; other keys
//! are unaffected. Held in memory, per process. Plausible allows 600 requests per hour per key;
//! Tally's default is 3,600 (a dashboard load is about a dozen queries), all of which may come
//! at once, refilling one a second.

use super::error::ApiError;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::num::NonZeroU32;

/// Requests per hour per key, by default.
pub const DEFAULT_QUERY_RATE_PER_HOUR: u32 = 3_600;

/// A rate limit per API key id.
pub struct KeyRateLimit {
    limiter: DefaultKeyedRateLimiter<String>,
    clock: DefaultClock,
}

impl KeyRateLimit {
    /// `per_hour` requests per hour per key (which may come at once); `None` for 0, no limit.
    pub fn per_hour(per_hour: u32) -> Option<KeyRateLimit> {
        let quota = Quota::per_hour(NonZeroU32::new(per_hour)?);
        Some(KeyRateLimit { limiter: RateLimiter::keyed(quota), clock: DefaultClock::default() })
    }

    /// Takes one request of key `id`, or says when it may come again.
    pub fn check(&self, id: &str) -> Result<(), ApiError> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(&id.to_owned()).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            ApiError::RateLimited { retry_after_s: wait.as_secs() + u64::from(wait.subsec_nanos() > 0) }
        })
    }
}
