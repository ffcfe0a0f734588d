//! Tenancy: tenants, departments, staff, roles, memberships, platform admins, refresh tokens, audit log.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes;

use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
    Slug,
    Name,
    Ags,
    TimeZone,
    Branding,
    Settings,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Departments {
    Table,
    Id,
    TenantId,
    Key,
    Name,
    Email,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffUsers {
    Table,
    Id,
    TenantId,
    Email,
    DisplayName,
    PasswordHash,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum StaffRoles {
    Table,
    Id,
    TenantId,
    UserId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum StaffMemberships {
    Table,
    Id,
    TenantId,
    UserId,
    DepartmentId,
    Role,
    CreatedAt,
}

#[derive(DeriveIden)]
enum PlatformAdmins {
    Table,
    Id,
    Email,
    DisplayName,
    PasswordHash,
    CreatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    TenantId,
    SubjectKind,
    SubjectId,
    FamilyId,
    TokenHash,
    ExpiresAt,
    UsedAt,
    RevokedAt,
    CreatedAt,
}

#[derive(DeriveIden)]
enum AuditLog {
    Table,
    Id,
    TenantId,
    Actor,
    Action,
    Target,
    Details,
    At,
}

/// A foreign key from `(tenant_id, col)` to `(tenant_id, id)` of `to`: a row can only point at
/// rows of its own tenant, enforced by the database.
pub(crate) fn tenant_fk(
    name: &str,
    from: impl IntoIden + 'static,
    tenant_col: impl IntoIden + 'static,
    col: impl IntoIden + 'static,
    to: impl IntoIden + 'static,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(name)
        .from(from, (tenant_col, col))
        .to(to, (Alias::new("tenant_id"), Alias::new("id")))
        .on_delete(ForeignKeyAction::Cascade)
        .take()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        postgres::ensure_app_role(manager).await?;

        manager
            .create_table(
                Table::create()
                    .table(Tenants::Table)
                    .col(pk_uuid(Tenants::Id))
                    .col(string(Tenants::Slug))
                    .col(string(Tenants::Name))
                    .col(string(Tenants::Ags))
                    .col(string(Tenants::TimeZone))
                    .col(json_binary(Tenants::Branding))
                    .col(json_binary(Tenants::Settings))
                    .col(string(Tenants::Status))
                    .col(timestamp_with_time_zone(Tenants::CreatedAt))
                    .col(timestamp_with_time_zone(Tenants::UpdatedAt))
                    .index(
                        Index::create()
                            .name("tenants_slug_key")
                            .col(Tenants::Slug)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Departments::Table)
                    .col(pk_uuid(Departments::Id))
                    .col(uuid(Departments::TenantId))
                    .col(string(Departments::Key))
                    .col(string(Departments::Name))
                    .col(string_null(Departments::Email))
                    .col(timestamp_with_time_zone(Departments::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("departments_tenant_id_fkey")
                            .from(Departments::Table, Departments::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .index(
                        Index::create()
                            .name("departments_tenant_id_key_key")
                            .col(Departments::TenantId)
                            .col(Departments::Key)
                            .unique(),
                    )
                    .index(
                        Index::create()
                            .name("departments_tenant_id_id_key")
                            .col(Departments::TenantId)
                            .col(Departments::Id)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StaffUsers::Table)
                    .col(pk_uuid(StaffUsers::Id))
                    .col(uuid(StaffUsers::TenantId))
                    .col(string(StaffUsers::Email))
                    .col(string(StaffUsers::DisplayName))
                    .col(string_null(StaffUsers::PasswordHash))
                    .col(string(StaffUsers::Status))
                    .col(timestamp_with_time_zone(StaffUsers::CreatedAt))
                    .col(timestamp_with_time_zone(StaffUsers::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("staff_users_tenant_id_fkey")
                            .from(StaffUsers::Table, StaffUsers::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .index(
                        Index::create()
                            .name("staff_users_tenant_id_email_key")
                            .col(StaffUsers::TenantId)
                            .col(StaffUsers::Email)
                            .unique(),
                    )
                    .index(
                        Index::create()
                            .name("staff_users_tenant_id_id_key")
                            .col(StaffUsers::TenantId)
                            .col(StaffUsers::Id)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StaffRoles::Table)
                    .col(pk_uuid(StaffRoles::Id))
                    .col(uuid(StaffRoles::TenantId))
                    .col(uuid(StaffRoles::UserId))
                    .col(string(StaffRoles::Role))
                    .col(timestamp_with_time_zone(StaffRoles::CreatedAt))
                    .foreign_key(&mut tenant_fk(
                        "staff_roles_user_fkey",
                        StaffRoles::Table,
                        StaffRoles::TenantId,
                        StaffRoles::UserId,
                        StaffUsers::Table,
                    ))
                    .index(
                        Index::create()
                            .name("staff_roles_tenant_id_user_id_role_key")
                            .col(StaffRoles::TenantId)
                            .col(StaffRoles::UserId)
                            .col(StaffRoles::Role)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(StaffMemberships::Table)
                    .col(pk_uuid(StaffMemberships::Id))
                    .col(uuid(StaffMemberships::TenantId))
                    .col(uuid(StaffMemberships::UserId))
                    .col(uuid(StaffMemberships::DepartmentId))
                    .col(string(StaffMemberships::Role))
                    .col(timestamp_with_time_zone(StaffMemberships::CreatedAt))
                    .foreign_key(&mut tenant_fk(
                        "staff_memberships_user_fkey",
                        StaffMemberships::Table,
                        StaffMemberships::TenantId,
                        StaffMemberships::UserId,
                        StaffUsers::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "staff_memberships_department_fkey",
                        StaffMemberships::Table,
                        StaffMemberships::TenantId,
                        StaffMemberships::DepartmentId,
                        Departments::Table,
                    ))
                    .index(
                        Index::create()
                            .name("staff_memberships_tenant_id_user_id_department_id_key")
                            .col(StaffMemberships::TenantId)
                            .col(StaffMemberships::UserId)
                            .col(StaffMemberships::DepartmentId)
                            .unique(),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("staff_memberships_tenant_id_department_id_idx")
                    .table(StaffMemberships::Table)
                    .col(StaffMemberships::TenantId)
                    .col(StaffMemberships::DepartmentId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(PlatformAdmins::Table)
                    .col(pk_uuid(PlatformAdmins::Id))
                    .col(string(PlatformAdmins::Email))
                    .col(string(PlatformAdmins::DisplayName))
                    .col(string(PlatformAdmins::PasswordHash))
                    .col(timestamp_with_time_zone(PlatformAdmins::CreatedAt))
                    .index(
                        Index::create()
                            .name("platform_admins_email_key")
                            .col(PlatformAdmins::Email)
                            .unique(),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(pk_uuid(RefreshTokens::Id))
                    .col(uuid_null(RefreshTokens::TenantId))
                    .col(string(RefreshTokens::SubjectKind))
                    .col(uuid(RefreshTokens::SubjectId))
                    .col(uuid(RefreshTokens::FamilyId))
                    .col(string(RefreshTokens::TokenHash))
                    .col(timestamp_with_time_zone(RefreshTokens::ExpiresAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::UsedAt))
                    .col(timestamp_with_time_zone_null(RefreshTokens::RevokedAt))
                    .col(timestamp_with_time_zone(RefreshTokens::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("refresh_tokens_tenant_id_fkey")
                            .from(RefreshTokens::Table, RefreshTokens::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_family_id_idx")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AuditLog::Table)
                    .col(pk_uuid(AuditLog::Id))
                    .col(uuid(AuditLog::TenantId))
                    .col(string(AuditLog::Actor))
                    .col(string(AuditLog::Action))
                    .col(string(AuditLog::Target))
                    .col(json_binary(AuditLog::Details))
                    .col(timestamp_with_time_zone(AuditLog::At))
                    .foreign_key(
                        ForeignKey::create()
                            .name("audit_log_tenant_id_fkey")
                            .from(AuditLog::Table, AuditLog::TenantId)
                            .to(Tenants::Table, Tenants::Id),
                    )
                    .take(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_log_tenant_id_id_idx")
                    .table(AuditLog::Table)
                    .col(AuditLog::TenantId)
                    .col(AuditLog::Id)
                    .take(),
            )
            .await?;

        // The tenant directory and platform admins are read before any tenant is known.
        postgres::grant(manager, "tenants", "SELECT, INSERT, UPDATE").await?;
        postgres::grant(manager, "platform_admins", "SELECT, INSERT, UPDATE").await?;
        for table in [
            "departments",
            "staff_users",
            "staff_roles",
            "staff_memberships",
        ] {
            postgres::grant(manager, table, "SELECT, INSERT, UPDATE, DELETE").await?;
            postgres::enable_tenant_rls(manager, table).await?;
        }
        postgres::grant(manager, "refresh_tokens", "SELECT, INSERT, UPDATE").await?;
        postgres::enable_nullable_tenant_rls(manager, "refresh_tokens").await?;
        // Append-only: the request role may add and read audit rows, never change them.
        postgres::grant(manager, "audit_log", "SELECT, INSERT").await?;
        postgres::enable_tenant_rls(manager, "audit_log").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(
            manager,
            &[
                "audit_log",
                "refresh_tokens",
                "platform_admins",
                "staff_memberships",
                "staff_roles",
                "staff_users",
                "departments",
                "tenants",
            ],
        )
        .await?;
        Ok(())
    }
}
