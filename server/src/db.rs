//! Database connections and the tenant transaction.
//!
//! Two pools on PostgreSQL: the *owner* runs migrations; requests use the *app* pool, which acts as
//! the non-owner role `amtsplatz_app` so row-level security binds it. Every tenant query runs in a
//! transaction opened by [`begin_tenant`], which sets `app.tenant_id` transaction-locally (a plain
//! `SET` would leak into the next request that borrows the pooled connection).

use std::time::Duration;

use anyhow::Context as _;
use migration::{APP_ROLE, Migrator, MigratorTrait};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DatabaseTransaction, DbBackend,
    DbErr, EntityTrait, FromQueryResult, QueryResult, QueryTrait as _, RuntimeErr, Select,
    Statement, TransactionTrait,
};
use secrecy::ExposeSecret;

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
    let txn = if db.get_database_backend() == DbBackend::Sqlite {
        db.begin_with_options(sea_orm::TransactionOptions {
            sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
            ..Default::default()
        })
        .await?
    } else {
        db.begin().await?
    };
    set_tenant(&txn, tenant).await?;
    Ok(txn)
}

/// Opens a transaction with no tenant set: only platform-level rows are visible.
pub async fn begin_platform(db: &DatabaseConnection) -> AppResult<DatabaseTransaction> {
    Ok(db.begin().await?)
}

/// Sets the tenant inside an already open transaction (used when the tenant is created in it).
pub async fn set_tenant(txn: &DatabaseTransaction, tenant: TenantId) -> AppResult<()> {
    if txn.get_database_backend() == DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT set_config('app.tenant_id', $1, true)",
            [tenant.to_string().into()],
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
    service_revisions
);

/// Reads rows of one tenant.
///
/// On PostgreSQL a tenant read is otherwise four statements in four round trips (BEGIN,
/// set_config, SELECT, COMMIT). When every bound value of `select` is a UUID, an integer or a
/// bool — values whose literal form cannot carry SQL — `set_config` and the SELECT travel as one
/// simple-protocol message instead. PostgreSQL runs the statements of one such message as a
/// single implicit transaction, so the transaction-local `app.tenant_id` holds for the SELECT and
/// ends with it: one round trip, two statements. Anything else (strings, JSON, …) takes the
/// ordinary [`begin_tenant`] path, so no user text is ever inlined.
pub async fn read_tenant<E: EntityTrait>(
    db: &DatabaseConnection,
    tenant: TenantId,
    select: Select<E>,
) -> AppResult<Vec<E::Model>> {
    if db.get_database_backend() == DbBackend::Postgres
        && let Some(sql) = inlined_postgres_sql(&select)
    {
        return read_in_one_round_trip::<E::Model>(db, tenant, &sql).await;
    }
    let txn = begin_tenant(db, tenant).await?;
    let rows = select.all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}

/// The statement with its values written in, if all of them are of a kind that is safe to inline.
fn inlined_postgres_sql<E: EntityTrait>(select: &Select<E>) -> Option<String> {
    use sea_orm::sea_query::{PostgresQueryBuilder, Value};
    let query = select.as_query();
    let (_, values) = query.build(PostgresQueryBuilder);
    let inlinable = values.iter().all(|v| {
        matches!(
            v,
            Value::Bool(_)
                | Value::TinyInt(_)
                | Value::SmallInt(_)
                | Value::Int(_)
                | Value::BigInt(_)
                | Value::TinyUnsigned(_)
                | Value::SmallUnsigned(_)
                | Value::Unsigned(_)
                | Value::BigUnsigned(_)
                | Value::Uuid(_)
        )
    });
    inlinable.then(|| query.to_string(PostgresQueryBuilder))
}

async fn read_in_one_round_trip<M: FromQueryResult>(
    db: &DatabaseConnection,
    tenant: TenantId,
    select_sql: &str,
) -> AppResult<Vec<M>> {
    use futures_util::TryStreamExt as _;
    use sea_orm::sqlx::{self, Either};

    // `tenant` is a UUID we parsed; its text form is hex digits and dashes.
    let sql = format!("SELECT set_config('app.tenant_id', '{tenant}', true); {select_sql}");
    let mut conn = db
        .get_postgres_connection_pool()
        .acquire()
        .await
        .map_err(|e| DbErr::Conn(RuntimeErr::SqlxError(e.into())))?;
    let mut rows = Vec::new();
    let mut finished_statements = 0;
    let outcome: Result<(), sqlx::Error> = async {
        let mut stream = sqlx::raw_sql(sqlx::AssertSqlSafe(sql)).fetch_many(&mut *conn);
        while let Some(step) = stream.try_next().await? {
            match step {
                Either::Left(_) => finished_statements += 1,
                // Rows of the second statement (after set_config) are the answer.
                Either::Right(row) if finished_statements == 1 => rows.push(row),
                Either::Right(_) => {}
            }
        }
        Ok(())
    }
    .await;
    // A failure rolls the implicit transaction back by itself; the connection stays clean.
    if let Err(e) = outcome {
        return Err(DbErr::Query(RuntimeErr::SqlxError(e.into())).into());
    }
    rows.into_iter()
        .map(|row| M::from_query_result(&QueryResult::from(row), "").map_err(Into::into))
        .collect()
}
