//! A citizen's unfinished application. Owned by a signed-in citizen (issuer + subject) or, for
//! anonymous citizens, by whoever holds the access link (only its SHA-256 is stored).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "drafts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub service_id: Uuid,
    /// Form data as entered so far (not validated until submission).
    pub data: Json,
    pub citizen_issuer: Option<String>,
    pub citizen_subject: Option<String>,
    pub access_hash: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
