//! A tenant's services: forks of a template version plus a local overlay, or purely local.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "tenant_services")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    /// Unique per tenant; citizens find the service by it.
    pub slug: String,
    /// German title of the current revision, for listing.
    pub title: String,
    /// German summary of the current revision, for listing and search.
    pub summary: String,
    /// Category key of the current revision (`steuern`, `meldewesen`, …).
    pub category: String,
    pub template_id: Option<Uuid>,
    /// The pinned upstream version (base of the overlay).
    pub upstream_version_id: Option<Uuid>,
    /// Local changes relative to the pinned version (a keyed diff).
    pub overlay: Json,
    pub current_revision: i64,
    /// `draft`, `live` or `retired`.
    pub status: crate::states::ServiceStatus,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
