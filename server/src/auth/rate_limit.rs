//! Rate limits (GCRA, via `governor`): logins per client IP and per account; citizens' writes
//! (drafts, submissions) per client IP.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::{AppError, AppResult};
use crate::settings::AuthSettings;

pub struct LoginLimiter {
    per_ip: IpLimiter,
    per_account: DefaultKeyedRateLimiter<String>,
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
            per_account: RateLimiter::keyed(quota(auth.login_per_account_per_minute)),
        }
    }

    /// Counts one attempt; `RATE_LIMITED` with the wait time when either limit is used up.
    pub fn check(&self, ip: Option<IpAddr>, account: &str) -> AppResult<()> {
        self.per_ip.check(ip)?;
        if self.per_account.len() > SHRINK_ABOVE {
            self.per_account.retain_recent();
        }
        self.per_account
            .check_key(&account.to_owned())
            .map_err(|n| AppError::RateLimited {
                retry_after_secs: wait_secs(&n),
            })
    }
}

/// Limits requests per client IP: logins, and citizens' writes (drafts, submissions).
pub struct IpLimiter {
    per_ip: DefaultKeyedRateLimiter<IpAddr>,
}

impl std::fmt::Debug for IpLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IpLimiter")
    }
}

impl IpLimiter {
    pub fn per_minute(n: u32) -> Self {
        Self {
            per_ip: RateLimiter::keyed(quota(n)),
        }
    }

    /// Counts one request; `RATE_LIMITED` with the wait time when the IP used up its quota.
    pub fn check(&self, ip: Option<IpAddr>) -> AppResult<()> {
        let Some(ip) = ip else { return Ok(()) };
        if self.per_ip.len() > SHRINK_ABOVE {
            self.per_ip.retain_recent();
        }
        self.per_ip
            .check_key(&ip)
            .map_err(|n| AppError::RateLimited {
                retry_after_secs: wait_secs(&n),
            })
    }
}
