//! PostgreSQL-only parts of migrations: the request role, grants and row-level security.
//! Every function is a no-op on SQLite, which has neither roles nor RLS.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::APP_ROLE;

fn is_postgres(manager: &SchemaManager<'_>) -> bool {
    manager.get_database_backend() == DbBackend::Postgres
}

/// Creates the `NOLOGIN` role `role` unless it exists (PostgreSQL only; the caller checks).
/// Roles are cluster-wide and several databases may be migrated at once (tests), so a
/// concurrent creation is not an error.
pub async fn create_role(manager: &SchemaManager<'_>, role: &str) -> Result<(), DbErr> {
    let sql = format!(
        "DO $$ BEGIN \
           IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN \
             CREATE ROLE {role} NOLOGIN NOSUPERUSER NOBYPASSRLS; \
           END IF; \
         EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL; \
         END $$"
    );
    manager.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

/// Creates [`APP_ROLE`] unless it exists. Roles are cluster-wide and several databases may be
/// migrated at once (tests), so a concurrent creation is not an error.
pub async fn ensure_app_role(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    if !is_postgres(manager) {
        return Ok(());
    }
    create_role(manager, APP_ROLE).await?;
    // The owner must be able to act as the app role (connection option `role=`), and the
    // app role must see the schema and the migration table (readiness checks it).
    for sql in [
        format!("GRANT {APP_ROLE} TO CURRENT_USER"),
        format!("GRANT USAGE ON SCHEMA public TO {APP_ROLE}"),
        format!("GRANT SELECT ON seaql_migrations TO {APP_ROLE}"),
    ] {
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Grants the app role `privileges` (e.g. `SELECT, INSERT`) on `table`.
pub async fn grant(
    manager: &SchemaManager<'_>,
    table: &str,
    privileges: &str,
) -> Result<(), DbErr> {
    if !is_postgres(manager) {
        return Ok(());
    }
    let sql = format!("GRANT {privileges} ON {table} TO {APP_ROLE}");
    manager.get_connection().execute_unprepared(&sql).await?;
    Ok(())
}

/// New tenant tables: grants the app role each table's privileges and turns on its row-level
/// security ([`enable_tenant_rls`]).
pub async fn tenant_tables(
    manager: &SchemaManager<'_>,
    tables: &[(&str, &str)],
) -> Result<(), DbErr> {
    for (table, privileges) in tables {
        grant(manager, table, privileges).await?;
        enable_tenant_rls(manager, table).await?;
    }
    Ok(())
}

/// Turns on forced row-level security for a tenant table: rows are visible and writable only
/// when `tenant_id` equals the transaction's `app.tenant_id` setting. `NULLIF` matters: once a
/// transaction-local setting ends, a pooled connection reports `''`, not NULL.
pub async fn enable_tenant_rls(manager: &SchemaManager<'_>, table: &str) -> Result<(), DbErr> {
    rls_with(
        manager,
        table,
        "tenant_id = NULLIF(current_setting('app.tenant_id', true), '')::uuid",
    )
    .await
}

/// Like [`enable_tenant_rls`] for a table whose `tenant_id` is NULL for platform-level rows:
/// those are visible only while no tenant is set.
pub async fn enable_nullable_tenant_rls(
    manager: &SchemaManager<'_>,
    table: &str,
) -> Result<(), DbErr> {
    rls_with(
        manager,
        table,
        "tenant_id IS NOT DISTINCT FROM NULLIF(current_setting('app.tenant_id', true), '')::uuid",
    )
    .await
}

async fn rls_with(manager: &SchemaManager<'_>, table: &str, predicate: &str) -> Result<(), DbErr> {
    if !is_postgres(manager) {
        return Ok(());
    }
    for sql in [
        format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
        format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
        format!(
            "CREATE POLICY {table}_tenant_isolation ON {table} USING ({predicate}) WITH CHECK ({predicate})"
        ),
    ] {
        manager.get_connection().execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Turns on forced row-level security with one policy per command, for tables whose rules differ
/// by command (shared marketplace data): `(name, command, predicate)`. Commands without a policy
/// are denied.
pub async fn policies(
    manager: &SchemaManager<'_>,
    table: &str,
    policies: &[(&str, &str, &str)],
) -> Result<(), DbErr> {
    if !is_postgres(manager) {
        return Ok(());
    }
    let conn = manager.get_connection();
    conn.execute_unprepared(&format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"))
        .await?;
    conn.execute_unprepared(&format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"))
        .await?;
    for (name, command, predicate) in policies {
        let clause = match *command {
            "INSERT" => format!("WITH CHECK ({predicate})"),
            "SELECT" | "DELETE" => format!("USING ({predicate})"),
            _ => format!("USING ({predicate}) WITH CHECK ({predicate})"),
        };
        conn.execute_unprepared(&format!(
            "CREATE POLICY {table}_{name} ON {table} FOR {command} {clause}"
        ))
        .await?;
    }
    Ok(())
}
