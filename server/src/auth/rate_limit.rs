//! Rate limits: logins per client IP and per account; citizens' writes (drafts, submissions)
//! and bookings per client IP; bookings per contact.
//!
//! Counted in the database (table `rate_limits`), so every replica on one database shares each
//! budget: failures spread over replicas lock an account on all of them. A key's window opens
//! at its first hit and lasts the limit's period; the hit that opens a window after the old one
//! ran out starts the count again at one. One upsert per hit, the same statement on SQLite and
//! PostgreSQL, atomic on both (PostgreSQL locks the row for `ON CONFLICT DO UPDATE`; SQLite
//! writes one at a time), so concurrent hits on any replica are each counted once.
//!
//! The database rather than Redis: it is already shared by every replica and is a dependency
//! the embedded default has anyway, so one code path serves both and no second service has to
//! be kept alive (or its failure handled) for the limits to hold.

use std::net::IpAddr;

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};
use sha2::{Digest as _, Sha256};

use crate::error::{AppError, AppResult};
use crate::settings::AuthSettings;

/// One limit: at most `max` hits per key in a window of `window_secs`.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Keeps the limits' keys apart (`login-ip`, `bookings-contact`, ...).
    scope: &'static str,
    max: u32,
    window_secs: i64,
}

/// The longest window any limit uses; rows older than this are dropped by housekeeping.
pub const LONGEST_WINDOW_SECS: i64 = 3600;

impl Limit {
    /// `n` per minute, the first `n` at once.
    pub fn per_minute(scope: &'static str, n: u32) -> Self {
        Self {
            scope,
            max: n.max(1),
            window_secs: 60,
        }
    }

    /// `n` per hour, the first `n` at once.
    pub fn per_hour(scope: &'static str, n: u32) -> Self {
        Self {
            scope,
            max: n.max(1),
            window_secs: LONGEST_WINDOW_SECS,
        }
    }

    /// Counts one hit of `key`; `RATE_LIMITED` with the wait time when its budget is used up.
    pub async fn hit(&self, db: &DatabaseConnection, key: &str) -> AppResult<()> {
        let now = chrono::Utc::now().timestamp_millis();
        let window_ms = self.window_secs * 1000;
        let digest = hex(&Sha256::new()
            .chain_update(self.scope.as_bytes())
            .chain_update([0u8])
            .chain_update(key.as_bytes())
            .finalize());
        let backend = db.get_database_backend();
        let p = match backend {
            DbBackend::Postgres => ["$1", "$2", "$3"],
            _ => ["?", "?", "?"],
        };
        // A window that ended at or before `cutoff` starts over at this hit.
        let sql = format!(
            "INSERT INTO rate_limits (key, window_start, hits) VALUES ({k}, {now}, 1) \
             ON CONFLICT (key) DO UPDATE SET \
               hits = CASE WHEN rate_limits.window_start <= {cutoff} THEN 1 \
                           ELSE rate_limits.hits + 1 END, \
               window_start = CASE WHEN rate_limits.window_start <= {cutoff} \
                                   THEN excluded.window_start ELSE rate_limits.window_start END \
             RETURNING hits, window_start",
            k = p[0],
            now = p[1],
            cutoff = p[2],
        );
        let row = db
            .query_one_raw(Statement::from_sql_and_values(
                backend,
                sql,
                [digest.into(), now.into(), (now - window_ms).into()],
            ))
            .await?
            .ok_or_else(|| {
                AppError::internal("rate limit", anyhow::anyhow!("the upsert returned no row"))
            })?;
        let hits: i32 = row.try_get("", "hits")?;
        let window_start: i64 = row.try_get("", "window_start")?;
        if u32::try_from(hits).unwrap_or(u32::MAX) <= self.max {
            return Ok(());
        }
        let wait_ms = u64::try_from(window_start + window_ms - now).unwrap_or(0);
        Err(AppError::RateLimited {
            retry_after_secs: wait_ms.div_ceil(1000).max(1),
        })
    }
}

/// Drops counters whose window ended (housekeeping); returns how many.
pub async fn clear_expired(db: &DatabaseConnection) -> AppResult<u64> {
    let cutoff = chrono::Utc::now().timestamp_millis() - LONGEST_WINDOW_SECS * 1000;
    let backend = db.get_database_backend();
    let p = if backend == DbBackend::Postgres {
        "$1"
    } else {
        "?"
    };
    Ok(db
        .execute_raw(Statement::from_sql_and_values(
            backend,
            format!("DELETE FROM rate_limits WHERE window_start <= {p}"),
            [cutoff.into()],
        ))
        .await?
        .rows_affected())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Login attempts per client IP and per account.
#[derive(Debug)]
pub struct LoginLimiter {
    per_ip: IpLimiter,
    per_account: Limit,
}

impl LoginLimiter {
    pub fn new(auth: &AuthSettings) -> Self {
        Self {
            per_ip: IpLimiter(Limit::per_minute("login-ip", auth.login_per_ip_per_minute)),
            per_account: Limit::per_minute("login-account", auth.login_per_account_per_minute),
        }
    }

    /// Counts one attempt; `RATE_LIMITED` with the wait time when either limit is used up.
    pub async fn check(
        &self,
        db: &DatabaseConnection,
        ip: Option<IpAddr>,
        account: &str,
    ) -> AppResult<()> {
        self.per_ip.check(db, ip).await?;
        self.per_account.hit(db, account).await
    }
}

/// Limits requests per client IP: logins, citizens' writes (drafts, submissions), bookings.
#[derive(Debug)]
pub struct IpLimiter(Limit);

impl IpLimiter {
    pub fn per_minute(scope: &'static str, n: u32) -> Self {
        Self(Limit::per_minute(scope, n))
    }

    /// Counts one request; `RATE_LIMITED` with the wait time when the IP used up its quota.
    /// Requests without a known IP (in-process callers) pass.
    pub async fn check(&self, db: &DatabaseConnection, ip: Option<IpAddr>) -> AppResult<()> {
        match ip {
            Some(ip) => self.0.hit(db, &ip.to_string()).await,
            None => Ok(()),
        }
    }
}
