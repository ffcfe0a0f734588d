//! Database migrations: append-only history, one file per change. Never edit an applied one.
//!
//! On PostgreSQL the migrations also own the security model: the non-owner role [`APP_ROLE`] that
//! serves requests, its grants, and row-level security on every tenant table (see [`postgres`]).

pub use sea_orm_migration::prelude::*;

mod indexes;
mod m20261123_000001_create_tenancy;
mod m20261123_000002_create_marketplace;
mod m20261123_000003_create_applications;
mod m20261123_000004_create_attachments;
mod m20261123_000005_create_appointments;
mod m20261123_000006_appointment_mail_holds_challenges;
mod m20261127_000007_create_payments;
mod m20261203_000008_outbox_row_level_security;
mod m20261203_000009_break_glass_grants;
mod m20261204_000010_service_search;
mod m20261205_000011_citizen_drafts_index;
mod m20261206_000012_citizen_assurance;
mod m20261206_000013_create_rate_limits;
mod m20261207_000014_fit_connect_sender;
pub mod postgres;

pub use m20261203_000008_outbox_row_level_security::OUTBOX_ROLE;

/// The PostgreSQL role requests run as. It owns nothing, so `FORCE ROW LEVEL SECURITY` binds it.
pub const APP_ROLE: &str = "amtsplatz_app";

/// The transaction-local setting that names the tenant a request acts for; every row-level
/// security policy compares `tenant_id` with it (see [`postgres::enable_tenant_rls`]).
pub const TENANT_SETTING: &str = "app.tenant_id";

/// All migrations, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_tenancy::Migration),
            Box::new(m20261123_000002_create_marketplace::Migration),
            Box::new(m20261123_000003_create_applications::Migration),
            Box::new(m20261123_000004_create_attachments::Migration),
            Box::new(m20261123_000005_create_appointments::Migration),
            Box::new(m20261123_000006_appointment_mail_holds_challenges::Migration),
            Box::new(m20261127_000007_create_payments::Migration),
            Box::new(m20261203_000008_outbox_row_level_security::Migration),
            Box::new(m20261203_000009_break_glass_grants::Migration),
            Box::new(m20261204_000010_service_search::Migration),
            Box::new(m20261205_000011_citizen_drafts_index::Migration),
            Box::new(m20261206_000012_citizen_assurance::Migration),
            Box::new(m20261206_000013_create_rate_limits::Migration),
            Box::new(m20261207_000014_fit_connect_sender::Migration),
        ]
    }
}
