//! Database connections and the tenant transaction.
//!
//! Two pools on PostgreSQL: the *owner* runs migrations; requests use the *app* pool, which acts as
//! the non-owner role `amtsplatz_app` so row-level security binds it. Every tenant query runs in a
//! [`TenantTx`] opened by [`begin_tenant`] (or [`begin_tenant_write`]): it sets `app.tenant_id`
//! transaction-locally, and its `select`/`update_many`/`delete_many` carry `WHERE tenant_id = …`,
//! so services receive the transaction and never pass or filter the tenant by hand. Platform rows
//! use a plain transaction ([`begin_platform`]); rows shared between the platform and a viewing
//! tenant (marketplace templates) use [`begin_viewer`].

pub mod search;
mod tenant_tx;

use std::time::Duration;

use anyhow::Context as _;
use migration::{APP_ROLE, Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, Select, TransactionTrait,
};

use secrecy::ExposeSecret;
use tenant_tx::set_rls_tenant;
pub use tenant_tx::{TenantOrPlatformTx, TenantScoped, TenantTx};

use crate::error::AppResult;
use crate::ids::TenantId;
use crate::settings::Settings;

fn options(url: &str, settings: &Settings) -> ConnectOptions {
    let mut opt = ConnectOptions::new(url.to_owned());
    opt.max_connections(settings.database.max_connections)
        .min_connections(1)
        .connect_timeout(Duration::from_secs(10))
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each checkout: it doubles the round trips of short requests, and sqlx
        // drops a connection that fails anyway.
        .test_before_acquire(false)
        .sqlx_logging_level(tracing::log::LevelFilter::Debug);
    if url.starts_with("sqlite:") {
        // WAL lets readers run beside the one writer; busy_timeout makes writers queue instead of failing.
        opt.map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sea_orm::sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sea_orm::sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(15))
                .foreign_keys(true)
        });
    }
    opt
}

/// Connects as the database owner (migrations, CLI maintenance).
pub async fn connect_owner(settings: &Settings) -> anyhow::Result<DatabaseConnection> {
    let url = settings.database_url();
    if url.starts_with("sqlite:") {
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating data folder {}", settings.data_dir.display()))?;
    }
    Database::connect(options(&url, settings))
        .await
        .context("connecting to the database (owner)")
}

/// Connects the pool that serves requests. On SQLite this is the owner pool itself.
pub async fn connect_app(
    settings: &Settings,
    owner: &DatabaseConnection,
) -> anyhow::Result<DatabaseConnection> {
    if owner.get_database_backend() != DbBackend::Postgres {
        return Ok(owner.clone());
    }
    let opt = match &settings.database.app_url {
        Some(app_url) => options(app_url.expose_secret(), settings),
        None => {
            let mut opt = options(&settings.database_url(), settings);
            opt.map_sqlx_postgres_opts(|o| o.options([("role", APP_ROLE)]));
            opt
        }
    };
    Database::connect(opt)
        .await
        .context("connecting to the database (app role)")
}

/// Applies pending migrations as the owner.
pub async fn migrate(owner: &DatabaseConnection) -> anyhow::Result<()> {
    Migrator::up(owner, None)
        .await
        .context("applying migrations")
}

/// Whether every known migration is applied (readiness).
pub async fn migrations_applied(db: &DatabaseConnection) -> bool {
    matches!(Migrator::get_pending_migrations_read_only(db).await, Ok(pending) if pending.is_empty())
}

/// Opens a transaction of one tenant: on PostgreSQL, RLS then shows only its rows.
pub async fn begin_tenant(db: &DatabaseConnection, tenant: TenantId) -> AppResult<TenantTx> {
    TenantTx::bind(db.begin().await?, tenant).await
}

/// Opens a tenant transaction that will write. On SQLite it takes the write lock at BEGIN
/// (`BEGIN IMMEDIATE`): a deferred transaction that read first and then writes fails at once when
/// another writer committed meanwhile, where an immediate one waits its turn (busy timeout) and
/// reads fresh data. On PostgreSQL it is [`begin_tenant`].
pub async fn begin_tenant_write(db: &DatabaseConnection, tenant: TenantId) -> AppResult<TenantTx> {
    TenantTx::bind(begin_write_raw(db).await?, tenant).await
}

/// [`begin_tenant_write`] for platform rows (no tenant set). Every transaction that reads and
/// then writes opens this way: on SQLite a deferred one would fail at its first write whenever
/// another writer (a request, the outbox worker) committed since its first read.
pub async fn begin_platform_write(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    begin_write_raw(db).await
}

async fn begin_write_raw(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    Ok(if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?
    } else {
        db.begin().await?
    })
}

/// Opens a transaction with no tenant set: only platform-level rows are visible.
pub async fn begin_platform(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    Ok(db.begin().await?)
}

/// A transaction for rows that are not tenant-owned but whose visibility depends on an optional
/// viewer (marketplace templates: shared ones plus the viewer's own). With a viewer, RLS sees its
/// tenant; without one, only shared rows. Tenant-owned rows are read through a [`TenantTx`].
pub async fn begin_viewer(
    db: &DatabaseConnection,
    viewer: Option<TenantId>,
) -> AppResult<DatabaseTransaction> {
    let txn = db.begin().await?;
    if let Some(viewer) = viewer {
        set_rls_tenant(&txn, viewer).await?;
    }
    Ok(txn)
}

/// A write transaction of `tenant`, or of the platform when there is none (refresh tokens).
pub async fn begin_tenant_or_platform_write(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
) -> AppResult<TenantOrPlatformTx> {
    Ok(match tenant {
        Some(tenant) => TenantOrPlatformTx::Tenant(begin_tenant_write(db, tenant).await?),
        None => TenantOrPlatformTx::Platform(begin_platform_write(db).await?),
    })
}

/// `select` with `FOR UPDATE` on PostgreSQL: the rows stay locked until the transaction ends.
/// SQLite has no row locks; its write transactions ([`begin_tenant_write`]) are exclusive already.
pub fn for_update<E: EntityTrait, C: ConnectionTrait>(select: Select<E>, conn: &C) -> Select<E> {
    use sea_orm::QuerySelect as _;
    if conn.get_database_backend() == DbBackend::Postgres {
        select.lock_exclusive()
    } else {
        select
    }
}

/// The request database: the sea-orm pool of the app role. Derefs to the sea-orm connection.
#[derive(Clone)]
pub struct Db {
    orm: DatabaseConnection,
}

impl std::ops::Deref for Db {
    type Target = DatabaseConnection;
    fn deref(&self) -> &DatabaseConnection {
        &self.orm
    }
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.orm.get_database_backend())
            .finish()
    }
}

impl Db {
    pub fn new(orm: DatabaseConnection) -> Self {
        Self { orm }
    }

    /// The sea-orm connection itself.
    pub fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }
}

/// Reads rows of one tenant in a tenant transaction; `select` is narrowed to the tenant here.
pub async fn read_tenant<E>(
    db: &Db,
    tenant: TenantId,
    select: Select<E>,
) -> AppResult<Vec<E::Model>>
where
    E: TenantScoped,
{
    let txn = begin_tenant(db, tenant).await?;
    let rows = txn.scope(select).all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}

/// Reads rows as `M` for a viewer, or with no tenant set (then row-level security shows only
/// shared rows, e.g. public templates). `M` may be a partial row. Not for tenant-owned tables:
/// the raw query carries no tenant filter of its own.
pub async fn read_as<M>(
    db: &Db,
    tenant: Option<TenantId>,
    query: sea_orm::sea_query::SelectStatement,
) -> AppResult<Vec<M>>
where
    M: sea_orm::FromQueryResult,
{
    let txn = begin_viewer(db, tenant).await?;
    let rows = read_in(&txn, query).await?;
    txn.commit().await?;
    Ok(rows)
}

/// Reads rows as `M` inside an open transaction.
pub async fn read_in<M, C>(
    conn: &C,
    query: sea_orm::sea_query::SelectStatement,
) -> AppResult<Vec<M>>
where
    M: sea_orm::FromQueryResult,
    C: ConnectionTrait,
{
    let stmt = conn.get_database_backend().build(&query);
    Ok(M::find_by_statement(stmt).all(conn).await?)
}
