//! Whether the session behind an access token still stands, checked on every request: logout,
//! a revoked session family, a deactivated account and changed roles take effect on the next
//! request, not when the token expires.
//!
//! Each of our access tokens names its session (`sid`, the refresh-token family). A session
//! stands while its family has a refresh token that is not revoked and, for staff, while the
//! account is active; a staff member's roles are read with it, so the principal carries the
//! roles of now, not those signed into the token.
//!
//! The answer is cached per (subject, session) for [`TTL`], and the staff account's row read
//! with it per (tenant, subject) ([`SessionCache::account`]): `me` answers from it without a
//! second read, and whatever drops a subject's sessions drops its row too. Whatever changes it in this process
//! (logout, reuse detection, deactivation, role and membership changes, onboarding) drops the
//! entries it affects after its commit, so on one replica the change holds on the very next
//! request. On PostgreSQL the change is also announced on [`CHANNEL`] (`pg_notify`), which
//! every replica's listener (`applications::live::listen`) turns into the same drop: other
//! replicas hold it as soon as the notification arrives, and at most [`TTL`] later if it is lost
//! (a listener that reconnects drops everything, as it may have missed some). An answer read
//! while an invalidation ran is not stored (it may predate the change).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use entity::{platform_admins, refresh_tokens, staff_users};

use crate::context::Role;
use crate::db::{begin_platform, begin_tenant};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;

/// The PostgreSQL channel on which replicas announce what to forget.
pub const CHANNEL: &str = "amtsplatz_sessions";

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

/// A staff account's row as the session check read it.
type Account = Arc<staff_users::Model>;

#[derive(Debug, Default)]
pub struct SessionCache {
    entries: Mutex<HashMap<Key, (Instant, Standing)>>,
    /// Staff rows read by the session check, keyed with a nil session (see [`Self::account`]).
    accounts: Mutex<HashMap<Key, (Instant, Account)>>,
    /// Bumped by every invalidation.
    epoch: AtomicU64,
    /// Where invalidations go to reach the other replicas (PostgreSQL; see [`announce`]).
    announce: OnceLock<tokio::sync::mpsc::UnboundedSender<String>>,
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
        let account = txn
            .select::<staff_users::Entity>()
            .filter(staff_users::Column::Id.eq(user))
            .filter(staff_users::Column::Status.eq("active"))
            .one(&txn)
            .await?;
        let standing = if account.is_some()
            && session_alive(&txn, Some(tenant), "staff", user, session).await?
        {
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
        if let (Some(_), Some(row)) = (&standing, account) {
            self.store_account(tenant, epoch, row)?;
        }
        standing.ok_or(AppError::Unauthenticated)
    }

    /// Staff user `user`'s row as the session check of this request (or one within [`TTL`])
    /// read it, if it is still trusted; `None` means: read it from the database.
    pub fn account(&self, tenant: TenantId, user: Uuid) -> Option<Account> {
        let accounts = self.accounts.lock().ok()?;
        accounts
            .get(&account_key(tenant, user))
            .filter(|(at, _)| at.elapsed() < TTL)
            .map(|(_, row)| row.clone())
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

    /// Forgets what is known about one session (logout, a revoked family), on every replica.
    pub fn forget_session(&self, session: Uuid) {
        self.forget(|k| k.session == session);
        self.tell_others(format!("session:{session}"));
    }

    /// Forgets every session of one subject (deactivation, role or membership changes), on
    /// every replica.
    pub fn forget_subject(&self, subject: Uuid) {
        self.forget(|k| k.subject == subject);
        self.tell_others(format!("subject:{subject}"));
    }

    /// Forgets every session of one tenant (onboarding applied, a department deleted), on every
    /// replica.
    pub fn forget_tenant(&self, tenant: TenantId) {
        self.forget(|k| k.tenant == Some(tenant.0));
        self.tell_others(format!("tenant:{}", tenant.0));
    }

    /// Forgets everything (the listener reconnected and may have missed announcements).
    pub fn forget_all(&self) {
        self.forget(|_| true);
    }

    /// Applies another replica's announcement (a payload on [`CHANNEL`]).
    pub fn apply(&self, payload: &str) {
        let parsed = payload
            .split_once(':')
            .and_then(|(what, id)| Some((what, Uuid::parse_str(id).ok()?)));
        match parsed {
            Some(("session", id)) => self.forget(|k| k.session == id),
            Some(("subject", id)) => self.forget(|k| k.subject == id),
            Some(("tenant", id)) => self.forget(|k| k.tenant == Some(id)),
            _ => {
                tracing::warn!(payload, "unreadable session announcement; forgetting all");
                self.forget_all();
            }
        }
    }

    /// Sends this cache's invalidations to `tx` from now on (see [`announce`]).
    pub fn announce_to(&self, tx: tokio::sync::mpsc::UnboundedSender<String>) {
        let _ = self.announce.set(tx);
    }

    fn tell_others(&self, payload: String) {
        if let Some(tx) = self.announce.get() {
            let _ = tx.send(payload);
        }
    }

    fn forget(&self, matches: impl Fn(&Key) -> bool) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        match self.entries.lock() {
            Ok(mut entries) => entries.retain(|k, _| !matches(k)),
            // A poisoned map cannot be trusted: start over.
            Err(poisoned) => poisoned.into_inner().clear(),
        }
        match self.accounts.lock() {
            Ok(mut accounts) => accounts.retain(|k, _| !matches(k)),
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

    /// Stores a staff row read from the database, unless an invalidation ran since `epoch`.
    fn store_account(
        &self,
        tenant: TenantId,
        epoch: u64,
        row: staff_users::Model,
    ) -> AppResult<()> {
        let mut accounts = self.accounts.lock().map_err(|_| poisoned())?;
        if self.epoch.load(Ordering::Acquire) != epoch {
            return Ok(());
        }
        if accounts.len() >= MAX_ENTRIES {
            accounts.clear();
        }
        accounts.insert(account_key(tenant, row.id), (Instant::now(), Arc::new(row)));
        Ok(())
    }
}

/// Accounts are kept per (tenant, subject): the nil session matches no `forget_session`.
fn account_key(tenant: TenantId, user: Uuid) -> Key {
    Key {
        tenant: Some(tenant.0),
        subject: user,
        session: Uuid::nil(),
    }
}

/// Announces each invalidation `rx` receives on [`CHANNEL`] until the senders are gone (the
/// caller calls it after its commit, so the change is visible to whoever acts on the news).
pub async fn announce(
    db: DatabaseConnection,
    mut rx: tokio::sync::mpsc::UnboundedReceiver<String>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        let payload = tokio::select! {
            _ = stop.changed() => return,
            p = rx.recv() => match p {
                Some(p) => p,
                None => return,
            },
        };
        let sent = db
            .execute_raw(sea_orm::Statement::from_sql_and_values(
                sea_orm::DbBackend::Postgres,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), payload.into()],
            ))
            .await;
        if let Err(e) = sent {
            tracing::warn!(error = %e, "announcing a session change failed; other replicas see it within the cache TTL");
        }
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
