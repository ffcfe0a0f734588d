//! Marketplace templates: one service built once, reused by many municipalities.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "templates")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The tenant whose authors publish it.
    pub author_tenant_id: Uuid,
    /// Globally unique (`hundesteuer-anmeldung`).
    pub slug: String,
    /// German title of the latest version, for listing and search.
    pub title: String,
    pub summary: String,
    pub category: String,
    /// LeiKa service key (14 digits).
    pub leika_code: Option<String>,
    /// JSON array of strings.
    pub tags: Json,
    /// SPDX identifier (`EUPL-1.2`).
    pub license: String,
    /// `public` or `private` (author tenant only).
    pub visibility: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
