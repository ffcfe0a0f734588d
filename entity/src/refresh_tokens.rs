//! Rotating refresh tokens, stored as SHA-256 hashes. One row per issued token; a login starts a
//! family, each refresh marks its token used and adds the next one to the family.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "refresh_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `None` for platform administrators.
    pub tenant_id: Option<Uuid>,
    /// `staff` or `platform`.
    pub subject_kind: String,
    pub subject_id: Uuid,
    pub family_id: Uuid,
    /// Hex SHA-256 of the token's secret part.
    pub token_hash: String,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
