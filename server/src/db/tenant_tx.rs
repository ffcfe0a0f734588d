//! [`TenantTx`]: the transaction every tenant service works in.
//!
//! It owns the database transaction and the tenant it was opened for. On PostgreSQL the tenant is
//! set transaction-locally for row-level security; on both backends its [`select`](TenantTx::select),
//! [`update_many`](TenantTx::update_many) and [`delete_many`](TenantTx::delete_many) already carry
//! `WHERE tenant_id = …`, so services never filter the tenant by hand. It is a sea-orm connection
//! itself: `select.all(&tx)` and `model.insert(&tx)` work as on a plain transaction.

use migration::TENANT_SETTING;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, DeleteMany, EntityTrait,
    ExecResult, QueryFilter, QueryResult, Select, Statement, UpdateMany,
};

use crate::error::AppResult;
use crate::ids::TenantId;

/// A tenant-owned entity: it has a `tenant_id` column that [`TenantTx`] scopes every query by.
pub trait TenantScoped: EntityTrait {
    fn tenant_column() -> Self::Column;
}

/// A transaction of one tenant. Dropping it uncommitted rolls back.
pub struct TenantTx {
    txn: DatabaseTransaction,
    tenant: TenantId,
}

impl std::fmt::Debug for TenantTx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTx")
            .field("tenant", &self.tenant)
            .finish_non_exhaustive()
    }
}

impl TenantTx {
    /// Binds an open transaction to `tenant` (sets it for row-level security on PostgreSQL).
    /// Used when the tenant is created inside the transaction itself (onboarding).
    pub async fn bind(txn: DatabaseTransaction, tenant: TenantId) -> AppResult<Self> {
        set_rls_tenant(&txn, tenant).await?;
        Ok(Self { txn, tenant })
    }

    /// The tenant this transaction works for.
    pub fn tenant(&self) -> TenantId {
        self.tenant
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    /// `SELECT … WHERE tenant_id = <this tenant>`. (On PostgreSQL, RLS enforces the same again.)
    pub fn select<E: TenantScoped>(&self) -> Select<E> {
        self.scope(E::find())
    }

    /// Narrows a select built elsewhere (a list filter, a page query) to this tenant.
    pub fn scope<E: TenantScoped>(&self, select: Select<E>) -> Select<E> {
        select.filter(E::tenant_column().eq(self.tenant.0))
    }

    /// `UPDATE … WHERE tenant_id = <this tenant>`; add `col_expr`/`set` and further filters.
    pub fn update_many<E: TenantScoped>(&self) -> UpdateMany<E> {
        E::update_many().filter(E::tenant_column().eq(self.tenant.0))
    }

    /// `DELETE … WHERE tenant_id = <this tenant>`; add further filters.
    pub fn delete_many<E: TenantScoped>(&self) -> DeleteMany<E> {
        E::delete_many().filter(E::tenant_column().eq(self.tenant.0))
    }
}

/// A transaction of a tenant or of the platform, for rows that belong to either (refresh tokens
/// carry a tenant or none). Tenant work inside it goes through [`TenantOrPlatformTx::tenant_tx`].
#[derive(Debug)]
pub enum TenantOrPlatformTx {
    Tenant(TenantTx),
    Platform(DatabaseTransaction),
}

impl TenantOrPlatformTx {
    /// The tenant transaction, when this is one.
    pub fn tenant_tx(&self) -> Option<&TenantTx> {
        match self {
            Self::Tenant(tx) => Some(tx),
            Self::Platform(_) => None,
        }
    }

    pub async fn commit(self) -> Result<(), DbErr> {
        match self {
            Self::Tenant(tx) => tx.commit().await,
            Self::Platform(txn) => txn.commit().await,
        }
    }

    fn inner(&self) -> &DatabaseTransaction {
        match self {
            Self::Tenant(tx) => &tx.txn,
            Self::Platform(txn) => txn,
        }
    }
}

/// Delegates [`ConnectionTrait`] to the wrapped `DatabaseTransaction` (`$inner`).
macro_rules! delegate_connection {
    ($ty:ty, |$this:ident| $inner:expr) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                let $this = self;
                $inner.get_database_backend()
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                let $this = self;
                $inner.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                let $this = self;
                $inner.execute_unprepared(sql).await
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                let $this = self;
                $inner.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                let $this = self;
                $inner.query_all_raw(stmt).await
            }

            fn support_returning(&self) -> bool {
                let $this = self;
                $inner.support_returning()
            }
        }
    };
}
delegate_connection!(TenantTx, |this| this.txn);
delegate_connection!(TenantOrPlatformTx, |this| this.inner());

/// Sets `app.tenant_id` transaction-locally (`true`) on PostgreSQL; a plain `SET` would leak into
/// the next request that borrows the pooled connection.
pub(super) async fn set_rls_tenant(txn: &DatabaseTransaction, tenant: TenantId) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config($1, $2, true)",
            [TENANT_SETTING.into(), tenant.to_string().into()],
        ))
        .await?;
    }
    Ok(())
}

macro_rules! tenant_scoped {
    ($($m:ident),*) => {$(
        impl TenantScoped for entity::$m::Entity {
            fn tenant_column() -> Self::Column {
                entity::$m::Column::TenantId
            }
        }
    )*};
}
tenant_scoped!(
    departments,
    staff_users,
    staff_roles,
    staff_memberships,
    audit_log,
    tenant_services,
    service_revisions,
    drafts,
    applications,
    application_tasks,
    application_events,
    messages,
    attachments,
    locations,
    booking_resources,
    appointment_offers,
    bookings,
    spent_challenges,
    payment_accounts,
    payments,
    payment_refunds,
    provider_events,
    break_glass_grants,
    fit_connect_handovers,
    fit_connect_submissions
);

#[cfg(test)]
mod tests {
    use chrono::Utc;
    use entity::departments;
    use migration::{Migrator, MigratorTrait};
    use sea_orm::sea_query::Expr;
    use sea_orm::{
        ActiveModelTrait, ConnectOptions, Database, DatabaseConnection, Set, TransactionTrait,
    };
    use uuid::Uuid;

    use super::*;

    async fn migrated_memory_db() -> DatabaseConnection {
        // One connection: every connection of `sqlite::memory:` is its own empty database.
        let mut opt = ConnectOptions::new("sqlite::memory:");
        opt.max_connections(1).min_connections(1);
        let db = Database::connect(opt).await.expect("in-memory sqlite");
        Migrator::up(&db, None).await.expect("migrations");
        db
    }

    async fn tenant_with_departments(db: &DatabaseConnection, slug: &str) -> TenantId {
        let id = Uuid::new_v4();
        let now = Utc::now();
        entity::tenants::ActiveModel {
            id: Set(id),
            slug: Set(slug.to_owned()),
            name: Set(slug.to_owned()),
            ags: Set("01234567".to_owned()),
            time_zone: Set("Europe/Berlin".to_owned()),
            branding: Set(serde_json::json!({})),
            settings: Set(serde_json::json!({})),
            status: Set("active".to_owned()),
            created_at: Set(now),
            updated_at: Set(now),
        }
        .insert(db)
        .await
        .expect("tenant");
        for key in ["a", "b"] {
            departments::ActiveModel {
                id: Set(Uuid::new_v4()),
                tenant_id: Set(id),
                key: Set(key.to_owned()),
                name: Set(format!("{slug} {key}")),
                email: Set(None),
                created_at: Set(now),
            }
            .insert(db)
            .await
            .expect("department");
        }
        TenantId(id)
    }

    async fn names_of(db: &DatabaseConnection, tenant: TenantId) -> Vec<String> {
        let mut names: Vec<String> = departments::Entity::find()
            .filter(departments::Column::TenantId.eq(tenant.0))
            .all(db)
            .await
            .expect("read back")
            .into_iter()
            .map(|d| d.name)
            .collect();
        names.sort();
        names
    }

    /// Each scoped statement of one tenant's transaction leaves the other tenant's rows alone
    /// (SQLite has no row-level security, so only the `tenant_id` filter protects them here).
    #[tokio::test]
    async fn scoped_statements_touch_only_the_transactions_tenant() {
        let db = migrated_memory_db().await;
        let mine = tenant_with_departments(&db, "mine").await;
        let other = tenant_with_departments(&db, "other").await;

        let tx = TenantTx::bind(db.begin().await.unwrap(), mine)
            .await
            .unwrap();
        assert_eq!(tx.tenant(), mine);
        let seen = tx.select::<departments::Entity>().all(&tx).await.unwrap();
        assert_eq!(seen.len(), 2);
        assert!(seen.iter().all(|d| d.tenant_id == mine.0));

        let renamed = tx
            .update_many::<departments::Entity>()
            .col_expr(departments::Column::Name, Expr::value("renamed"))
            .exec(&tx)
            .await
            .unwrap();
        assert_eq!(renamed.rows_affected, 2);

        let deleted = tx
            .delete_many::<departments::Entity>()
            .filter(departments::Column::Key.eq("a"))
            .exec(&tx)
            .await
            .unwrap();
        assert_eq!(deleted.rows_affected, 1);
        tx.commit().await.unwrap();

        assert_eq!(names_of(&db, mine).await, vec!["renamed"]);
        assert_eq!(names_of(&db, other).await, vec!["other a", "other b"]);
    }
}
