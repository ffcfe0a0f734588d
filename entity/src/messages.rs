//! The mailbox of an application: messages between citizen and staff, and staff-only notes.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    /// `citizen` or `staff`.
    pub sender: String,
    pub sender_actor: String,
    pub sender_name: Option<String>,
    pub body: String,
    /// A staff-only note: citizens never see it.
    pub internal: bool,
    pub created_at: DateTimeUtc,
    /// When the other side first read it (read receipt).
    pub read_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
