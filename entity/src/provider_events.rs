//! A payment provider's webhook event, applied once: inserted in the transaction of its effect.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "provider_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    /// The provider's event id (`evt_…`).
    #[sea_orm(primary_key, auto_increment = false)]
    pub event_id: String,
    /// The event type (`checkout.session.completed`).
    pub kind: String,
    /// The payment it concerned, if one of the tenant's.
    pub payment_id: Option<Uuid>,
    pub received_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
