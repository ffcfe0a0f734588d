//! Payments (DESIGN.md 7): fees paid online (Stripe Checkout on the tenant's connected account)
//! or at the counter, refunds, and the provider events already applied.
//!
//! - `payment_accounts`: per tenant and provider, the account to charge on (Stripe Connect
//!   `acct_…`), the webhook signing secret (encrypted by the server, never stored in plain text)
//!   and where Checkout sends the citizen back.
//! - `payments`: one attempt to pay an application's fees, with its state (`pending`, `paid`,
//!   `failed`, `expired`, `refunded`, `partially_refunded`) and the provider's ids.
//! - `payment_refunds`: money given back, each with its reason and the provider's refund id.
//! - `provider_events`: each webhook event id, inserted in the same transaction as its effect,
//!   so a redelivered event finds it and changes nothing.
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes::{self, unique};
use crate::m20261123_000001_create_tenancy::tenant_fk;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum PaymentAccounts {
    Table,
    TenantId,
    Provider,
    AccountId,
    WebhookSecret,
    SuccessUrl,
    CancelUrl,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Payments {
    Table,
    Id,
    TenantId,
    ApplicationId,
    Provider,
    State,
    AmountCents,
    RefundedCents,
    Currency,
    CheckoutSessionId,
    ProviderPaymentId,
    CheckoutUrl,
    ExpiresAt,
    CreatedBy,
    ConfirmedBy,
    CreatedAt,
    UpdatedAt,
    PaidAt,
}

#[derive(DeriveIden)]
enum PaymentRefunds {
    Table,
    Id,
    TenantId,
    PaymentId,
    AmountCents,
    Reason,
    ProviderRefundId,
    CreatedBy,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ProviderEvents {
    Table,
    TenantId,
    Provider,
    EventId,
    Kind,
    PaymentId,
    ReceivedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(PaymentAccounts::Table)
                    .col(uuid(PaymentAccounts::TenantId))
                    .col(string(PaymentAccounts::Provider))
                    .col(string(PaymentAccounts::AccountId))
                    .col(text_null(PaymentAccounts::WebhookSecret))
                    .col(text(PaymentAccounts::SuccessUrl))
                    .col(text(PaymentAccounts::CancelUrl))
                    .col(timestamp_with_time_zone(PaymentAccounts::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .col(PaymentAccounts::TenantId)
                            .col(PaymentAccounts::Provider),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("payment_accounts_tenant_id_fkey")
                            .from(PaymentAccounts::Table, PaymentAccounts::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Payments::Table)
                    .col(pk_uuid(Payments::Id))
                    .col(uuid(Payments::TenantId))
                    .col(uuid(Payments::ApplicationId))
                    .col(string(Payments::Provider))
                    .col(string(Payments::State))
                    .col(big_integer(Payments::AmountCents))
                    .col(big_integer(Payments::RefundedCents))
                    .col(string(Payments::Currency))
                    .col(string_null(Payments::CheckoutSessionId))
                    .col(string_null(Payments::ProviderPaymentId))
                    .col(text_null(Payments::CheckoutUrl))
                    .col(timestamp_with_time_zone_null(Payments::ExpiresAt))
                    .col(string(Payments::CreatedBy))
                    .col(string_null(Payments::ConfirmedBy))
                    .col(timestamp_with_time_zone(Payments::CreatedAt))
                    .col(timestamp_with_time_zone(Payments::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Payments::PaidAt))
                    .foreign_key(&mut tenant_fk(
                        "payments_application_fkey",
                        Payments::Table,
                        Payments::TenantId,
                        Payments::ApplicationId,
                        Alias::new("applications"),
                    ))
                    .index(&mut unique(
                        "payments_tenant_id_id_key",
                        &["tenant_id", "id"],
                    ))
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "payments",
            &[
                ("payments_application_idx", &["tenant_id", "application_id"]),
                (
                    "payments_session_idx",
                    &["tenant_id", "checkout_session_id"],
                ),
                ("payments_paid_at_idx", &["tenant_id", "paid_at"]),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(PaymentRefunds::Table)
                    .col(pk_uuid(PaymentRefunds::Id))
                    .col(uuid(PaymentRefunds::TenantId))
                    .col(uuid(PaymentRefunds::PaymentId))
                    .col(big_integer(PaymentRefunds::AmountCents))
                    .col(text(PaymentRefunds::Reason))
                    .col(string_null(PaymentRefunds::ProviderRefundId))
                    .col(string(PaymentRefunds::CreatedBy))
                    .col(timestamp_with_time_zone(PaymentRefunds::CreatedAt))
                    .foreign_key(&mut tenant_fk(
                        "payment_refunds_payment_fkey",
                        PaymentRefunds::Table,
                        PaymentRefunds::TenantId,
                        PaymentRefunds::PaymentId,
                        Payments::Table,
                    ))
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "payment_refunds",
            &[
                ("payment_refunds_payment_idx", &["tenant_id", "payment_id"]),
                ("payment_refunds_created_idx", &["tenant_id", "created_at"]),
            ],
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(ProviderEvents::Table)
                    .col(uuid(ProviderEvents::TenantId))
                    .col(string(ProviderEvents::Provider))
                    .col(string(ProviderEvents::EventId))
                    .col(string(ProviderEvents::Kind))
                    .col(uuid_null(ProviderEvents::PaymentId))
                    .col(timestamp_with_time_zone(ProviderEvents::ReceivedAt))
                    .primary_key(
                        Index::create()
                            .col(ProviderEvents::TenantId)
                            .col(ProviderEvents::Provider)
                            .col(ProviderEvents::EventId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("provider_events_tenant_id_fkey")
                            .from(ProviderEvents::Table, ProviderEvents::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;

        postgres::tenant_tables(
            manager,
            &[
                ("payment_accounts", "SELECT, INSERT, UPDATE, DELETE"),
                ("payments", "SELECT, INSERT, UPDATE"),
                ("payment_refunds", "SELECT, INSERT"),
                ("provider_events", "SELECT, INSERT"),
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(
            manager,
            &[
                "provider_events",
                "payment_refunds",
                "payments",
                "payment_accounts",
            ],
        )
        .await?;
        Ok(())
    }
}
