//! Published template versions. Content and version never change once published.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "template_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub template_id: Uuid,
    /// Semantic version (`1.2.0`); major/minor/patch are kept for ordering.
    pub version: String,
    pub major: i64,
    pub minor: i64,
    pub patch: i64,
    /// The whole service (form, workflow, routing, fees, ...), canonical JSON.
    pub content: Json,
    pub changelog: String,
    /// `published` or `deprecated`.
    pub status: crate::states::VersionStatus,
    pub deprecation_note: Option<String>,
    pub published_by: Option<Uuid>,
    pub published_at: DateTimeUtc,
    pub deprecated_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
