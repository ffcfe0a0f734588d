//! Starting a payment: the application's fees through a provider's checkout (or a note that the
//! applicant pays at the counter).

use chrono::{DateTime, Duration, Utc};
use entity::payments;
use sea_orm::{ActiveModelTrait, Set};
use serde_json::json;
use uuid::Uuid;

use super::account::account;
use super::service::{lock_payment, payments_of_app, total};
use super::{Charge, PaymentState, Payments, ProviderError, ProviderKind, Started, was_paid};
use crate::applications::access::{self, Viewer};
use crate::applications::service as apps;
use crate::applications::timeline::{self, Event};
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, PaymentId};
use crate::state::AppState;

pub struct StartInput {
    pub application_id: ApplicationId,
    pub provider: ProviderKind,
    pub access_token: Option<String>,
}

/// Marks a pending payment as `to` (no money involved: an intention given up).
async fn end_pending(
    txn: &TenantTx,
    ctx: &TenantCtx,
    p: payments::Model,
    to: PaymentState,
) -> AppResult<()> {
    let (id, app) = (p.id, p.application_id);
    let mut a: payments::ActiveModel = p.into();
    a.state = Set(to);
    a.updated_at = Set(Utc::now());
    a.update(txn).await?;
    timeline::append_event(
        txn,
        ctx,
        ApplicationId(app),
        Event {
            kind: if to == PaymentState::Failed {
                "payment_failed"
            } else {
                "payment_expired"
            },
            details: Some(json!({ "paymentId": id })),
            ..Event::default()
        },
    )
    .await
}

/// `startPayment`: collects the application's fees (computed at submission; the client never
/// sends an amount) through `provider`. The applicant starts online payments; staff may also
/// note that the applicant pays at the counter. An open payment of the same kind is returned
/// again (same checkout); a paid application is a conflict.
pub async fn start(
    deps: &AppState,
    payments: &Payments,
    settings: &crate::settings::PaymentSettings,
    ctx: &TenantCtx,
    input: StartInput,
) -> AppResult<payments::Model> {
    let provider = payments.provider(input.provider)?.clone();
    let now = Utc::now();
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = access::lock(&txn, input.application_id).await?;
    let viewer = access::viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await?;
    if viewer != Viewer::Applicant && !(provider.confirmed_by_staff() && viewer.is_staff()) {
        return Err(AppError::Forbidden(
            "the applicant pays online; staff may only note payment at the counter",
        ));
    }
    if app.closed_at.is_some() {
        return Err(AppError::conflict(
            "input.applicationId",
            "this application is closed",
        ));
    }
    let lines = apps::fees_of(&app);
    let amount = total(&lines);
    if amount <= 0 {
        return Err(AppError::conflict(
            "input.applicationId",
            "this application has no fees to pay",
        ));
    }
    let account = account(&txn, payments, input.provider).await?;
    if account.is_none() && !provider.confirmed_by_staff() {
        return Err(ProviderError::NotConfigured.into());
    }
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
    let mut reuse = None;
    for p in payments_of_app(&txn, ApplicationId(app.id)).await? {
        let state = p.state;
        if was_paid(state) {
            return Err(AppError::conflict(
                "input.applicationId",
                "the fees of this application are paid already",
            ));
        }
        if state != PaymentState::Pending {
            continue;
        }
        let lapsed = match p.expires_at {
            Some(t) => t <= now + Duration::minutes(1),
            // Never answered by the provider (a crash or a lost answer): it is asked again with
            // the same parameters, and Stripe wants at least 30 minutes of a checkout left.
            None => {
                p.checkout_url.is_none()
                    && !provider.confirmed_by_staff()
                    && p.provider == input.provider.as_str()
                    && checkout_expiry(settings, &p) <= now + Duration::minutes(31)
            }
        };
        match ProviderKind::parse(&p.provider) {
            Some(kind) if kind == input.provider && !lapsed => reuse = Some(p),
            // A checkout still open elsewhere could yet be paid: do not open a second way.
            Some(kind)
                if !payments.provider(kind)?.confirmed_by_staff()
                    && !lapsed
                    && p.checkout_session_id.is_some() =>
            {
                return Err(AppError::conflict(
                    "input.provider",
                    format!(
                        "an online payment is open until {}; finish or cancel it there first",
                        p.expires_at
                            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string())
                            .unwrap_or_default()
                    ),
                ));
            }
            _ => end_pending(&txn, ctx, p, PaymentState::Expired).await?,
        }
    }
    let payment = match reuse {
        Some(p) if p.checkout_url.is_some() || provider.confirmed_by_staff() => {
            txn.commit().await?;
            return Ok(p);
        }
        Some(p) => p,
        None => {
            let p = payments::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id.0),
                application_id: Set(app.id),
                provider: Set(input.provider.as_str().into()),
                state: Set(PaymentState::Pending),
                amount_cents: Set(amount),
                refunded_cents: Set(0),
                currency: Set(pinned.content.currency.clone()),
                checkout_session_id: Set(None),
                provider_payment_id: Set(None),
                checkout_url: Set(None),
                expires_at: Set(None),
                created_by: Set(ctx.actor()),
                confirmed_by: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                paid_at: Set(None),
            }
            .insert(&txn)
            .await?;
            timeline::append_event(
                &txn,
                ctx,
                ApplicationId(app.id),
                Event {
                    kind: "payment_started",
                    details: Some(json!({
                        "paymentId": p.id, "provider": p.provider, "amountCents": amount,
                        "currency": p.currency,
                    })),
                    ..Event::default()
                },
            )
            .await?;
            p
        }
    };
    // The pending row is committed before the provider is called: a crash in between leaves a
    // payment that the next `startPayment` completes with the same idempotency key.
    txn.commit().await?;

    let charge = Charge {
        payment_id: PaymentId(payment.id),
        tenant_slug: &ctx.tenant.slug,
        application_id: ApplicationId(app.id),
        reference: &app.reference,
        title: &pinned.content.title.de,
        lines: &lines,
        currency: &payment.currency,
        customer_email: app.contact_email.as_deref(),
        expires_at: checkout_expiry(settings, &payment),
    };
    let started = provider.start(account.as_ref(), &charge).await;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let Some(current) = lock_payment(&txn, PaymentId(payment.id)).await? else {
        return Err(AppError::NotFound("payment"));
    };
    match started {
        Ok(Started::Redirect {
            session_id,
            url,
            expires_at,
        }) => {
            let mut a: payments::ActiveModel = current.into();
            a.checkout_session_id = Set(Some(session_id));
            a.checkout_url = Set(Some(url));
            a.expires_at = Set(Some(expires_at));
            a.updated_at = Set(Utc::now());
            let p = a.update(&txn).await?;
            txn.commit().await?;
            Ok(p)
        }
        Ok(Started::AtCounter) => {
            txn.commit().await?;
            Ok(current)
        }
        Err(e) => {
            if current.state == PaymentState::Pending {
                end_pending(&txn, ctx, current, PaymentState::Failed).await?;
            }
            txn.commit().await?;
            Err(e.into())
        }
    }
}

/// When the payment's checkout ends: fixed by the payment's creation, so that asking the
/// provider again (same idempotency key) sends the same parameters. Stripe answers a key reused
/// with other parameters with an error instead of the first session.
fn checkout_expiry(
    settings: &crate::settings::PaymentSettings,
    payment: &payments::Model,
) -> DateTime<Utc> {
    payment.created_at + Duration::minutes(i64::from(settings.checkout_expiry_minutes))
}
