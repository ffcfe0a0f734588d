//! A service bookable at a location, and how.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "appointment_offers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub location_id: Uuid,
    pub duration_minutes: i32,
    /// Kept free after each appointment.
    pub buffer_minutes: i32,
    /// Bookings close this long before the start.
    pub min_notice_minutes: i32,
    /// Bookable this many days ahead.
    pub horizon_days: i32,
    /// Book only with a submitted application of the service.
    pub requires_application: bool,
    /// Open (future, not cancelled) bookings one contact may hold for the service.
    pub max_open_per_contact: i32,
    /// How long a slot may be held before booking; 0: no holds.
    pub hold_minutes: i32,
    /// Leading zero bits of the proof of work a booking or hold must bring; 0: none.
    pub challenge_bits: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::tenant_services::Entity",
        from = "Column::ServiceId",
        to = "super::tenant_services::Column::Id"
    )]
    Service,
    #[sea_orm(
        belongs_to = "super::locations::Entity",
        from = "Column::LocationId",
        to = "super::locations::Column::Id"
    )]
    Location,
}

impl Related<super::tenant_services::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Service.def()
    }
}

impl Related<super::locations::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Location.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
