//! Municipalities. The tenant directory itself is not tenant-scoped: requests look tenants up by slug.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenants")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    #[sea_orm(unique)]
    pub slug: String,
    pub name: String,
    /// Amtlicher Gemeindeschlüssel (8 digits).
    pub ags: String,
    /// IANA time zone, e.g. `Europe/Berlin`.
    pub time_zone: String,
    pub branding: Json,
    pub settings: Json,
    /// `active` or `suspended`.
    pub status: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
