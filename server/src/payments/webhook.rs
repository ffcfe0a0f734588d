//! Provider webhooks: a delivery is verified with its tenant's secret, then applied at most once
//! (deduplicated by the provider's event id).

use chrono::Utc;
use entity::{payment_refunds, payments, provider_events};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

use super::account::account;
use super::service::settle;
use super::{PaymentRef, Payments, ProviderKind, WebhookError};
use crate::context::{Principal, TenantCtx};
use crate::db::{TenantTx, begin_tenant_write, for_update};
use crate::error::{AppError, AppResult};
use crate::ids::TenantId;
use crate::state::AppState;

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
    deps: &AppState,
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
    let account = account(&txn, payments, kind)
        .await?
        .ok_or(DeliveryError::NotFound)?;
    let event = provider.read_webhook(&account, signature, body, Utc::now())?;

    // The payment first (its row held: deliveries about one payment queue here), then the
    // event id (a redelivery stops there), then the effect.
    let target = match &event.effect {
        Some((reference, _)) => lock_target(&txn, kind, reference).await?,
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
    txn: &TenantTx,
    kind: ProviderKind,
    reference: &PaymentRef,
) -> AppResult<Option<payments::Model>> {
    let select = for_update(
        txn.select::<payments::Entity>()
            .filter(payments::Column::Provider.eq(kind.as_str())),
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
