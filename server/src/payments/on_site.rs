//! Paying at the counter or by invoice: nothing happens online; staff with the cashier role
//! confirm the payment (`markPaymentPaid`) and record money given back.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    Account, Charge, PaymentProvider, ProviderError, ProviderKind, Started, WebhookError,
    WebhookEvent,
};

#[derive(Debug)]
pub struct OnSite;

#[async_trait::async_trait]
impl PaymentProvider for OnSite {
    fn kind(&self) -> ProviderKind {
        ProviderKind::OnSite
    }

    fn confirmed_by_staff(&self) -> bool {
        true
    }

    async fn start(
        &self,
        _account: Option<&Account>,
        _charge: &Charge<'_>,
    ) -> Result<Started, ProviderError> {
        Ok(Started::AtCounter)
    }

    async fn refund(
        &self,
        _account: Option<&Account>,
        _payment: &entity::payments::Model,
        _refund_id: Uuid,
        _amount_cents: i64,
    ) -> Result<Option<String>, ProviderError> {
        // Cash or a transfer by the treasury: recorded here, nothing to call.
        Ok(None)
    }

    fn read_webhook(
        &self,
        _account: &Account,
        _signature: Option<&str>,
        _body: &[u8],
        _now: DateTime<Utc>,
    ) -> Result<WebhookEvent, WebhookError> {
        Err(WebhookError::Shape)
    }
}
