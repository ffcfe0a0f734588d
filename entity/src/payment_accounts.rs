//! A tenant's account at a payment provider (Stripe Connect `acct_…`), its webhook secret
//! (sealed by the server; see `payments::secrets`) and where Checkout sends citizens back.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payment_accounts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub tenant_id: Uuid,
    /// `stripe`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub provider: String,
    pub account_id: String,
    /// Sealed webhook signing secret (base64 nonce + ciphertext); NULL until configured.
    pub webhook_secret: Option<String>,
    pub success_url: String,
    pub cancel_url: String,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
