//! A place where citizens come for appointments (Bürgerbüro, Rathaus), with its opening calendar.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "locations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Stable key, unique per tenant (`rathaus`).
    pub key: String,
    pub name: String,
    pub address: String,
    /// IANA time zone of the opening hours (`Europe/Berlin`).
    pub time_zone: String,
    /// Weekly hours: `[{"weekday": "mon", "opens": "08:00", "closes": "12:00"}, …]`.
    pub hours: Json,
    /// Dated exceptions: `[{"date": "2026-12-24", "closed": true, "reason": "…"}, {"date": …,
    /// "hours": [{"opens": …, "closes": …}]}]`.
    pub exceptions: Json,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
