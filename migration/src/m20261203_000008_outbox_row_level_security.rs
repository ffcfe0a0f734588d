//! The outbox gets row-level security like every tenant table (issue 23, item 8).
//!
//! Mail rows carry personal data (recipient, subject, body). A request now sees and changes only
//! its tenant's rows (rows without a tenant only while no tenant is set), so a request can
//! neither read another tenant's mail nor rewrite or withdraw it.
//!
//! The worker that sends mail of all tenants runs as its own role, [`OUTBOX_ROLE`] (`NOLOGIN`,
//! granted to the owner like the app role): it may only `SELECT` and `UPDATE` the outbox, and a
//! policy for that role alone lets it see every row. A role of its own, rather than the owner or
//! a `SECURITY DEFINER` function, keeps the owner out of the running server and keeps the
//! worker's `FOR UPDATE SKIP LOCKED` lease one plain statement; its grants are nothing but what
//! sending needs, so a bug in it cannot reach any other table.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::postgres;

/// The PostgreSQL role the outbox worker acts as.
pub const OUTBOX_ROLE: &str = "amtsplatz_outbox";

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        postgres::create_role(manager, OUTBOX_ROLE).await?;
        for sql in [
            format!("GRANT {OUTBOX_ROLE} TO CURRENT_USER"),
            format!("GRANT USAGE ON SCHEMA public TO {OUTBOX_ROLE}"),
            format!("GRANT SELECT, UPDATE ON outbox TO {OUTBOX_ROLE}"),
        ] {
            conn.execute_unprepared(&sql).await?;
        }
        postgres::enable_nullable_tenant_rls(manager, "outbox").await?;
        for sql in [
            format!(
                "CREATE POLICY outbox_worker_read ON outbox FOR SELECT TO {OUTBOX_ROLE} USING (true)"
            ),
            format!(
                "CREATE POLICY outbox_worker_settle ON outbox FOR UPDATE TO {OUTBOX_ROLE} \
                 USING (true) WITH CHECK (true)"
            ),
        ] {
            conn.execute_unprepared(&sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let conn = manager.get_connection();
        for sql in [
            "DROP POLICY IF EXISTS outbox_worker_settle ON outbox".to_owned(),
            "DROP POLICY IF EXISTS outbox_worker_read ON outbox".to_owned(),
            "DROP POLICY IF EXISTS outbox_tenant_isolation ON outbox".to_owned(),
            "ALTER TABLE outbox NO FORCE ROW LEVEL SECURITY".to_owned(),
            "ALTER TABLE outbox DISABLE ROW LEVEL SECURITY".to_owned(),
            // The role stays: other databases of the cluster may use it.
            format!("REVOKE ALL ON outbox FROM {OUTBOX_ROLE}"),
        ] {
            conn.execute_unprepared(&sql).await?;
        }
        Ok(())
    }
}
