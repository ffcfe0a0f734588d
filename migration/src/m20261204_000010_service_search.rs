//! Search over a tenant's services: `tenant_services.summary` and `.category` (the German summary
//! and category key of the current revision, kept in step wherever the title is written), a
//! full-text index over title and summary like the templates' one, and an index for the
//! category filter.
//!
//! Existing services get both columns from their current revision's content. On PostgreSQL the
//! two tables are under forced row-level security, which binds the owner running migrations too
//! (unless a superuser): the backfill acts as each tenant in turn, like a request would, rather
//! than switching the policies off. The new columns need no grant or policy of their own: the
//! app role's grant on `tenant_services` is table-wide and the policy is per row.
use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Both backends: the columns (one per `ALTER TABLE`, as SQLite needs).
const COLUMNS: &[&str] = &[
    "ALTER TABLE tenant_services ADD COLUMN summary text NOT NULL DEFAULT ''",
    "ALTER TABLE tenant_services ADD COLUMN category text NOT NULL DEFAULT ''",
];

/// PostgreSQL: backfill per tenant (see the module comment), then the generated `tsvector`
/// (German stemming) with its GIN index. `set_config(.., true)` ends with the transaction; it is
/// cleared at the end anyway.
const POSTGRES: &[&str] = &[
    "DO $$ DECLARE t uuid; BEGIN \
       FOR t IN SELECT id FROM tenants LOOP \
         PERFORM set_config('app.tenant_id', t::text, true); \
         UPDATE tenant_services s \
            SET summary = COALESCE(r.content -> 'summary' ->> 'de', ''), \
                category = COALESCE(r.content ->> 'category', '') \
           FROM service_revisions r \
          WHERE r.tenant_id = s.tenant_id AND r.service_id = s.id \
            AND r.revision = s.current_revision; \
       END LOOP; \
       PERFORM set_config('app.tenant_id', '', true); \
     END $$",
    "ALTER TABLE tenant_services ADD COLUMN search tsvector GENERATED ALWAYS AS \
     (to_tsvector('german', title || ' ' || summary)) STORED",
    "CREATE INDEX tenant_services_search_idx ON tenant_services USING GIN (search)",
    "CREATE INDEX tenant_services_tenant_id_category_idx ON tenant_services (tenant_id, category)",
];

/// SQLite: backfill, then an FTS5 index over title and summary kept in step by triggers, keyed
/// by the service ID (not `rowid`, which VACUUM may renumber) and carrying the tenant, so a
/// search is narrowed to one tenant in the index itself.
const SQLITE: &[&str] = &[
    "UPDATE tenant_services SET \
       summary = COALESCE((SELECT json_extract(r.content, '$.summary.de') FROM service_revisions r \
         WHERE r.service_id = tenant_services.id AND r.revision = tenant_services.current_revision), ''), \
       category = COALESCE((SELECT json_extract(r.content, '$.category') FROM service_revisions r \
         WHERE r.service_id = tenant_services.id AND r.revision = tenant_services.current_revision), '')",
    "CREATE VIRTUAL TABLE tenant_services_fts USING fts5(service_id UNINDEXED, \
     tenant_id UNINDEXED, title, summary, tokenize='unicode61 remove_diacritics 2')",
    "INSERT INTO tenant_services_fts(service_id, tenant_id, title, summary) \
     SELECT id, tenant_id, title, summary FROM tenant_services",
    "CREATE TRIGGER tenant_services_fts_insert AFTER INSERT ON tenant_services BEGIN \
       INSERT INTO tenant_services_fts(service_id, tenant_id, title, summary) \
       VALUES (new.id, new.tenant_id, new.title, new.summary); \
     END",
    "CREATE TRIGGER tenant_services_fts_delete AFTER DELETE ON tenant_services BEGIN \
       DELETE FROM tenant_services_fts WHERE service_id = old.id; \
     END",
    "CREATE TRIGGER tenant_services_fts_update AFTER UPDATE OF title, summary ON tenant_services \
     BEGIN \
       DELETE FROM tenant_services_fts WHERE service_id = old.id; \
       INSERT INTO tenant_services_fts(service_id, tenant_id, title, summary) \
       VALUES (new.id, new.tenant_id, new.title, new.summary); \
     END",
    "CREATE INDEX tenant_services_tenant_id_category_idx ON tenant_services (tenant_id, category)",
];

const POSTGRES_DOWN: &[&str] = &[
    "DROP INDEX IF EXISTS tenant_services_tenant_id_category_idx",
    "DROP INDEX IF EXISTS tenant_services_search_idx",
    "ALTER TABLE tenant_services DROP COLUMN IF EXISTS search",
    "ALTER TABLE tenant_services DROP COLUMN IF EXISTS category",
    "ALTER TABLE tenant_services DROP COLUMN IF EXISTS summary",
];

const SQLITE_DOWN: &[&str] = &[
    "DROP TRIGGER IF EXISTS tenant_services_fts_update",
    "DROP TRIGGER IF EXISTS tenant_services_fts_delete",
    "DROP TRIGGER IF EXISTS tenant_services_fts_insert",
    "DROP TABLE IF EXISTS tenant_services_fts",
    "DROP INDEX IF EXISTS tenant_services_tenant_id_category_idx",
    "ALTER TABLE tenant_services DROP COLUMN category",
    "ALTER TABLE tenant_services DROP COLUMN summary",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let rest = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES,
            _ => SQLITE,
        };
        for sql in COLUMNS.iter().chain(rest) {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let conn = manager.get_connection();
        let statements = match manager.get_database_backend() {
            DbBackend::Postgres => POSTGRES_DOWN,
            _ => SQLITE_DOWN,
        };
        for sql in statements {
            conn.execute_unprepared(sql).await?;
        }
        Ok(())
    }
}
