//! One attempt to pay an application's fees, online or at the counter.
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "payments")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub application_id: Uuid,
    /// `stripe` or `on_site`.
    pub provider: String,
    /// `pending`, `paid`, `failed`, `expired`, `refunded`, `partially_refunded`.
    pub state: crate::states::PaymentState,
    /// Computed by the server from the application's fees; never sent by a client.
    pub amount_cents: i64,
    pub refunded_cents: i64,
    /// ISO 4217.
    pub currency: String,
    /// Stripe Checkout Session (`cs_…`).
    pub checkout_session_id: Option<String>,
    /// Stripe PaymentIntent (`pi_…`), known once paid.
    pub provider_payment_id: Option<String>,
    pub checkout_url: Option<String>,
    /// When the checkout lapses (Stripe then sends `checkout.session.expired`).
    pub expires_at: Option<DateTimeUtc>,
    /// Audit actor that started it.
    pub created_by: String,
    /// Audit actor (staff) that marked an on-site payment paid.
    pub confirmed_by: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub paid_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
