//! Where a tenant's service hands its applications over through FIT-Connect: the destination,
//! the LeiKa key and submission schema it expects, and the API client sending them (its secret
//! sealed by the server; see `payments::secrets`).
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "fit_connect_handovers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub service_id: Uuid,
    pub destination_id: Uuid,
    pub leika_key: String,
    pub schema_uri: String,
    pub client_id: String,
    /// Sealed client secret (base64 nonce + ciphertext).
    pub client_secret: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
