//! Paying at the counter or by invoice: nothing happens online; staff with the cashier role
//! confirm the payment (`markPaymentPaid`) and record money given back.

use chrono::{DateTime, Utc};
use entity::payments;
use uuid::Uuid;

use super::service::{lock_payment, settle};
use super::{
    Account, Charge, Outcome, PaymentProvider, PaymentState, ProviderError, ProviderKind, Started,
    WebhookError, WebhookEvent,
};
use crate::context::TenantCtx;
use crate::db::begin_tenant_write;
use crate::error::{AppError, AppResult};
use crate::ids::PaymentId;
use crate::state::AppState;

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

/// `markPaymentPaid`: the treasury confirms a payment at the counter or by invoice.
pub async fn mark_paid(
    deps: &AppState,
    ctx: &TenantCtx,
    payment_id: PaymentId,
) -> AppResult<payments::Model> {
    ctx.require_cashier()?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let p = lock_payment(&txn, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    if p.provider != ProviderKind::OnSite.as_str() {
        return Err(AppError::conflict(
            "input.paymentId",
            "online payments are confirmed by the provider, not by hand",
        ));
    }
    if p.state != PaymentState::Pending {
        return Err(AppError::conflict(
            "input.paymentId",
            format!("this payment is {}, not pending", p.state),
        ));
    }
    let p = settle(
        &txn,
        ctx,
        p,
        &Outcome::Paid {
            provider_payment_id: None,
        },
    )
    .await?
    .ok_or_else(|| {
        AppError::internal("payment", anyhow::anyhow!("pending → paid did not apply"))
    })?;
    deps.finish(txn, Vec::new()).await?;
    Ok(p)
}
