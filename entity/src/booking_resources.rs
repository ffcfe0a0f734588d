//! A counter or desk at a location that serves `capacity` citizens at a time.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "booking_resources")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub location_id: Uuid,
    /// Stable key, unique per location (`schalter-1`).
    pub key: String,
    pub name: String,
    pub capacity: i32,
    /// Resources taken out of a location stay (their bookings refer to them) but take no more.
    pub active: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
