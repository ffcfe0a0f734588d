//! Refunds: part or all of a paid payment given back, through its provider.

use chrono::Utc;
use entity::{payment_refunds, payments};
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use uuid::Uuid;

use super::account::account;
use super::service::{lock_payment, money, notify_applicant, settle};
use super::{Outcome, PaymentState, Payments, ProviderKind};
use crate::context::TenantCtx;
use crate::db::begin_tenant_write;
use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, PaymentId};
use crate::state::AppState;

pub struct RefundInput {
    pub payment_id: PaymentId,
    pub amount_cents: i64,
    pub reason: String,
}

/// `refundPayment`: gives part or all of a paid payment back (never more than is left). The
/// provider is called while the payment's row is held, so two refunds cannot both pass the
/// bound; the refund is recorded only when the provider agreed.
pub async fn refund(
    deps: &AppState,
    payments: &Payments,
    ctx: &TenantCtx,
    input: RefundInput,
) -> AppResult<(payments::Model, payment_refunds::Model)> {
    ctx.require_cashier()?;
    let reason = input.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(AppError::invalid(
            "input.reason",
            "must have 1 to 500 characters",
        ));
    }
    if input.amount_cents <= 0 {
        return Err(AppError::invalid("input.amountCents", "must be positive"));
    }
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let p = lock_payment(&txn, input.payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    if !matches!(
        p.state,
        PaymentState::Paid | PaymentState::PartiallyRefunded
    ) {
        return Err(AppError::conflict(
            "input.paymentId",
            format!("only paid payments are refunded; this one is {}", p.state),
        ));
    }
    let left = p.amount_cents - p.refunded_cents;
    if input.amount_cents > left {
        return Err(AppError::invalid(
            "input.amountCents",
            format!(
                "at most {left} (paid {}, refunded {})",
                p.amount_cents, p.refunded_cents
            ),
        ));
    }
    let kind = ProviderKind::parse(&p.provider).ok_or(AppError::NotFound("payment provider"))?;
    let provider = payments.provider(kind)?.clone();
    let account = account(&txn, payments, kind).await?;
    let refund_id = Uuid::now_v7();
    let provider_refund_id = provider
        .refund(account.as_ref(), &p, refund_id, input.amount_cents)
        .await?;
    let refund = payment_refunds::ActiveModel {
        id: Set(refund_id),
        tenant_id: Set(ctx.tenant_id.0),
        payment_id: Set(p.id),
        amount_cents: Set(input.amount_cents),
        reason: Set(reason.to_owned()),
        provider_refund_id: Set(provider_refund_id),
        created_by: Set(ctx.actor()),
        created_at: Set(Utc::now()),
    }
    .insert(&txn)
    .await?;
    let total = p.refunded_cents + input.amount_cents;
    let p = settle(&txn, ctx, p, &Outcome::RefundedTotal { cents: total })
        .await?
        .ok_or_else(|| AppError::internal("refund", anyhow::anyhow!("refund did not apply")))?;
    notify_applicant(
        &txn,
        ApplicationId(p.application_id),
        |reference| format!("Erstattung zu Ihrem Antrag {reference}"),
        |reference| {
            format!(
                "Guten Tag,\n\nwir erstatten Ihnen {} zu Ihrem Antrag {reference}.\nGrund: {reason}\n\nIhre {}\n",
                money(input.amount_cents, &p.currency),
                ctx.tenant.name
            )
        },
    )
    .await?;
    crate::audit::record(
        &txn,
        &ctx.actor(),
        "payments.refunded",
        format!("payment:{}", p.id),
        json!({ "refundId": refund.id, "amountCents": refund.amount_cents }),
    )
    .await?;
    deps.finish(txn, Vec::new()).await?;
    Ok((p, refund))
}
