//! Whether the session behind an access token still stands, checked on every request: logout,
//! a revoked session family, a deactivated account and changed roles take effect on the next
//! request, not when the token expires.
//!
//! Each of our access tokens names its session (`sid`, the refresh-token family). A session
//! stands while its family has a refresh token that is not revoked and, for staff, while the
//! account is active; a staff member's roles are read with it, so the principal carries the
//! roles of now, not those signed into the token.
//!
//! The answer is cached per (subject, session) for [`TTL`]. Whatever changes it in this process
//! (logout, reuse detection, deactivation, role and membership changes, onboarding) drops the
//! entries it affects after its commit, so on one replica the change holds on the very next
//! request. Other replicas see it when their entry expires, at most [`TTL`] later: a short TTL
//! instead of a cross-replica invalidation channel, which would be one more thing to keep alive.
//! An answer read while an invalidation ran is not stored (it may predate the change).

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use entity::{platform_admins, refresh_tokens, staff_users};

use crate::context::Role;
use crate::db::{begin_platform, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;

/// How long an answer is trusted without asking the database.
pub const TTL: Duration = Duration::from_secs(5);
/// Bound on entries; past it the cache starts over.
const MAX_ENTRIES: usize = 100_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    tenant: Option<Uuid>,
    subject: Uuid,
    session: Uuid,
}

/// `None`: the session no longer stands. `Some(roles)`: it does, with these roles.
type Standing = Option<Vec<Role>>;

#[derive(Debug, Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Key, (Instant, Standing)>>,
    /// Bumped by every invalidation.
    epoch: AtomicU64,
}

fn poisoned() -> AppError {
    AppError::internal("session cache", anyhow::anyhow!("lock poisoned"))
}

impl SessionCache {
    /// The current roles of staff user `user` of `tenant` in session `session`;
    /// `UNAUTHENTICATED` when the session or the account has ended.
    pub async fn staff(
        &self,
        db: &DatabaseConnection,
        tenant: TenantId,
        user: Uuid,
        session: Uuid,
    ) -> AppResult<Vec<Role>> {
        let key = Key {
            tenant: Some(tenant.0),
            subject: user,
            session,
        };
        if let Some(standing) = self.cached(key)? {
            return standing.ok_or(AppError::Unauthenticated);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let txn = begin_tenant(db, tenant).await?;
        let active = txn
            .select::<staff_users::Entity>()
            .filter(staff_users::Column::Id.eq(user))
            .filter(staff_users::Column::Status.eq("active"))
            .one(&txn)
            .await?
            .is_some();
        let standing =
            if active && session_alive(&txn, Some(tenant), "staff", user, session).await? {
                Some(
                    crate::tenancy::service::roles_of(&txn, &[user])
                        .await?
                        .remove(&user)
                        .unwrap_or_default(),
                )
            } else {
                None
            };
        txn.commit().await?;
        self.store(key, epoch, standing.clone())?;
        standing.ok_or(AppError::Unauthenticated)
    }

    /// Checks that platform administrator `admin` still exists and session `session` stands.
    pub async fn platform(
        &self,
        db: &DatabaseConnection,
        admin: Uuid,
        session: Uuid,
    ) -> AppResult<()> {
        let key = Key {
            tenant: None,
            subject: admin,
            session,
        };
        if let Some(standing) = self.cached(key)? {
            return standing.map(|_| ()).ok_or(AppError::Unauthenticated);
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let txn = begin_platform(db).await?;
        let exists = platform_admins::Entity::find_by_id(admin)
            .one(&txn)
            .await?
            .is_some();
        let standing = (exists && session_alive(&txn, None, "platform", admin, session).await?)
            .then(|| vec![Role::PlatformAdmin]);
        txn.commit().await?;
        self.store(key, epoch, standing.clone())?;
        standing.map(|_| ()).ok_or(AppError::Unauthenticated)
    }

    /// Forgets what is known about one session (logout, a revoked family).
    pub fn forget_session(&self, session: Uuid) {
        self.forget(|k| k.session == session);
    }

    /// Forgets every session of one subject (deactivation, role or membership changes).
    pub fn forget_subject(&self, subject: Uuid) {
        self.forget(|k| k.subject == subject);
    }

    /// Forgets every session of one tenant (onboarding applied, a department deleted).
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.forget(|k| k.tenant == Some(tenant.0));
    }

    fn forget(&self, matches: impl Fn(&Key) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match self.entries.lock() {
            Ok(mut entries) => entries.retain(|k, _| !matches(k)),
            // A poisoned map cannot be trusted: start over.
            Err(poisoned) => poisoned.into_inner().clear(),
        }
    }

    fn cached(&self, key: Key) -> AppResult<Option<Standing>> {
        let entries = self.entries.lock().map_err(|_| poisoned())?;
        Ok(entries
            .get(&key)
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, standing)| standing.clone()))
    }

    /// Stores an answer read from the database, unless an invalidation ran since `epoch`.
    fn store(&self, key: Key, epoch: u64, standing: Standing) -> AppResult<()> {
        let mut entries = self.entries.lock().map_err(|_| poisoned())?;
        // Checked under the lock: `forget` bumps the epoch before it takes the lock.
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Ok(());
        }
        if entries.len() >= MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key, (Instant::now(), standing));
        Ok(())
    }
}

/// A session stands while its family holds a refresh token that is not revoked (logout, reuse
/// detection and deactivation revoke them all).
async fn session_alive<C: ConnectionTrait>(
    conn: &C,
    tenant: Option<TenantId>,
    kind: &str,
    subject: Uuid,
    session: Uuid,
) -> AppResult<bool> {
    let q = refresh_tokens::Entity::find()
        .filter(refresh_tokens::Column::FamilyId.eq(session))
        .filter(refresh_tokens::Column::SubjectKind.eq(kind))
        .filter(refresh_tokens::Column::SubjectId.eq(subject))
        .filter(refresh_tokens::Column::RevokedAt.is_null())
        .filter(super::revocation::owned_by(tenant));
    Ok(q.one(conn).await?.is_some())
}
