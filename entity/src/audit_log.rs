//! Append-only audit log, written in the same transaction as the change it records.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_log")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// `staff:<id>`, `platform:<id>` or `system:<what>`.
    pub actor: String,
    /// Dotted verb, e.g. `department.create`.
    pub action: String,
    /// What was changed, e.g. `department:<id>`.
    pub target: String,
    pub details: Json,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
