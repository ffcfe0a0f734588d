//! Break-glass grants (issue 23, item 11): a platform administrator reads citizens' personal
//! data of a tenant (applications, drafts, files, messages, payments, bookings) only while a
//! grant for that tenant is open. Each grant names who opened it, why and until when; opening
//! it and every read under it are written to the tenant's audit log. (`closed_at` is for
//! ending a grant before it expires.)
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum BreakGlassGrants {
    Table,
    Id,
    TenantId,
    AdminId,
    Reason,
    CreatedAt,
    ExpiresAt,
    ClosedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(BreakGlassGrants::Table)
                    .col(pk_uuid(BreakGlassGrants::Id))
                    .col(uuid(BreakGlassGrants::TenantId))
                    .col(uuid(BreakGlassGrants::AdminId))
                    .col(text(BreakGlassGrants::Reason))
                    .col(timestamp_with_time_zone(BreakGlassGrants::CreatedAt))
                    .col(timestamp_with_time_zone(BreakGlassGrants::ExpiresAt))
                    .col(timestamp_with_time_zone_null(BreakGlassGrants::ClosedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("break_glass_grants_tenant_id_fkey")
                            .from(BreakGlassGrants::Table, BreakGlassGrants::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("break_glass_grants_admin_id_fkey")
                            .from(BreakGlassGrants::Table, BreakGlassGrants::AdminId)
                            .to(Alias::new("platform_admins"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "break_glass_grants",
            &[(
                "break_glass_grants_open_idx",
                &["tenant_id", "admin_id", "expires_at"],
            )],
        )
        .await?;
        // No DELETE: a grant stays on record once opened.
        postgres::grant(manager, "break_glass_grants", "SELECT, INSERT, UPDATE").await?;
        postgres::enable_tenant_rls(manager, "break_glass_grants").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(manager, &["break_glass_grants"]).await
    }
}
