//! Marketplace and services: templates with immutable versions, tenant services (forks) with
//! revisions, adoption lineage, and change proposals from forks back to templates.
//!
//! Templates are not tenant-owned in the usual sense: every tenant reads public ones, only the
//! author tenant writes. Their row-level security says exactly that (see the end of `up`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::indexes;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Templates {
    Table,
    Id,
    AuthorTenantId,
    Slug,
    Title,
    Summary,
    Category,
    LeikaCode,
    Tags,
    License,
    Visibility,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TemplateVersions {
    Table,
    Id,
    TemplateId,
    Version,
    Major,
    Minor,
    Patch,
    Content,
    Changelog,
    Status,
    DeprecationNote,
    PublishedBy,
    PublishedAt,
    DeprecatedAt,
}

#[derive(DeriveIden)]
enum TenantServices {
    Table,
    Id,
    TenantId,
    Slug,
    Title,
    TemplateId,
    UpstreamVersionId,
    Overlay,
    CurrentRevision,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum ServiceRevisions {
    Table,
    Id,
    TenantId,
    ServiceId,
    Revision,
    UpstreamVersionId,
    Overlay,
    Content,
    Reason,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum TemplateAdoptions {
    Table,
    ServiceId,
    TenantId,
    TemplateId,
    TemplateVersionId,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TemplateProposals {
    Table,
    Id,
    TemplateId,
    BaseVersionId,
    ProposerTenantId,
    ServiceId,
    Overlay,
    Content,
    Message,
    Status,
    CreatedBy,
    CreatedAt,
    DecidedAt,
    DecidedBy,
    DecisionNote,
    ResultVersionId,
}

fn fk(
    name: &str,
    from: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
    to: impl IntoIden + 'static,
    to_col: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, col)
        .to(to, to_col)
        .take()
}

/// The current tenant as row-level security sees it.
const CURRENT_TENANT: &str = "NULLIF(current_setting('app.tenant_id', true), '')::uuid";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Templates::Table)
                    .col(pk_uuid(Templates::Id))
                    .col(uuid(Templates::AuthorTenantId))
                    .col(string(Templates::Slug))
                    .col(string(Templates::Title))
                    .col(string(Templates::Summary))
                    .col(string(Templates::Category))
                    .col(string_null(Templates::LeikaCode))
                    .col(json_binary(Templates::Tags))
                    .col(string(Templates::License))
                    .col(string(Templates::Visibility))
                    .col(uuid_null(Templates::CreatedBy))
                    .col(timestamp_with_time_zone(Templates::CreatedAt))
                    .col(timestamp_with_time_zone(Templates::UpdatedAt))
                    .foreign_key(&mut fk(
                        "templates_author_tenant_id_fkey",
                        Templates::Table,
                        Templates::AuthorTenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .index(
                        Index::create()
                            .name("templates_slug_key")
                            .col(Templates::Slug)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TemplateVersions::Table)
                    .col(pk_uuid(TemplateVersions::Id))
                    .col(uuid(TemplateVersions::TemplateId))
                    .col(string(TemplateVersions::Version))
                    .col(big_integer(TemplateVersions::Major))
                    .col(big_integer(TemplateVersions::Minor))
                    .col(big_integer(TemplateVersions::Patch))
                    .col(json_binary(TemplateVersions::Content))
                    .col(text(TemplateVersions::Changelog))
                    .col(string(TemplateVersions::Status))
                    .col(text_null(TemplateVersions::DeprecationNote))
                    .col(uuid_null(TemplateVersions::PublishedBy))
                    .col(timestamp_with_time_zone(TemplateVersions::PublishedAt))
                    .col(timestamp_with_time_zone_null(
                        TemplateVersions::DeprecatedAt,
                    ))
                    .foreign_key(&mut fk(
                        "template_versions_template_id_fkey",
                        TemplateVersions::Table,
                        TemplateVersions::TemplateId,
                        Templates::Table,
                        Templates::Id,
                    ))
                    .index(
                        Index::create()
                            .name("template_versions_template_id_version_key")
                            .col(TemplateVersions::TemplateId)
                            .col(TemplateVersions::Version)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TenantServices::Table)
                    .col(pk_uuid(TenantServices::Id))
                    .col(uuid(TenantServices::TenantId))
                    .col(string(TenantServices::Slug))
                    .col(string(TenantServices::Title))
                    .col(uuid_null(TenantServices::TemplateId))
                    .col(uuid_null(TenantServices::UpstreamVersionId))
                    .col(json_binary(TenantServices::Overlay))
                    .col(big_integer(TenantServices::CurrentRevision))
                    .col(string(TenantServices::Status))
                    .col(timestamp_with_time_zone(TenantServices::CreatedAt))
                    .col(timestamp_with_time_zone(TenantServices::UpdatedAt))
                    .foreign_key(&mut fk(
                        "tenant_services_tenant_id_fkey",
                        TenantServices::Table,
                        TenantServices::TenantId,
                        Tenants::Table,
                        Tenants::Id,
                    ))
                    .foreign_key(&mut fk(
                        "tenant_services_template_id_fkey",
                        TenantServices::Table,
                        TenantServices::TemplateId,
                        Templates::Table,
                        Templates::Id,
                    ))
                    .foreign_key(&mut fk(
                        "tenant_services_upstream_version_id_fkey",
                        TenantServices::Table,
                        TenantServices::UpstreamVersionId,
                        TemplateVersions::Table,
                        TemplateVersions::Id,
                    ))
                    .index(
                        Index::create()
                            .name("tenant_services_tenant_id_slug_key")
                            .col(TenantServices::TenantId)
                            .col(TenantServices::Slug)
                            .unique(),
                    )
                    .index(
                        Index::create()
                            .name("tenant_services_tenant_id_id_key")
                            .col(TenantServices::TenantId)
                            .col(TenantServices::Id)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ServiceRevisions::Table)
                    .col(pk_uuid(ServiceRevisions::Id))
                    .col(uuid(ServiceRevisions::TenantId))
                    .col(uuid(ServiceRevisions::ServiceId))
                    .col(big_integer(ServiceRevisions::Revision))
                    .col(uuid_null(ServiceRevisions::UpstreamVersionId))
                    .col(json_binary(ServiceRevisions::Overlay))
                    .col(json_binary(ServiceRevisions::Content))
                    .col(text(ServiceRevisions::Reason))
                    .col(uuid_null(ServiceRevisions::CreatedBy))
                    .col(timestamp_with_time_zone(ServiceRevisions::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("service_revisions_service_fkey")
                            .from(
                                ServiceRevisions::Table,
                                (ServiceRevisions::TenantId, ServiceRevisions::ServiceId),
                            )
                            .to(
                                TenantServices::Table,
                                (TenantServices::TenantId, TenantServices::Id),
                            ),
                    )
                    .foreign_key(&mut fk(
                        "service_revisions_upstream_version_id_fkey",
                        ServiceRevisions::Table,
                        ServiceRevisions::UpstreamVersionId,
                        TemplateVersions::Table,
                        TemplateVersions::Id,
                    ))
                    .index(
                        Index::create()
                            .name("service_revisions_tenant_id_service_id_revision_key")
                            .col(ServiceRevisions::TenantId)
                            .col(ServiceRevisions::ServiceId)
                            .col(ServiceRevisions::Revision)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TemplateAdoptions::Table)
                    .col(pk_uuid(TemplateAdoptions::ServiceId))
                    .col(uuid(TemplateAdoptions::TenantId))
                    .col(uuid(TemplateAdoptions::TemplateId))
                    .col(uuid(TemplateAdoptions::TemplateVersionId))
                    .col(timestamp_with_time_zone(TemplateAdoptions::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("template_adoptions_service_fkey")
                            .from(
                                TemplateAdoptions::Table,
                                (TemplateAdoptions::TenantId, TemplateAdoptions::ServiceId),
                            )
                            .to(
                                TenantServices::Table,
                                (TenantServices::TenantId, TenantServices::Id),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(&mut fk(
                        "template_adoptions_template_version_id_fkey",
                        TemplateAdoptions::Table,
                        TemplateAdoptions::TemplateVersionId,
                        TemplateVersions::Table,
                        TemplateVersions::Id,
                    ))
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("template_adoptions_template_id_idx")
                    .table(TemplateAdoptions::Table)
                    .col(TemplateAdoptions::TemplateId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(TemplateProposals::Table)
                    .col(pk_uuid(TemplateProposals::Id))
                    .col(uuid(TemplateProposals::TemplateId))
                    .col(uuid(TemplateProposals::BaseVersionId))
                    .col(uuid(TemplateProposals::ProposerTenantId))
                    .col(uuid(TemplateProposals::ServiceId))
                    .col(json_binary(TemplateProposals::Overlay))
                    .col(json_binary(TemplateProposals::Content))
                    .col(text(TemplateProposals::Message))
                    .col(string(TemplateProposals::Status))
                    .col(uuid_null(TemplateProposals::CreatedBy))
                    .col(timestamp_with_time_zone(TemplateProposals::CreatedAt))
                    .col(timestamp_with_time_zone_null(TemplateProposals::DecidedAt))
                    .col(uuid_null(TemplateProposals::DecidedBy))
                    .col(text_null(TemplateProposals::DecisionNote))
                    .col(uuid_null(TemplateProposals::ResultVersionId))
                    .foreign_key(&mut fk(
                        "template_proposals_template_id_fkey",
                        TemplateProposals::Table,
                        TemplateProposals::TemplateId,
                        Templates::Table,
                        Templates::Id,
                    ))
                    .foreign_key(&mut fk(
                        "template_proposals_base_version_id_fkey",
                        TemplateProposals::Table,
                        TemplateProposals::BaseVersionId,
                        TemplateVersions::Table,
                        TemplateVersions::Id,
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("template_proposals_service_fkey")
                            .from(
                                TemplateProposals::Table,
                                (
                                    TemplateProposals::ProposerTenantId,
                                    TemplateProposals::ServiceId,
                                ),
                            )
                            .to(
                                TenantServices::Table,
                                (TenantServices::TenantId, TenantServices::Id),
                            ),
                    )
                    .take(),
            )
            .await?;

        let conn = manager.get_connection();
        match manager.get_database_backend() {
            DbBackend::Postgres => {
                for sql in POSTGRES_SEARCH_AND_IMMUTABILITY {
                    conn.execute_unprepared(sql).await?;
                }
            }
            _ => {
                for sql in SQLITE_SEARCH_AND_IMMUTABILITY {
                    conn.execute_unprepared(sql).await?;
                }
            }
        }

        // Grants: published versions are immutable (only their status may change); the audit
        // trail of revisions and adoption rows is written, never rewritten.
        postgres::grant(manager, "templates", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(
            manager,
            "template_versions",
            "SELECT, INSERT, UPDATE (status, deprecation_note, deprecated_at)",
        )
        .await?;
        postgres::grant(manager, "tenant_services", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(manager, "service_revisions", "SELECT, INSERT").await?;
        postgres::grant(
            manager,
            "template_adoptions",
            "SELECT, INSERT, UPDATE, DELETE",
        )
        .await?;
        postgres::grant(manager, "template_proposals", "SELECT, INSERT, UPDATE").await?;

        postgres::enable_tenant_rls(manager, "tenant_services").await?;
        postgres::enable_tenant_rls(manager, "service_revisions").await?;
        let author_of = |col: &str| {
            format!(
                "EXISTS (SELECT 1 FROM templates t WHERE t.id = {col} AND t.author_tenant_id = {CURRENT_TENANT})"
            )
        };
        postgres::policies(
            manager,
            "templates",
            &[
                (
                    "read_public_or_own",
                    "SELECT",
                    &format!("visibility = 'public' OR author_tenant_id = {CURRENT_TENANT}"),
                ),
                (
                    "author_inserts",
                    "INSERT",
                    &format!("author_tenant_id = {CURRENT_TENANT}"),
                ),
                (
                    "author_updates",
                    "UPDATE",
                    &format!("author_tenant_id = {CURRENT_TENANT}"),
                ),
            ],
        )
        .await?;
        postgres::policies(
            manager,
            "template_versions",
            &[
                // Visible exactly when the template is (its policy applies inside the subquery).
                (
                    "read_visible_template",
                    "SELECT",
                    "EXISTS (SELECT 1 FROM templates t WHERE t.id = template_id)",
                ),
                ("author_inserts", "INSERT", &author_of("template_id")),
                ("author_updates", "UPDATE", &author_of("template_id")),
            ],
        )
        .await?;
        // Lineage is public (who uses which version); each tenant writes only its own rows.
        postgres::policies(
            manager,
            "template_adoptions",
            &[
                ("read_all", "SELECT", "true"),
                (
                    "own_inserts",
                    "INSERT",
                    &format!("tenant_id = {CURRENT_TENANT}"),
                ),
                (
                    "own_updates",
                    "UPDATE",
                    &format!("tenant_id = {CURRENT_TENANT}"),
                ),
                (
                    "own_deletes",
                    "DELETE",
                    &format!("tenant_id = {CURRENT_TENANT}"),
                ),
            ],
        )
        .await?;
        // A proposal is seen by the tenant that made it and by the template's author tenant.
        let proposal_parties = format!(
            "proposer_tenant_id = {CURRENT_TENANT} OR {}",
            author_of("template_id")
        );
        postgres::policies(
            manager,
            "template_proposals",
            &[
                ("parties_read", "SELECT", &proposal_parties),
                (
                    "proposer_inserts",
                    "INSERT",
                    &format!("proposer_tenant_id = {CURRENT_TENANT}"),
                ),
                ("author_decides", "UPDATE", &author_of("template_id")),
            ],
        )
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            manager
                .get_connection()
                .execute_unprepared("DROP TABLE IF EXISTS templates_fts")
                .await?;
        }
        indexes::drop_tables(
            manager,
            &[
                "template_proposals",
                "template_adoptions",
                "service_revisions",
                "tenant_services",
                "template_versions",
                "templates",
            ],
        )
        .await?;
        if manager.get_database_backend() == DbBackend::Postgres {
            // The trigger went with its table; its function stays unless dropped.
            manager
                .get_connection()
                .execute_unprepared("DROP FUNCTION IF EXISTS template_versions_immutable()")
                .await?;
        }
        Ok(())
    }
}

/// Full-text search (German stemming) and a trigger that keeps published content immutable even
/// for the owner role.
const POSTGRES_SEARCH_AND_IMMUTABILITY: &[&str] = &[
    "ALTER TABLE templates ADD COLUMN search tsvector GENERATED ALWAYS AS \
     (to_tsvector('german', title || ' ' || summary)) STORED",
    "CREATE INDEX templates_search_idx ON templates USING GIN (search)",
    "CREATE FUNCTION template_versions_immutable() RETURNS trigger LANGUAGE plpgsql AS $$ \
     BEGIN \
       IF NEW.content IS DISTINCT FROM OLD.content OR NEW.version IS DISTINCT FROM OLD.version \
          OR NEW.template_id IS DISTINCT FROM OLD.template_id THEN \
         RAISE EXCEPTION 'published template versions are immutable'; \
       END IF; \
       RETURN NEW; \
     END $$",
    "CREATE TRIGGER template_versions_immutable BEFORE UPDATE ON template_versions \
     FOR EACH ROW EXECUTE FUNCTION template_versions_immutable()",
];

/// SQLite: an FTS5 index over title and summary, kept in step by triggers. It keys rows by the
/// template ID (not `rowid`, which VACUUM may renumber on tables without an integer key).
const SQLITE_SEARCH_AND_IMMUTABILITY: &[&str] = &[
    "CREATE VIRTUAL TABLE templates_fts USING fts5(template_id UNINDEXED, title, summary, \
     tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER templates_fts_insert AFTER INSERT ON templates BEGIN \
       INSERT INTO templates_fts(template_id, title, summary) VALUES (new.id, new.title, new.summary); \
     END",
    "CREATE TRIGGER templates_fts_delete AFTER DELETE ON templates BEGIN \
       DELETE FROM templates_fts WHERE template_id = old.id; \
     END",
    "CREATE TRIGGER templates_fts_update AFTER UPDATE OF title, summary ON templates BEGIN \
       DELETE FROM templates_fts WHERE template_id = old.id; \
       INSERT INTO templates_fts(template_id, title, summary) VALUES (new.id, new.title, new.summary); \
     END",
    "CREATE TRIGGER template_versions_immutable BEFORE UPDATE OF content, version, template_id \
     ON template_versions BEGIN \
       SELECT RAISE(ABORT, 'published template versions are immutable'); \
     END",
];
