//! FIT-Connect hand-over (issue 21, point 2).
//!
//! - `fit_connect_handovers`: per tenant and service, the destination its applications go to
//!   (destination id, LeiKa key, the submission schema the destination expects) and the API
//!   client it sends as (client id, and the client secret sealed by the server like the
//!   payment webhook secret: never stored in plain text).
//! - `fit_connect_submissions`: per application, where its hand-over stands: the submission and
//!   case ids once created (a retry resumes, never creates a second), the authentication tags
//!   of what was sent (compared with the destination's acknowledgement), the state (`pending`,
//!   `created`, `submitted`, `accepted`, `rejected`, `failed`), the last error and the
//!   destination's problems.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes;
use crate::m20261123_000001_create_tenancy::tenant_fk;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum FitConnectHandovers {
    Table,
    TenantId,
    ServiceId,
    DestinationId,
    LeikaKey,
    SchemaUri,
    ClientId,
    ClientSecret,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum FitConnectSubmissions {
    Table,
    TenantId,
    ApplicationId,
    ServiceId,
    DestinationId,
    SubmissionId,
    CaseId,
    State,
    AuthenticationTags,
    Problems,
    LastError,
    CreatedAt,
    UpdatedAt,
    SubmittedAt,
    DecidedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(FitConnectHandovers::Table)
                    .col(uuid(FitConnectHandovers::TenantId))
                    .col(uuid(FitConnectHandovers::ServiceId))
                    .col(uuid(FitConnectHandovers::DestinationId))
                    .col(string(FitConnectHandovers::LeikaKey))
                    .col(text(FitConnectHandovers::SchemaUri))
                    .col(string(FitConnectHandovers::ClientId))
                    // Sealed (base64 nonce + ciphertext), bound to the tenant.
                    .col(text(FitConnectHandovers::ClientSecret))
                    .col(timestamp_with_time_zone(FitConnectHandovers::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(FitConnectHandovers::TenantId)
                            .col(FitConnectHandovers::ServiceId),
                    )
                    .foreign_key(&mut tenant_fk(
                        "fit_connect_handovers_service_fkey",
                        FitConnectHandovers::Table,
                        FitConnectHandovers::TenantId,
                        FitConnectHandovers::ServiceId,
                        Alias::new("tenant_services"),
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(FitConnectSubmissions::Table)
                    .col(uuid(FitConnectSubmissions::TenantId))
                    .col(uuid(FitConnectSubmissions::ApplicationId))
                    .col(uuid(FitConnectSubmissions::ServiceId))
                    .col(uuid(FitConnectSubmissions::DestinationId))
                    .col(uuid_null(FitConnectSubmissions::SubmissionId))
                    .col(uuid_null(FitConnectSubmissions::CaseId))
                    .col(string(FitConnectSubmissions::State))
                    .col(json_binary_null(FitConnectSubmissions::AuthenticationTags))
                    .col(json_binary_null(FitConnectSubmissions::Problems))
                    .col(text_null(FitConnectSubmissions::LastError))
                    .col(timestamp_with_time_zone(FitConnectSubmissions::CreatedAt))
                    .col(timestamp_with_time_zone(FitConnectSubmissions::UpdatedAt))
                    .col(timestamp_with_time_zone_null(
                        FitConnectSubmissions::SubmittedAt,
                    ))
                    .col(timestamp_with_time_zone_null(
                        FitConnectSubmissions::DecidedAt,
                    ))
                    .primary_key(
                        Index::create()
                            .col(FitConnectSubmissions::TenantId)
                            .col(FitConnectSubmissions::ApplicationId),
                    )
                    .foreign_key(&mut tenant_fk(
                        "fit_connect_submissions_application_fkey",
                        FitConnectSubmissions::Table,
                        FitConnectSubmissions::TenantId,
                        FitConnectSubmissions::ApplicationId,
                        Alias::new("applications"),
                    ))
                    .take(),
            )
            .await?;

        postgres::tenant_tables(
            manager,
            &[
                ("fit_connect_handovers", "SELECT, INSERT, UPDATE, DELETE"),
                ("fit_connect_submissions", "SELECT, INSERT, UPDATE, DELETE"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(
            manager,
            &["fit_connect_submissions", "fit_connect_handovers"],
        )
        .await?;
        Ok(())
    }
}
