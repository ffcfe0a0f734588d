//! Appointments, second step: mail with files, short holds, and booking challenges.
//!
//! - `outbox.attachments` (files sent with a mail, e.g. the booking's `.ics`) and `outbox.topic`
//!   (what a mail is about, e.g. `booking-reminder:<id>`), so a reminder queued for later can be
//!   withdrawn when the booking is moved or cancelled.
//! - `bookings.hold_expires_at`: a slot held for a citizen while they finish the form or payment
//!   (state `held`); it stops counting against capacity once expired.
//! - `appointment_offers.hold_minutes` (0: no holds) and `challenge_bits` (0: no proof of work).
//! - `spent_challenges`: each solved booking challenge is spent once (inserted in the booking's
//!   transaction; a replay finds it).
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Attachments,
    Topic,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    HoldExpiresAt,
}

#[derive(DeriveIden)]
enum AppointmentOffers {
    Table,
    HoldMinutes,
    ChallengeBits,
}

#[derive(DeriveIden)]
enum SpentChallenges {
    Table,
    TenantId,
    Digest,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite adds one column per ALTER TABLE.
        for column in [
            json_binary_null(Outbox::Attachments),
            string_null(Outbox::Topic),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .add_column(column)
                        .take(),
                )
                .await?;
        }
        indexes::create_all(manager, "outbox", &[("outbox_topic_idx", &["topic"])]).await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Bookings::Table)
                    .add_column(timestamp_with_time_zone_null(Bookings::HoldExpiresAt))
                    .take(),
            )
            .await?;
        for column in [
            integer(AppointmentOffers::HoldMinutes).default(0).take(),
            integer(AppointmentOffers::ChallengeBits).default(0).take(),
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AppointmentOffers::Table)
                        .add_column(column)
                        .take(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table(SpentChallenges::Table)
                    .col(uuid(SpentChallenges::TenantId))
                    .col(string(SpentChallenges::Digest))
                    .col(timestamp_with_time_zone(SpentChallenges::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .col(SpentChallenges::TenantId)
                            .col(SpentChallenges::Digest),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("spent_challenges_tenant_id_fkey")
                            .from(SpentChallenges::Table, SpentChallenges::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "spent_challenges",
            &[("spent_challenges_expires_idx", &["expires_at"])],
        )
        .await?;
        postgres::grant(manager, "spent_challenges", "SELECT, INSERT, DELETE").await?;
        postgres::enable_tenant_rls(manager, "spent_challenges").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(SpentChallenges::Table).to_owned())
            .await?;
        for column in [
            AppointmentOffers::ChallengeBits,
            AppointmentOffers::HoldMinutes,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(AppointmentOffers::Table)
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table(Bookings::Table)
                    .drop_column(Bookings::HoldExpiresAt)
                    .take(),
            )
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("outbox_topic_idx")
                    .table(Outbox::Table)
                    .to_owned(),
            )
            .await?;
        for column in [Outbox::Topic, Outbox::Attachments] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Outbox::Table)
                        .drop_column(column)
                        .take(),
                )
                .await?;
        }
        Ok(())
    }
}
