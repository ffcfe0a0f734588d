//! An application's hand-over through FIT-Connect: the submission and case once created, the
//! state (`pending`, `created`, `submitted`, `accepted`, `rejected`, `failed`), and what the
//! destination answered.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "fit_connect_submissions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub application_id: Uuid,
    pub service_id: Uuid,
    pub destination_id: Uuid,
    pub submission_id: Option<Uuid>,
    pub case_id: Option<Uuid>,
    pub state: String,
    /// Authentication tags of what was sent: `{data, metadata, attachments: {id: tag}}`.
    pub authentication_tags: Option<Json>,
    /// The destination's problems (`reject-submission`), as it sent them.
    pub problems: Option<Json>,
    pub last_error: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub submitted_at: Option<DateTimeUtc>,
    pub decided_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
