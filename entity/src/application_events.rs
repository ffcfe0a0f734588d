//! The timeline of an application: append-only (the database refuses updates).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "application_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    /// `submitted`, `transitioned`, `task_completed`, `message`, `information_provided`, …
    pub kind: String,
    /// `citizen:<subject>`, `staff:<id>`, `anonymous`, `system:<job>`.
    pub actor: String,
    pub actor_name: Option<String>,
    pub from_state: Option<String>,
    pub to_state: Option<String>,
    pub comment: Option<String>,
    pub details: Option<Json>,
    /// Seen by staff only.
    pub internal: bool,
    pub at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
