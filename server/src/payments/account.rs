//! The tenant's account at a provider (Stripe Connect onboarding): its id, the webhook secret
//! (sealed at rest) and the return URLs; opened accounts are cached in [`Payments`].

use chrono::Utc;
use entity::payment_accounts;
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use secrecy::SecretString;
use serde_json::json;

use super::{Account, Payments, ProviderKind};
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult, FieldErrors};

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
    let existing = find_account(&txn, ProviderKind::Stripe).await?;
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

async fn find_account(
    txn: &TenantTx,
    kind: ProviderKind,
) -> AppResult<Option<payment_accounts::Model>> {
    Ok(txn
        .select::<payment_accounts::Entity>()
        .filter(payment_accounts::Column::Provider.eq(kind.as_str()))
        .one(txn)
        .await?)
}

/// The tenant's account at `kind` with its secret opened (`None`: not set up).
pub(super) async fn account(
    txn: &TenantTx,
    payments: &Payments,
    kind: ProviderKind,
) -> AppResult<Option<Account>> {
    if let Some(cached) = payments.cached_account(txn.tenant().0, kind) {
        return Ok(cached);
    }
    let Some(row) = find_account(txn, kind).await? else {
        payments.remember_account(txn.tenant().0, kind, None);
        return Ok(None);
    };
    let webhook_secret = match &row.webhook_secret {
        Some(sealed) => Some(
            payments
                .sealer
                .open(txn.tenant().0, sealed)
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
    payments.remember_account(txn.tenant().0, kind, Some(account.clone()));
    Ok(Some(account))
}

/// How citizens of the tenant can pay: at the counter always, online where the platform has the
/// provider and the municipality its account there.
pub async fn options(
    db: &sea_orm::DatabaseConnection,
    payments: &Payments,
    tenant: crate::ids::TenantId,
) -> AppResult<Vec<ProviderKind>> {
    let txn = crate::db::begin_tenant(db, tenant).await?;
    let mut kinds = Vec::new();
    for kind in [ProviderKind::Stripe, ProviderKind::OnSite] {
        let Ok(provider) = payments.provider(kind) else {
            continue;
        };
        if provider.confirmed_by_staff() || account(&txn, payments, kind).await?.is_some() {
            kinds.push(kind);
        }
    }
    txn.commit().await?;
    Ok(kinds)
}

/// `paymentSettings`: the tenant's provider accounts (never the secrets). Tenant admins only.
pub async fn accounts(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
) -> AppResult<Vec<payment_accounts::Model>> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let rows = txn.select::<payment_accounts::Entity>().all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}
