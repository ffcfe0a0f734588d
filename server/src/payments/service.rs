//! Payments: the tenant's provider account, starting a payment, confirming one at the counter,
//! refunds, provider webhooks and the treasury report.
//!
//! Ordering and duplicates: every change to a payment runs in a write transaction that holds the
//! payment's row (PostgreSQL `FOR UPDATE`; SQLite write transactions are exclusive). A webhook
//! event's id is inserted first in the transaction of its effect, so a redelivery (even a
//! concurrent one) finds it and changes nothing; [`super::next_state`] decides what an outcome
//! may change, so a late `expired` never undoes `paid`.

use chrono::{DateTime, Duration, Utc};
use entity::{applications, payment_accounts, payment_refunds, payments, provider_events};
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use secrecy::SecretString;
use serde_json::json;
use uuid::Uuid;

use super::{
    Account, Charge, Outcome, PaymentRef, PaymentState, Payments, ProviderError, ProviderKind,
    Started, WebhookError,
};
use crate::applications::rules::FeeLine;
use crate::applications::service::{self as apps, Deps, Event, Viewer};
use crate::context::{Principal, TenantCtx};
use crate::db::{begin_tenant, begin_tenant_write, for_update, scoped};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::TenantId;
use crate::messaging::outbox::{self, Email};

impl From<ProviderError> for AppError {
    fn from(e: ProviderError) -> Self {
        AppError::PaymentFailed(e.to_string())
    }
}

// ---- the tenant's account ----------------------------------------------------------------------

pub struct AccountInput {
    pub account_id: String,
    /// `None` keeps the stored secret.
    pub webhook_secret: Option<SecretString>,
    pub success_url: String,
    pub cancel_url: String,
}

/// Whether `url` may take citizens back after paying: https, or http on this machine (tests).
fn return_url_ok(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|u| {
        u.scheme() == "https"
            || (u.scheme() == "http"
                && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
    }) && url.len() <= 2000
}

/// `configureStripePayments`: the tenant's connected account, webhook secret (sealed) and
/// return URLs. Tenant administrators only; audited without the secret.
pub async fn configure_stripe(
    db: &sea_orm::DatabaseConnection,
    payments: &Payments,
    ctx: &TenantCtx,
    input: AccountInput,
) -> AppResult<payment_accounts::Model> {
    ctx.require_tenant_admin()?;
    let mut errors = FieldErrors::new();
    if !super::stripe::valid_account_id(input.account_id.trim()) {
        errors.insert(
            "input.accountId".into(),
            "must be a Stripe account id (`acct_…`)".into(),
        );
    }
    if input
        .webhook_secret
        .as_ref()
        .is_some_and(|s| !super::stripe::valid_webhook_secret(s))
    {
        errors.insert(
            "input.webhookSecret".into(),
            "must be the endpoint's signing secret (`whsec_…`)".into(),
        );
    }
    for (field, url) in [
        ("input.successUrl", &input.success_url),
        ("input.cancelUrl", &input.cancel_url),
    ] {
        if !return_url_ok(url) {
            errors.insert(field.into(), "must be an https URL".into());
        }
    }
    if !errors.is_empty() {
        return Err(AppError::Validation(errors));
    }
    let sealed = match &input.webhook_secret {
        Some(secret) => Some(
            payments
                .sealer
                .seal(ctx.tenant_id.0, secret)
                .map_err(|e| AppError::internal("sealing the webhook secret", e))?,
        ),
        None => None,
    };
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let existing = find_account(&txn, ctx.tenant_id, ProviderKind::Stripe).await?;
    let secret = sealed.or_else(|| existing.as_ref().and_then(|a| a.webhook_secret.clone()));
    let model = payment_accounts::ActiveModel {
        tenant_id: Set(ctx.tenant_id.0),
        provider: Set(ProviderKind::Stripe.as_str().into()),
        account_id: Set(input.account_id.trim().to_owned()),
        webhook_secret: Set(secret),
        success_url: Set(input.success_url.clone()),
        cancel_url: Set(input.cancel_url.clone()),
        updated_at: Set(Utc::now()),
    };
    let model = if existing.is_some() {
        model.update(&txn).await?
    } else {
        model.insert(&txn).await?
    };
    crate::audit::record(
        &txn,
        ctx.tenant_id,
        &ctx.actor(),
        "payments.stripe_configured",
        format!("payment_account:{}", ProviderKind::Stripe.as_str()),
        json!({
            "accountId": model.account_id,
            "webhookSecretChanged": input.webhook_secret.is_some(),
        }),
    )
    .await?;
    txn.commit().await?;
    payments.forget(ctx.tenant_id.0);
    Ok(model)
}

async fn find_account<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    kind: ProviderKind,
) -> AppResult<Option<payment_accounts::Model>> {
    Ok(scoped::<payment_accounts::Entity>(tenant)
        .filter(payment_accounts::Column::Provider.eq(kind.as_str()))
        .one(conn)
        .await?)
}

/// The tenant's account at `kind` with its secret opened (`None`: not set up).
async fn account<C: ConnectionTrait>(
    conn: &C,
    payments: &Payments,
    tenant: TenantId,
    kind: ProviderKind,
) -> AppResult<Option<Account>> {
    if let Some(cached) = payments.cached_account(tenant.0, kind) {
        return Ok(cached);
    }
    let Some(row) = find_account(conn, tenant, kind).await? else {
        payments.remember_account(tenant.0, kind, None);
        return Ok(None);
    };
    let webhook_secret = match &row.webhook_secret {
        Some(sealed) => Some(
            payments
                .sealer
                .open(tenant.0, sealed)
                .map_err(|e| AppError::internal("opening the webhook secret", e))?,
        ),
        None => None,
    };
    let account = Account {
        account_id: row.account_id,
        webhook_secret,
        success_url: row.success_url,
        cancel_url: row.cancel_url,
    };
    payments.remember_account(tenant.0, kind, Some(account.clone()));
    Ok(Some(account))
}

/// `paymentSettings`: the tenant's provider accounts (never the secrets). Tenant admins only.
pub async fn accounts(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
) -> AppResult<Vec<payment_accounts::Model>> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let rows = scoped::<payment_accounts::Entity>(ctx.tenant_id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

// ---- starting a payment ------------------------------------------------------------------------

pub struct StartInput {
    pub application_id: Uuid,
    pub provider: ProviderKind,
    pub access_token: Option<String>,
}

fn total(lines: &[FeeLine]) -> i64 {
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

async fn lock_payment(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    id: Uuid,
) -> AppResult<Option<payments::Model>> {
    let select = scoped::<payments::Entity>(tenant).filter(payments::Column::Id.eq(id));
    Ok(for_update(select, txn).one(txn).await?)
}

async fn payments_of_app<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    application: Uuid,
) -> AppResult<Vec<payments::Model>> {
    Ok(scoped::<payments::Entity>(tenant)
        .filter(payments::Column::ApplicationId.eq(application))
        .order_by_asc(payments::Column::CreatedAt)
        .all(conn)
        .await?)
}

fn state_of(p: &payments::Model) -> PaymentState {
    PaymentState::parse(&p.state).unwrap_or(PaymentState::Failed)
}

/// Marks a pending payment as `to` (no money involved: an intention given up).
async fn end_pending(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    p: payments::Model,
    to: PaymentState,
) -> AppResult<()> {
    let (id, app) = (p.id, p.application_id);
    let mut a: payments::ActiveModel = p.into();
    a.state = Set(to.as_str().into());
    a.updated_at = Set(Utc::now());
    a.update(txn).await?;
    apps::append_event(
        txn,
        ctx,
        app,
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
    deps: &Deps,
    payments: &Payments,
    settings: &crate::settings::PaymentSettings,
    ctx: &TenantCtx,
    input: StartInput,
) -> AppResult<payments::Model> {
    let provider = payments.provider(input.provider)?.clone();
    let now = Utc::now();
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = apps::lock(&txn, ctx.tenant_id, input.application_id).await?;
    let viewer = apps::viewer_of(&txn, ctx, &app, input.access_token.as_deref()).await?;
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
    let account = account(&txn, payments, ctx.tenant_id, input.provider).await?;
    if account.is_none() && !provider.confirmed_by_staff() {
        return Err(ProviderError::NotConfigured.into());
    }
    let pinned = deps
        .pinned(&txn, ctx.tenant_id, app.service_id, app.revision)
        .await?;
    let mut reuse = None;
    for p in payments_of_app(&txn, ctx.tenant_id, app.id).await? {
        let state = state_of(&p);
        if state.was_paid() {
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
                state: Set(PaymentState::Pending.as_str().into()),
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
            apps::append_event(
                &txn,
                ctx,
                app.id,
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
        payment_id: payment.id,
        tenant_slug: &ctx.tenant.slug,
        application_id: app.id,
        reference: &app.reference,
        title: &pinned.content.title.de,
        lines: &lines,
        currency: &payment.currency,
        customer_email: app.contact_email.as_deref(),
        expires_at: checkout_expiry(settings, &payment),
    };
    let started = provider.start(account.as_ref(), &charge).await;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let Some(current) = lock_payment(&txn, ctx.tenant_id, payment.id).await? else {
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
            if state_of(&current) == PaymentState::Pending {
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

// ---- at the counter ----------------------------------------------------------------------------

/// `markPaymentPaid`: the treasury confirms a payment at the counter or by invoice.
pub async fn mark_paid(
    deps: &Deps,
    ctx: &TenantCtx,
    payment_id: Uuid,
) -> AppResult<payments::Model> {
    ctx.require_cashier()?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let p = lock_payment(&txn, ctx.tenant_id, payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    if p.provider != ProviderKind::OnSite.as_str() {
        return Err(AppError::conflict(
            "input.paymentId",
            "online payments are confirmed by the provider, not by hand",
        ));
    }
    if state_of(&p) != PaymentState::Pending {
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

/// Applies `outcome` to the (locked) payment: state, the application's timeline, the
/// applicant's mail. `None` when it changes nothing.
async fn settle(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    p: payments::Model,
    outcome: &Outcome,
) -> AppResult<Option<payments::Model>> {
    let Some((state, refunded)) =
        super::next_state(state_of(&p), p.amount_cents, p.refunded_cents, outcome)
    else {
        return Ok(None);
    };
    let now = Utc::now();
    let before = p.refunded_cents;
    let mut a: payments::ActiveModel = p.clone().into();
    a.state = Set(state.as_str().into());
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
    apps::append_event(
        txn,
        ctx,
        p.application_id,
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
            ctx,
            p.application_id,
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

async fn notify_applicant(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    application: Uuid,
    subject: impl FnOnce(&str) -> String,
    body: impl FnOnce(&str) -> String,
) -> AppResult<()> {
    let app = scoped::<applications::Entity>(ctx.tenant_id)
        .filter(applications::Column::Id.eq(application))
        .one(txn)
        .await?;
    if let Some(app) = app
        && let Some(to) = app.contact_email
    {
        outbox::enqueue(
            txn,
            Some(ctx.tenant_id),
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

// ---- refunds -----------------------------------------------------------------------------------

pub struct RefundInput {
    pub payment_id: Uuid,
    pub amount_cents: i64,
    pub reason: String,
}

/// `refundPayment`: gives part or all of a paid payment back (never more than is left). The
/// provider is called while the payment's row is held, so two refunds cannot both pass the
/// bound; the refund is recorded only when the provider agreed.
pub async fn refund(
    deps: &Deps,
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
    let p = lock_payment(&txn, ctx.tenant_id, input.payment_id)
        .await?
        .ok_or(AppError::NotFound("payment"))?;
    if !matches!(
        state_of(&p),
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
    let account = account(&txn, payments, ctx.tenant_id, kind).await?;
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
        ctx,
        p.application_id,
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
        ctx.tenant_id,
        &ctx.actor(),
        "payments.refunded",
        format!("payment:{}", p.id),
        json!({ "refundId": refund.id, "amountCents": refund.amount_cents }),
    )
    .await?;
    deps.finish(txn, Vec::new()).await?;
    Ok((p, refund))
}

// ---- webhooks ----------------------------------------------------------------------------------

/// What a webhook delivery did (all answered 2xx).
#[derive(Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Applied: it changed the payment.
    Applied,
    /// Recorded, but nothing to change (unknown payment, an outcome that cannot apply now).
    NoEffect,
    /// This event id was applied before.
    Duplicate,
}

/// Why a delivery is refused.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Unknown tenant or provider, or the provider is not set up for the tenant (404).
    #[error("no such webhook endpoint")]
    NotFound,
    /// Signature, timestamp or body refused (400); nothing changed.
    #[error(transparent)]
    Rejected(#[from] WebhookError),
    #[error(transparent)]
    Internal(#[from] AppError),
}

impl From<sea_orm::DbErr> for DeliveryError {
    fn from(e: sea_orm::DbErr) -> Self {
        Self::Internal(e.into())
    }
}

/// Handles one delivery to `/webhooks/<provider>/<tenant>`: verifies it with that tenant's
/// secret before reading it, then applies it once. Returns only after the commit.
pub async fn deliver(
    deps: &Deps,
    payments: &Payments,
    tenant: std::sync::Arc<entity::tenants::Model>,
    kind: ProviderKind,
    signature: Option<&str>,
    body: &[u8],
) -> Result<Delivery, DeliveryError> {
    let provider = payments
        .provider(kind)
        .map_err(|_| DeliveryError::NotFound)?
        .clone();
    if provider.confirmed_by_staff() {
        return Err(DeliveryError::NotFound);
    }
    let ctx = TenantCtx {
        tenant_id: TenantId(tenant.id),
        tenant,
        principal: Principal::System(match kind {
            ProviderKind::Stripe => "stripe-webhook",
            ProviderKind::OnSite => "on-site",
        }),
    };
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let account = account(&txn, payments, ctx.tenant_id, kind)
        .await?
        .ok_or(DeliveryError::NotFound)?;
    let event = provider.read_webhook(&account, signature, body, Utc::now())?;

    // The payment first (its row held: deliveries about one payment queue here), then the
    // event id (a redelivery stops there), then the effect.
    let target = match &event.effect {
        Some((reference, _)) => lock_target(&txn, ctx.tenant_id, kind, reference).await?,
        None => None,
    };
    let inserted = provider_events::Entity::insert(provider_events::ActiveModel {
        tenant_id: Set(ctx.tenant_id.0),
        provider: Set(kind.as_str().into()),
        event_id: Set(event.id.chars().take(255).collect()),
        kind: Set(event.kind.chars().take(100).collect()),
        payment_id: Set(target.as_ref().map(|p| p.id)),
        received_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::columns([
            provider_events::Column::TenantId,
            provider_events::Column::Provider,
            provider_events::Column::EventId,
        ])
        .do_nothing()
        .to_owned(),
    )
    .exec_without_returning(&txn)
    .await?;
    if inserted == 0 {
        txn.commit().await?;
        return Ok(Delivery::Duplicate);
    }
    let (Some(p), Some((_, outcome))) = (target, &event.effect) else {
        txn.commit().await?;
        return Ok(Delivery::NoEffect);
    };
    let before = p.refunded_cents;
    let settled = settle(&txn, &ctx, p, outcome).await?;
    // A refund made at the provider (e.g. in Stripe's dashboard) enters the ledger too; our
    // own refunds are recorded before their event arrives, so they show no difference here.
    if let Some(p) = &settled
        && p.refunded_cents > before
    {
        payment_refunds::ActiveModel {
            id: Set(Uuid::now_v7()),
            tenant_id: Set(ctx.tenant_id.0),
            payment_id: Set(p.id),
            amount_cents: Set(p.refunded_cents - before),
            reason: Set("Erstattung beim Zahlungsdienstleister".into()),
            provider_refund_id: Set(None),
            created_by: Set(ctx.actor()),
            created_at: Set(Utc::now()),
        }
        .insert(&txn)
        .await?;
    }
    let applied = settled.is_some();
    deps.finish(txn, Vec::new()).await?;
    Ok(if applied {
        Delivery::Applied
    } else {
        Delivery::NoEffect
    })
}

async fn lock_target(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    kind: ProviderKind,
    reference: &PaymentRef,
) -> AppResult<Option<payments::Model>> {
    let select = for_update(
        scoped::<payments::Entity>(tenant).filter(payments::Column::Provider.eq(kind.as_str())),
        txn,
    );
    let found = match reference {
        PaymentRef::Ours { id, session } => select
            .filter(payments::Column::Id.eq(*id))
            .one(txn)
            .await?
            // A session id that contradicts the stored one is not this payment's event.
            .filter(|p| match (session, &p.checkout_session_id) {
                (Some(s), Some(stored)) => s == stored,
                _ => true,
            }),
        PaymentRef::ProviderPayment(pi) => {
            select
                .filter(payments::Column::ProviderPaymentId.eq(pi.as_str()))
                .one(txn)
                .await?
        }
    };
    Ok(found)
}

// ---- reading -----------------------------------------------------------------------------------

/// The payments of applications (for the application's `payments` field), oldest first.
pub async fn of_applications(
    db: &crate::db::Db,
    tenant: TenantId,
    applications: Vec<Uuid>,
) -> AppResult<Vec<payments::Model>> {
    let select = scoped::<payments::Entity>(tenant)
        .filter(payments::Column::ApplicationId.is_in(applications))
        .order_by_asc(payments::Column::CreatedAt);
    crate::db::read_tenant(db, tenant, select).await
}

/// Whether the application may be processed: its service does not ask for payment first, it
/// has nothing to pay, or a payment of it was received.
pub async fn processing_allowed<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    app: &applications::Model,
    content: &crate::marketplace::content::ServiceContent,
) -> AppResult<bool> {
    if !content.payment_required_before_processing || total(&apps::fees_of(app)) <= 0 {
        return Ok(true);
    }
    Ok(payments_of_app(conn, tenant, app.id)
        .await?
        .iter()
        .any(|p| p.paid_at.is_some()))
}

/// One money movement for the treasury: a payment received or a refund.
#[derive(Clone, Debug)]
pub struct LedgerLine {
    pub at: DateTime<Utc>,
    /// `payment` or `refund`.
    pub kind: &'static str,
    pub reference: String,
    pub payment: payments::Model,
    /// Positive for payments, negative for refunds.
    pub amount_cents: i64,
    pub fees: Vec<FeeLine>,
    pub provider_refund_id: Option<String>,
    pub reason: Option<String>,
}

/// `paymentsReport`: payments received and refunds made in `[from, to)`, in time order.
/// Cashiers and tenant administrators.
pub async fn report(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> AppResult<Vec<LedgerLine>> {
    ctx.require_cashier()?;
    crate::audit::break_glass_read(
        db,
        ctx,
        "payments report",
        format!("tenant:{}", ctx.tenant_id),
    )
    .await?;
    if to <= from || to - from > Duration::days(366) {
        return Err(AppError::invalid(
            "to",
            "must be after `from`, at most 366 days later",
        ));
    }
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let paid = scoped::<payments::Entity>(ctx.tenant_id)
        .filter(payments::Column::PaidAt.gte(from))
        .filter(payments::Column::PaidAt.lt(to))
        .all(&txn)
        .await?;
    let refunds = scoped::<payment_refunds::Entity>(ctx.tenant_id)
        .filter(payment_refunds::Column::CreatedAt.gte(from))
        .filter(payment_refunds::Column::CreatedAt.lt(to))
        .all(&txn)
        .await?;
    // The payments the refunds belong to, unless already read as paid in the period.
    let mut all: std::collections::HashMap<Uuid, payments::Model> =
        paid.iter().map(|p| (p.id, p.clone())).collect();
    let mut missing: Vec<Uuid> = refunds
        .iter()
        .map(|r| r.payment_id)
        .filter(|id| !all.contains_key(id))
        .collect();
    missing.sort();
    missing.dedup();
    if !missing.is_empty() {
        all.extend(
            scoped::<payments::Entity>(ctx.tenant_id)
                .filter(payments::Column::Id.is_in(missing))
                .all(&txn)
                .await?
                .into_iter()
                .map(|p| (p.id, p)),
        );
    }
    let app_ids: Vec<Uuid> = all.values().map(|p| p.application_id).collect();
    let apps: std::collections::HashMap<Uuid, applications::Model> =
        scoped::<applications::Entity>(ctx.tenant_id)
            .filter(applications::Column::Id.is_in(app_ids))
            .all(&txn)
            .await?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
    txn.commit().await?;
    let line = |p: &payments::Model| {
        let app = apps.get(&p.application_id);
        (
            app.map(|a| a.reference.clone()).unwrap_or_default(),
            app.map(apps::fees_of).unwrap_or_default(),
        )
    };
    let mut lines = Vec::new();
    for p in &paid {
        let (reference, fees) = line(p);
        lines.push(LedgerLine {
            at: p.paid_at.unwrap_or(p.updated_at),
            kind: "payment",
            reference,
            payment: p.clone(),
            amount_cents: p.amount_cents,
            fees,
            provider_refund_id: None,
            reason: None,
        });
    }
    for r in refunds {
        let Some(p) = all.get(&r.payment_id) else {
            continue;
        };
        let (reference, fees) = line(p);
        lines.push(LedgerLine {
            at: r.created_at,
            kind: "refund",
            reference,
            payment: p.clone(),
            amount_cents: -r.amount_cents,
            fees,
            provider_refund_id: r.provider_refund_id,
            reason: Some(r.reason),
        });
    }
    lines.sort_by_key(|l| (l.at, l.kind));
    Ok(lines)
}

/// The report as CSV for the treasury (semicolon-separated, as German spreadsheets expect;
/// cells that a spreadsheet would run as a formula are defused).
pub fn report_csv(lines: &[LedgerLine]) -> AppResult<Vec<u8>> {
    let mut w = csv::WriterBuilder::new()
        .delimiter(b';')
        .from_writer(Vec::new());
    let err = |e: csv::Error| AppError::internal("writing CSV", e);
    w.write_record([
        "booked_at",
        "kind",
        "reference",
        "payment_id",
        "provider",
        "amount_cents",
        "currency",
        "fees",
        "state",
        "checkout_session_id",
        "provider_payment_id",
        "provider_refund_id",
        "reason",
    ])
    .map_err(err)?;
    for l in lines {
        let fees = l
            .fees
            .iter()
            .map(|f| format!("{}={}", f.key, f.amount_cents))
            .collect::<Vec<_>>()
            .join(" ");
        let record = [
            l.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            l.kind.to_owned(),
            l.reference.clone(),
            l.payment.id.to_string(),
            l.payment.provider.clone(),
            l.amount_cents.to_string(),
            l.payment.currency.clone(),
            fees,
            l.payment.state.clone(),
            l.payment.checkout_session_id.clone().unwrap_or_default(),
            l.payment.provider_payment_id.clone().unwrap_or_default(),
            l.provider_refund_id.clone().unwrap_or_default(),
            l.reason.clone().unwrap_or_default(),
        ];
        w.write_record(record.iter().map(|c| defuse(c)))
            .map_err(err)?;
    }
    w.into_inner()
        .map_err(|e| AppError::internal("writing CSV", anyhow::anyhow!(e.to_string())))
}

/// A cell starting like a formula gets a leading `'` (OWASP CSV injection); negative amounts
/// are numbers, not formulas, and stay as they are.
fn defuse(cell: &str) -> String {
    let numeric = cell.parse::<i64>().is_ok();
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') if !numeric => format!("'{cell}"),
        _ => cell.to_owned(),
    }
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

    #[test]
    fn formulas_are_defused() {
        assert_eq!(defuse("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(defuse("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(defuse("-2500"), "-2500");
        assert_eq!(defuse("-1+1"), "'-1+1");
        assert_eq!(defuse("Erstattung"), "Erstattung");
    }
}
