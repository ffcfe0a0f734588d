//! Attachments: files citizens add to drafts and applications. The bytes live in object storage
//! under server-generated keys; this table is the truth about which objects exist for whom (the
//! storage sweeper deletes objects it does not name).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::m20261123_000001_create_tenancy::tenant_fk;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Drafts {
    Table,
    TenantId,
    Id,
}

#[derive(DeriveIden)]
enum Applications {
    Table,
}

#[derive(DeriveIden)]
enum Attachments {
    Table,
    Id,
    TenantId,
    ApplicationId,
    DraftId,
    DocumentKey,
    Filename,
    DeclaredType,
    ContentType,
    SizeBytes,
    Sha256,
    ObjectKey,
    State,
    ScanStatus,
    UploadedBy,
    UploadExpiresAt,
    CreatedAt,
    StoredAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // Attachments reference drafts by (tenant_id, id), like every tenant key.
        manager
            .create_index(
                Index::create()
                    .name("drafts_tenant_id_id_key")
                    .table(Drafts::Table)
                    .col(Drafts::TenantId)
                    .col(Drafts::Id)
                    .unique()
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Attachments::Table)
                    .col(pk_uuid(Attachments::Id))
                    .col(uuid(Attachments::TenantId))
                    .col(uuid_null(Attachments::ApplicationId))
                    .col(uuid_null(Attachments::DraftId))
                    .col(string_null(Attachments::DocumentKey))
                    .col(string(Attachments::Filename))
                    .col(string(Attachments::DeclaredType))
                    .col(string_null(Attachments::ContentType))
                    .col(big_integer(Attachments::SizeBytes))
                    .col(string_null(Attachments::Sha256))
                    .col(string(Attachments::ObjectKey))
                    .col(string(Attachments::State))
                    .col(string(Attachments::ScanStatus))
                    .col(string(Attachments::UploadedBy))
                    .col(timestamp_with_time_zone_null(Attachments::UploadExpiresAt))
                    .col(timestamp_with_time_zone(Attachments::CreatedAt))
                    .col(timestamp_with_time_zone_null(Attachments::StoredAt))
                    // Exactly one owner: a draft or an application.
                    .check(Expr::cust("(application_id IS NULL) <> (draft_id IS NULL)"))
                    .foreign_key(&mut tenant_fk(
                        "attachments_application_fkey",
                        Attachments::Table,
                        Attachments::TenantId,
                        Attachments::ApplicationId,
                        Applications::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "attachments_draft_fkey",
                        Attachments::Table,
                        Attachments::TenantId,
                        Attachments::DraftId,
                        Drafts::Table,
                    ))
                    .index(
                        Index::create()
                            .name("attachments_object_key_key")
                            .col(Attachments::ObjectKey)
                            .unique(),
                    )
                    .take(),
            )
            .await?;
        for (name, col) in [
            ("attachments_application_idx", Attachments::ApplicationId),
            ("attachments_draft_idx", Attachments::DraftId),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(Attachments::Table)
                        .col(Attachments::TenantId)
                        .col(col)
                        .take(),
                )
                .await?;
        }

        postgres::grant(manager, "attachments", "SELECT, INSERT, UPDATE, DELETE").await?;
        postgres::enable_tenant_rls(manager, "attachments").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Attachments::Table).take())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("drafts_tenant_id_id_key")
                    .table(Drafts::Table)
                    .to_owned(),
            )
            .await
    }
}
