//! One department's share of an application, created by a routing rule at submission.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "application_tasks")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    pub department_id: Uuid,
    /// The routing rule that created it.
    pub rule_key: String,
    /// `open`, `done` or `cancelled`.
    pub state: crate::states::TaskState,
    pub completed_by: Option<Uuid>,
    pub comment: Option<String>,
    pub created_at: DateTimeUtc,
    pub completed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
