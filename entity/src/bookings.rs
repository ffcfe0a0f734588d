//! An appointment: a service at a location, on one resource, from `start_at` to `end_at`
//! (blocking the resource until `blocked_until`, which includes the buffer).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub location_id: Uuid,
    pub resource_id: Uuid,
    pub application_id: Option<Uuid>,
    pub start_at: DateTimeUtc,
    pub end_at: DateTimeUtc,
    pub blocked_until: DateTimeUtc,
    /// `held` (a short hold, see `hold_expires_at`), `booked`, `cancelled` or `no_show`.
    pub state: crate::states::BookingState,
    pub contact_name: String,
    /// Normalized (trimmed, lower case): per-contact limits count by it.
    pub contact_email: String,
    /// SHA-256 of the cancel token (the token itself is shown once).
    pub cancel_hash: String,
    pub created_at: DateTimeUtc,
    pub cancelled_at: Option<DateTimeUtc>,
    /// For `held`: when the hold lapses and the place is free again.
    pub hold_expires_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
