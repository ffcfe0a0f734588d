//! Changes a forking tenant proposes back to the template author.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "template_proposals")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub template_id: Uuid,
    /// The version the proposal was made against.
    pub base_version_id: Uuid,
    pub proposer_tenant_id: Uuid,
    pub service_id: Uuid,
    /// The proposed change as a keyed diff against the base version.
    pub overlay: Json,
    /// The proposed content (base + overlay).
    pub content: Json,
    pub message: String,
    /// `open`, `accepted` or `rejected`.
    pub status: crate::states::ProposalStatus,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub decided_at: Option<DateTimeUtc>,
    pub decided_by: Option<Uuid>,
    pub decision_note: Option<String>,
    pub result_version_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
