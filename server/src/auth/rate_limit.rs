//! Rate limits (GCRA, via `governor`): logins per client IP and per account; citizens' writes
//! (drafts, submissions) and bookings per client IP; bookings per contact.

use std::hash::Hash;
use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{AppError, AppResult};
use crate::settings::AuthSettings;

pub struct LoginLimiter {
    per_ip: IpLimiter,
    per_account: KeyLimiter<String>,
}

impl std::fmt::Debug for LoginLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginLimiter")
    }
}

fn quota(per_minute: u32) -> Quota {
    Quota::per_minute(NonZeroU32::new(per_minute).unwrap_or(NonZeroU32::MIN))
}

/// Seconds until the next attempt may pass. The clock is read only here, on refusal: making one
/// calibrates a TSC clock, too slow for every request.
fn wait_secs(n: &governor::NotUntil<<DefaultClock as Clock>::Instant>) -> u64 {
    n.wait_time_from(DefaultClock::default().now())
        .as_secs()
        .max(1)
}

/// Keys beyond which stale entries are dropped, so the maps stay bounded.
const SHRINK_ABOVE: usize = 10_000;

impl LoginLimiter {
    pub fn new(auth: &AuthSettings) -> Self {
        Self {
            per_ip: IpLimiter::per_minute(auth.login_per_ip_per_minute),
            per_account: KeyLimiter::new(quota(auth.login_per_account_per_minute)),
        }
    }

    /// Counts one attempt; `RATE_LIMITED` with the wait time when either limit is used up.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> AppResult<()> {
        self.per_ip.check(ip)?;
        self.per_account.check(&account.to_owned())
    }
}

/// Limits requests per key (an IP, an account, a contact address), GCRA with a bounded map.
pub struct KeyLimiter<K: Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
}

impl<K: Hash + Eq + Clone> std::fmt::Debug for KeyLimiter<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyLimiter")
    }
}

impl<K: Hash + Eq + Clone> KeyLimiter<K> {
    pub fn new(quota: Quota) -> Self {
        Self {
            limiter: RateLimiter::keyed(quota),
        }
    }

    /// `n` per hour, the first `n` at once.
    pub fn per_hour(n: u32) -> Self {
        let n = NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        Self::new(Quota::per_hour(n))
    }

    /// Counts one request; `RATE_LIMITED` with the wait time when `key` used up its quota.
    pub fn check(&self, key: &K) -> AppResult<()> {
        if self.limiter.len() > SHRINK_ABOVE {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(key)
            .map_err(|n| AppError::RateLimited {
                retry_after_secs: wait_secs(&n),
            })
    }
}

/// Limits requests per client IP: logins, citizens' writes (drafts, submissions), bookings.
#[derive(Debug)]
pub struct IpLimiter(KeyLimiter<IpAddr>);

impl IpLimiter {
    pub fn per_minute(n: u32) -> Self {
        Self(KeyLimiter::new(quota(n)))
    }

    /// Counts one request; `RATE_LIMITED` with the wait time when the IP used up its quota.
    /// Requests without a known IP (in-process callers) pass.
    pub fn check(&self, ip: Option<IpAddr>) -> AppResult<()> {
        ip.map_or(Ok(()), |ip| self.0.check(&ip))
    }
}
