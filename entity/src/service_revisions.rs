//! Every accepted change of a tenant service, numbered from 1. Applications pin one forever.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "service_revisions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    pub revision: i64,
    pub upstream_version_id: Option<Uuid>,
    pub overlay: Json,
    /// The resolved content in force from this revision on.
    pub content: Json,
    /// What made it (`fork 1.0.0`, `customize`, `update 1.0.0 -> 1.1.0`, `rollback to 2`).
    pub reason: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
