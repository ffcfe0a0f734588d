//! What the payment use cases share: reading and locking payments, applying an outcome to one
//! ([`settle`]), the applicant's mails, and the reads other domains need.
//!
//! Ordering and duplicates: every change to a payment runs in a write transaction that holds the
//! payment's row (PostgreSQL `FOR UPDATE`; SQLite write transactions are exclusive). A webhook
//! event's id is inserted first in the transaction of its effect, so a redelivery (even a
//! concurrent one) finds it and changes nothing; [`super::next_state`] decides what an outcome
//! may change, so a late `expired` never undoes `paid`.

use chrono::Utc;
use entity::{applications, payments};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde_json::json;
use uuid::Uuid;

use super::{Outcome, ProviderError};
use crate::applications::rules::FeeLine;
use crate::applications::service as apps;
use crate::applications::timeline::{self, Event};
use crate::context::{Principal, TenantCtx};
use crate::db::{TenantTx, for_update};
use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, PaymentId, TenantId};
use crate::messaging::outbox::{self, Email};

impl From<ProviderError> for AppError {
    fn from(e: ProviderError) -> Self {
        AppError::PaymentFailed(e.to_string())
    }
}

pub(super) fn total(lines: &[FeeLine]) -> i64 {
    lines.iter().map(|l| l.amount_cents).sum()
}

/// `12.000,50 EUR` style amounts for mails.
pub fn money(cents: i64, currency: &str) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let c = cents.unsigned_abs();
    let euros = (c / 100).to_string();
    let mut grouped = String::new();
    for (i, ch) in euros.chars().enumerate() {
        if i > 0 && (euros.len() - i).is_multiple_of(3) {
            grouped.push('.');
        }
        grouped.push(ch);
    }
    format!("{sign}{grouped},{:02} {currency}", c % 100)
}

pub(super) async fn lock_payment(
    txn: &TenantTx,
    id: PaymentId,
) -> AppResult<Option<payments::Model>> {
    let select = txn
        .select::<payments::Entity>()
        .filter(payments::Column::Id.eq(id));
    Ok(for_update(select, txn).one(txn).await?)
}

pub(super) async fn payments_of_app(
    txn: &TenantTx,
    application: ApplicationId,
) -> AppResult<Vec<payments::Model>> {
    Ok(txn
        .select::<payments::Entity>()
        .filter(payments::Column::ApplicationId.eq(application))
        .order_by_asc(payments::Column::CreatedAt)
        .all(txn)
        .await?)
}

/// Applies `outcome` to the (locked) payment: state, the application's timeline, the
/// applicant's mail. `None` when it changes nothing.
pub(super) async fn settle(
    txn: &TenantTx,
    ctx: &TenantCtx,
    p: payments::Model,
    outcome: &Outcome,
) -> AppResult<Option<payments::Model>> {
    let Some((state, refunded)) =
        super::next_state(p.state, p.amount_cents, p.refunded_cents, outcome)
    else {
        return Ok(None);
    };
    let now = Utc::now();
    let before = p.refunded_cents;
    let mut a: payments::ActiveModel = p.clone().into();
    a.state = Set(state);
    a.refunded_cents = Set(refunded);
    a.updated_at = Set(now);
    if let Outcome::Paid {
        provider_payment_id,
    } = outcome
    {
        a.paid_at = Set(Some(now));
        if provider_payment_id.is_some() {
            a.provider_payment_id = Set(provider_payment_id.clone());
        }
        if matches!(
            ctx.principal,
            Principal::Staff { .. } | Principal::PlatformAdmin { .. }
        ) {
            a.confirmed_by = Set(Some(ctx.actor()));
        }
    }
    let p = a.update(txn).await?;
    let kind = match outcome {
        Outcome::Paid { .. } => "payment_paid",
        Outcome::Failed => "payment_failed",
        Outcome::Expired => "payment_expired",
        Outcome::RefundedTotal { .. } => "payment_refunded",
    };
    let mut details = json!({
        "paymentId": p.id, "provider": p.provider, "amountCents": p.amount_cents,
        "currency": p.currency,
    });
    if matches!(outcome, Outcome::RefundedTotal { .. }) {
        details["refundedCents"] = json!(refunded - before);
    }
    timeline::append_event(
        txn,
        ctx,
        ApplicationId(p.application_id),
        Event {
            kind,
            details: Some(details),
            ..Event::default()
        },
    )
    .await?;
    if let Outcome::Paid { .. } = outcome {
        notify_applicant(
            txn,
            ApplicationId(p.application_id),
            |reference| format!("Zahlungseingang zu Ihrem Antrag {reference}"),
            |reference| {
                format!(
                    "Guten Tag,\n\nwir haben {} für Ihren Antrag {reference} erhalten. Vielen Dank.\n\nIhre {}\n",
                    money(p.amount_cents, &p.currency),
                    ctx.tenant.name
                )
            },
        )
        .await?;
    }
    Ok(Some(p))
}

pub(super) async fn notify_applicant(
    txn: &TenantTx,
    application: ApplicationId,
    subject: impl FnOnce(&str) -> String,
    body: impl FnOnce(&str) -> String,
) -> AppResult<()> {
    let app = txn
        .select::<applications::Entity>()
        .filter(applications::Column::Id.eq(application))
        .one(txn)
        .await?;
    if let Some(app) = app
        && let Some(to) = app.contact_email
    {
        outbox::enqueue(
            txn,
            Some(txn.tenant()),
            Email {
                to,
                subject: subject(&app.reference),
                body: body(&app.reference),
                ..Default::default()
            },
        )
        .await?;
    }
    Ok(())
}

/// The payments of applications (for the application's `payments` field), oldest first.
pub async fn of_applications(
    db: &crate::db::Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
) -> AppResult<Vec<payments::Model>> {
    let select = payments::Entity::find()
        .filter(payments::Column::ApplicationId.is_in(applications))
        .order_by_asc(payments::Column::CreatedAt);
    crate::db::read_tenant(db, tenant, select).await
}

/// Whether the application may be processed: its service does not ask for payment first, it
/// has nothing to pay, or a payment of it was received.
pub async fn processing_allowed(
    txn: &TenantTx,
    app: &applications::Model,
    content: &crate::content::ServiceContent,
) -> AppResult<bool> {
    if !content.payment_required_before_processing || total(&apps::fees_of(app)) <= 0 {
        return Ok(true);
    }
    Ok(payments_of_app(txn, ApplicationId(app.id))
        .await?
        .iter()
        .any(|p| p.paid_at.is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn money_reads_like_german_amounts() {
        assert_eq!(money(12_000, "EUR"), "120,00 EUR");
        assert_eq!(money(123_456_789, "EUR"), "1.234.567,89 EUR");
        assert_eq!(money(5, "EUR"), "0,05 EUR");
        assert_eq!(money(-2_500, "EUR"), "-25,00 EUR");
    }
}
