//! Database connections and the tenant transaction.
//!
//! Two pools on PostgreSQL: the *owner* runs migrations; requests use the *app* pool, which acts as
//! the non-owner role `amtsplatz_app` so row-level security binds it. Every tenant query runs in a
//! transaction opened by [`begin_tenant`], which sets `app.tenant_id` transaction-locally (a plain
//! `SET` would leak into the next request that borrows the pooled connection).

use std::time::Duration;

use anyhow::Context as _;
use migration::{APP_ROLE, Migrator, MigratorTrait, TENANT_SETTING};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryTrait as _, Select, Statement, TransactionTrait,
};
use secrecy::ExposeSecret;

use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::settings::Settings;

mod pipelined;

pub use pipelined::{Answer, Step, Txn as PipelinedTxn};

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

/// Opens a transaction scoped to one tenant: on PostgreSQL, RLS then shows only its rows.
pub async fn begin_tenant(
    db: &DatabaseConnection,
    tenant: TenantId,
) -> AppResult<DatabaseTransaction> {
    let txn = db.begin().await?;
    set_tenant(&txn, tenant).await?;
    Ok(txn)
}

/// Opens a tenant transaction that will write. On SQLite it takes the write lock at BEGIN
/// (`BEGIN IMMEDIATE`): a deferred transaction that read first and then writes fails at once when
/// another writer committed meanwhile, where an immediate one waits its turn (busy timeout) and
/// reads fresh data. On PostgreSQL it is [`begin_tenant`].
pub async fn begin_tenant_write(
    db: &DatabaseConnection,
    tenant: TenantId,
) -> AppResult<DatabaseTransaction> {
    begin_write_for(db, Some(tenant)).await
}

/// [`begin_tenant_write`] for a tenant or for no tenant (platform rows). Every transaction that
/// reads and then writes opens this way: on SQLite a deferred one would fail at its first write
/// whenever another writer (a request, the outbox worker) committed since its first read.
pub async fn begin_write_for(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
) -> AppResult<DatabaseTransaction> {
    let txn = if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?
    } else {
        db.begin().await?
    };
    if let Some(tenant) = tenant {
        set_tenant(&txn, tenant).await?;
    }
    Ok(txn)
}

/// Opens a transaction with no tenant set: only platform-level rows are visible.
pub async fn begin_platform(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    Ok(db.begin().await?)
}

/// A tenant transaction, or one with no tenant set (shared rows only, e.g. public templates).
pub async fn begin_for(
    db: &DatabaseConnection,
    tenant: Option<TenantId>,
) -> AppResult<DatabaseTransaction> {
    match tenant {
        Some(t) => begin_tenant(db, t).await,
        None => begin_platform(db).await,
    }
}

/// Sets the tenant inside an already open transaction (used when the tenant is created in it).
pub async fn set_tenant(txn: &DatabaseTransaction, tenant: TenantId) -> AppResult<()> {
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

/// A tenant-owned entity: every query on it starts from [`scoped`].
pub trait TenantScoped: sea_orm::EntityTrait {
    fn tenant_column() -> Self::Column;
}

/// `SELECT … WHERE tenant_id = $tenant`: the only way services query tenant tables.
/// (On PostgreSQL, RLS enforces the same again.)
pub fn scoped<E: TenantScoped>(tenant: TenantId) -> sea_orm::Select<E> {
    use sea_orm::{ColumnTrait, QueryFilter};
    E::find().filter(E::tenant_column().eq(tenant.0))
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
    provider_events
);

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

/// The request database: the sea-orm pool, plus on PostgreSQL a pool of tokio-postgres clients
/// for pipelined tenant reads ([`read_tenant`]). Derefs to the sea-orm connection, which serves
/// everything else.
#[derive(Clone)]
pub struct Db {
    orm: DatabaseConnection,
    pipelined: Option<pipelined::Pool>,
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
            .field("pipelined", &self.pipelined.is_some())
            .finish()
    }
}

impl Db {
    /// Wraps the app connection; on PostgreSQL also opens the pipelined read pool as the same
    /// role (unless the URL demands TLS, which that pool does not speak: reads then take the
    /// sea-orm path).
    pub fn new(orm: DatabaseConnection, settings: &Settings) -> anyhow::Result<Self> {
        let pipelined = if orm.get_database_backend() == DbBackend::Postgres {
            pipelined::pool(settings)?
        } else {
            None
        };
        Ok(Self { orm, pipelined })
    }

    /// The sea-orm connection itself.
    pub fn orm(&self) -> &DatabaseConnection {
        &self.orm
    }

    /// A tenant write transaction that sends its statements in flights (see
    /// [`PipelinedTxn`]); `None` on SQLite or without the pipelined pool.
    pub async fn pipelined_txn(&self, tenant: TenantId) -> AppResult<Option<PipelinedTxn>> {
        match &self.pipelined {
            Some(pool) => Ok(Some(PipelinedTxn::new(pool, Some(tenant)).await?)),
            None => Ok(None),
        }
    }
}

/// `column IN (ids)`. On PostgreSQL `column = ANY($1)` with the IDs as one array value instead:
/// the statement's text, and so the statement parsed and planned once per connection, is the same
/// whatever the number of IDs, and binding one value is cheaper than binding one per ID.
pub fn id_in(
    column: impl sea_orm::ColumnTrait,
    ids: &[uuid::Uuid],
    backend: DbBackend,
) -> sea_orm::sea_query::SimpleExpr {
    use sea_orm::sea_query::Expr;
    if backend != DbBackend::Postgres {
        return column.is_in(ids.iter().copied());
    }
    let mut array = String::with_capacity(2 + ids.len() * 37);
    array.push('{');
    for (i, id) in ids.iter().enumerate() {
        if i > 0 {
            array.push(',');
        }
        array.push_str(&id.to_string());
    }
    array.push('}');
    // Written out whole: sea-query would put `ANY(…)` in parentheses as the right-hand side.
    let (table, column) = column.as_column_ref();
    Expr::cust_with_values(
        format!("\"{table}\".\"{column}\" = ANY(CAST($1 AS uuid[]))"),
        [array],
    )
}

/// Reads rows of one tenant.
///
/// A tenant read through sea-orm is four statements in four round trips (BEGIN, set_config,
/// SELECT, COMMIT), each planned anew by PostgreSQL. On PostgreSQL this sends one batch that
/// sets the tenant and runs the statement prepared on the connection (see [`pipelined`]) and
/// decodes the rows from JSON; on SQLite, or when a value has no text form on the pipelined
/// path, it takes the ordinary [`begin_tenant`] path.
pub async fn read_tenant<E>(
    db: &Db,
    tenant: TenantId,
    select: Select<E>,
) -> AppResult<Vec<E::Model>>
where
    E: EntityTrait,
    E::Model: serde::de::DeserializeOwned,
{
    read_as(db, Some(tenant), select.into_query()).await
}

/// Reads rows as `M` for a tenant, or with no tenant set (then row-level security shows only
/// shared rows, e.g. public templates). Same paths as [`read_tenant`]; `M` may be a partial row.
pub async fn read_as<M>(
    db: &Db,
    tenant: Option<TenantId>,
    query: sea_orm::sea_query::SelectStatement,
) -> AppResult<Vec<M>>
where
    M: sea_orm::FromQueryResult + serde::de::DeserializeOwned,
{
    if let Some(pool) = &db.pipelined
        && let Some(rows) = pipelined::read::<M>(pool, tenant, &query).await?
    {
        return Ok(rows);
    }
    let txn = begin_for(db, tenant).await?;
    let stmt = txn.get_database_backend().build(&query);
    let rows = M::find_by_statement(stmt).all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}

/// Reads that go out together: one pipelined flight on PostgreSQL. A read's rows are taken by
/// its handle from the [`ReadRows`] of a [`ReadTxn`] step.
#[derive(Default)]
pub struct Reads {
    queries: Vec<sea_orm::sea_query::SelectStatement>,
}

/// The handle of one read in a [`Reads`], typed by its row.
pub struct Read<M>(usize, std::marker::PhantomData<fn() -> M>);

impl Reads {
    pub fn add<M>(&mut self, query: sea_orm::sea_query::SelectStatement) -> Read<M>
    where
        M: sea_orm::FromQueryResult + serde::de::DeserializeOwned,
    {
        self.queries.push(query);
        Read(self.queries.len() - 1, std::marker::PhantomData)
    }
}

/// A read transaction of one tenant (or of none) whose steps are [`Reads`]: on PostgreSQL each
/// step is one round trip on one connection (the first carries BEGIN and the tenant, the last
/// COMMIT); elsewhere a sea-orm transaction runs them one by one.
pub enum ReadTxn {
    Pipelined(Box<PipelinedTxn>),
    Orm(DatabaseTransaction),
}

impl Db {
    pub async fn read_txn(&self, tenant: Option<TenantId>) -> AppResult<ReadTxn> {
        Ok(match &self.pipelined {
            Some(pool) => ReadTxn::Pipelined(Box::new(PipelinedTxn::new(pool, tenant).await?)),
            None => ReadTxn::Orm(begin_for(self, tenant).await?),
        })
    }
}

impl ReadTxn {
    /// Runs one step; the transaction stays open for the next.
    pub async fn read(&mut self, reads: Reads) -> AppResult<ReadRows> {
        match self {
            Self::Pipelined(txn) => Ok(ReadRows::Pipelined(
                txn.flight(reads.queries.iter().map(Step::select).collect())
                    .await?,
            )),
            Self::Orm(txn) => Ok(ReadRows::Orm(orm_reads(txn, &reads).await?)),
        }
    }

    /// Runs the last step and commits with it.
    pub async fn read_and_commit(self, reads: Reads) -> AppResult<ReadRows> {
        match self {
            Self::Pipelined(txn) => Ok(ReadRows::Pipelined(
                txn.commit(reads.queries.iter().map(Step::select).collect())
                    .await?,
            )),
            Self::Orm(txn) => {
                let rows = orm_reads(&txn, &reads).await?;
                txn.commit().await?;
                Ok(ReadRows::Orm(rows))
            }
        }
    }
}

async fn orm_reads(
    txn: &DatabaseTransaction,
    reads: &Reads,
) -> AppResult<Vec<Vec<sea_orm::QueryResult>>> {
    let mut rows = Vec::with_capacity(reads.queries.len());
    for query in &reads.queries {
        let stmt = txn.get_database_backend().build(query);
        rows.push(txn.query_all_raw(stmt).await?);
    }
    Ok(rows)
}

/// The rows of a [`ReadTxn`] step, as they came.
pub enum ReadRows {
    Pipelined(Vec<Answer>),
    Orm(Vec<Vec<sea_orm::QueryResult>>),
}

impl ReadRows {
    pub fn take<M>(&self, read: Read<M>) -> AppResult<Vec<M>>
    where
        M: sea_orm::FromQueryResult + serde::de::DeserializeOwned,
    {
        let missing =
            || AppError::internal("reads", anyhow::anyhow!("no answer for read {}", read.0));
        match self {
            Self::Pipelined(all) => all.get(read.0).ok_or_else(missing)?.decode(),
            Self::Orm(all) => Ok(all
                .get(read.0)
                .ok_or_else(missing)?
                .iter()
                .map(|row| M::from_query_result(row, ""))
                .collect::<Result<Vec<M>, _>>()?),
        }
    }
}
