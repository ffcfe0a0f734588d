//! Appointments: locations with their opening calendar (weekly hours and dated exceptions, kept
//! as JSON: the calendar is read whole), booking resources (counters, desks) with a capacity,
//! offers (a service bookable at a location: duration, buffer, notice, horizon), and bookings.
//!
//! A booking locks its location's resource rows (PostgreSQL `FOR UPDATE`; SQLite write
//! transactions are exclusive), counts what overlaps, and inserts only if a resource has room:
//! capacity can never be exceeded, whatever runs concurrently.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::indexes::{self, unique};
use crate::m20261123_000001_create_tenancy::tenant_fk;
use crate::postgres;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum TenantServices {
    Table,
}

#[derive(DeriveIden)]
enum Applications {
    Table,
}

#[derive(DeriveIden)]
enum Locations {
    Table,
    Id,
    TenantId,
    Key,
    Name,
    Address,
    TimeZone,
    Hours,
    Exceptions,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum BookingResources {
    Table,
    Id,
    TenantId,
    LocationId,
    Key,
    Name,
    Capacity,
    Active,
}

#[derive(DeriveIden)]
enum AppointmentOffers {
    Table,
    Id,
    TenantId,
    ServiceId,
    LocationId,
    DurationMinutes,
    BufferMinutes,
    MinNoticeMinutes,
    HorizonDays,
    RequiresApplication,
    MaxOpenPerContact,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    Id,
    TenantId,
    ServiceId,
    LocationId,
    ResourceId,
    ApplicationId,
    StartAt,
    EndAt,
    BlockedUntil,
    State,
    ContactName,
    ContactEmail,
    CancelHash,
    CreatedAt,
    CancelledAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Locations::Table)
                    .col(pk_uuid(Locations::Id))
                    .col(uuid(Locations::TenantId))
                    .col(string(Locations::Key))
                    .col(string(Locations::Name))
                    .col(text(Locations::Address))
                    .col(string(Locations::TimeZone))
                    .col(json_binary(Locations::Hours))
                    .col(json_binary(Locations::Exceptions))
                    .col(timestamp_with_time_zone(Locations::CreatedAt))
                    .col(timestamp_with_time_zone(Locations::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("locations_tenant_id_fkey")
                            .from(Locations::Table, Locations::TenantId)
                            .to(Alias::new("tenants"), Alias::new("id"))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .index(&mut unique(
                        "locations_tenant_id_key_key",
                        &["tenant_id", "key"],
                    ))
                    .index(&mut unique(
                        "locations_tenant_id_id_key",
                        &["tenant_id", "id"],
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(BookingResources::Table)
                    .col(pk_uuid(BookingResources::Id))
                    .col(uuid(BookingResources::TenantId))
                    .col(uuid(BookingResources::LocationId))
                    .col(string(BookingResources::Key))
                    .col(string(BookingResources::Name))
                    .col(integer(BookingResources::Capacity))
                    .col(boolean(BookingResources::Active))
                    .foreign_key(&mut tenant_fk(
                        "booking_resources_location_fkey",
                        BookingResources::Table,
                        BookingResources::TenantId,
                        BookingResources::LocationId,
                        Locations::Table,
                    ))
                    .index(&mut unique(
                        "booking_resources_location_key_key",
                        &["tenant_id", "location_id", "key"],
                    ))
                    .index(&mut unique(
                        "booking_resources_tenant_id_id_key",
                        &["tenant_id", "id"],
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(AppointmentOffers::Table)
                    .col(pk_uuid(AppointmentOffers::Id))
                    .col(uuid(AppointmentOffers::TenantId))
                    .col(uuid(AppointmentOffers::ServiceId))
                    .col(uuid(AppointmentOffers::LocationId))
                    .col(integer(AppointmentOffers::DurationMinutes))
                    .col(integer(AppointmentOffers::BufferMinutes))
                    .col(integer(AppointmentOffers::MinNoticeMinutes))
                    .col(integer(AppointmentOffers::HorizonDays))
                    .col(boolean(AppointmentOffers::RequiresApplication))
                    .col(integer(AppointmentOffers::MaxOpenPerContact))
                    .foreign_key(&mut tenant_fk(
                        "appointment_offers_service_fkey",
                        AppointmentOffers::Table,
                        AppointmentOffers::TenantId,
                        AppointmentOffers::ServiceId,
                        TenantServices::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "appointment_offers_location_fkey",
                        AppointmentOffers::Table,
                        AppointmentOffers::TenantId,
                        AppointmentOffers::LocationId,
                        Locations::Table,
                    ))
                    .index(&mut unique(
                        "appointment_offers_service_location_key",
                        &["tenant_id", "service_id", "location_id"],
                    ))
                    .take(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(pk_uuid(Bookings::Id))
                    .col(uuid(Bookings::TenantId))
                    .col(uuid(Bookings::ServiceId))
                    .col(uuid(Bookings::LocationId))
                    .col(uuid(Bookings::ResourceId))
                    .col(uuid_null(Bookings::ApplicationId))
                    .col(timestamp_with_time_zone(Bookings::StartAt))
                    .col(timestamp_with_time_zone(Bookings::EndAt))
                    .col(timestamp_with_time_zone(Bookings::BlockedUntil))
                    .col(string(Bookings::State))
                    .col(string(Bookings::ContactName))
                    .col(string(Bookings::ContactEmail))
                    .col(string(Bookings::CancelHash))
                    .col(timestamp_with_time_zone(Bookings::CreatedAt))
                    .col(timestamp_with_time_zone_null(Bookings::CancelledAt))
                    .foreign_key(&mut tenant_fk(
                        "bookings_service_fkey",
                        Bookings::Table,
                        Bookings::TenantId,
                        Bookings::ServiceId,
                        TenantServices::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "bookings_resource_fkey",
                        Bookings::Table,
                        Bookings::TenantId,
                        Bookings::ResourceId,
                        BookingResources::Table,
                    ))
                    .foreign_key(&mut tenant_fk(
                        "bookings_application_fkey",
                        Bookings::Table,
                        Bookings::TenantId,
                        Bookings::ApplicationId,
                        Applications::Table,
                    ))
                    .index(&mut unique("bookings_cancel_hash_key", &["cancel_hash"]))
                    .take(),
            )
            .await?;
        indexes::create_all(
            manager,
            "bookings",
            &[
                (
                    "bookings_resource_start_idx",
                    &["tenant_id", "resource_id", "start_at"],
                ),
                (
                    "bookings_location_start_idx",
                    &["tenant_id", "location_id", "start_at"],
                ),
            ],
        )
        .await?;

        for table in ["locations", "booking_resources", "appointment_offers"] {
            postgres::grant(manager, table, "SELECT, INSERT, UPDATE, DELETE").await?;
            postgres::enable_tenant_rls(manager, table).await?;
        }
        postgres::grant(manager, "bookings", "SELECT, INSERT, UPDATE").await?;
        postgres::enable_tenant_rls(manager, "bookings").await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        indexes::drop_tables(
            manager,
            &[
                "bookings",
                "appointment_offers",
                "booking_resources",
                "locations",
            ],
        )
        .await?;
        Ok(())
    }
}
