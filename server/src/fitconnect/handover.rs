//! Which of a tenant's services hand their applications over through FIT-Connect, and to where:
//! configured by the tenant's administrators per service (destination, LeiKa key, submission
//! schema, API client), the client secret sealed at rest. A service with a hand-over gets one
//! `fit_connect_submissions` row and one outbox task per application, written in the
//! submission's own transaction ([`enqueue_if_configured`]); the XML/JSON export stays
//! available beside it.

use chrono::Utc;
use entity::{fit_connect_handovers, fit_connect_submissions, tenant_services};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait as _, QueryFilter, Set};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::json;
use uuid::Uuid;

use super::routing::LeikaKey;
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult, FieldErrors};
use crate::ids::ApplicationId;
use crate::messaging::outbox;
use crate::payments::secrets::Sealer;

/// The outbox kind of a hand-over (recipient: the application's id).
pub const SUBMIT_TASK: &str = "fitconnect.submit";
/// The outbox kind of following a submission's events (recipient: the application's id).
pub const EVENTS_TASK: &str = "fitconnect.events";

/// Longest client id and secret taken (FIT-Connect's are UUIDs and ~40-character secrets).
const MAX_CLIENT_ID: usize = 200;
const MAX_CLIENT_SECRET: usize = 1000;

pub struct HandoverInput {
    pub service_id: Uuid,
    pub destination_id: Uuid,
    pub leika_key: String,
    pub schema_uri: String,
    pub client_id: String,
    /// `None` keeps the stored secret (required the first time).
    pub client_secret: Option<SecretString>,
}

/// A schema URI the destination can name: an absolute https URL (http only on this machine,
/// for tests), at most 2000 characters.
fn schema_uri_ok(uri: &str) -> bool {
    uri.len() <= 2000
        && reqwest::Url::parse(uri).is_ok_and(|u| {
            u.scheme() == "https"
                || (u.scheme() == "http"
                    && matches!(u.host_str(), Some("localhost" | "127.0.0.1" | "[::1]")))
        })
}

fn printable(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| !c.is_control())
}

/// `configureFitConnectHandover`: tenant administrators only; audited without the secret.
pub async fn configure(
    db: &sea_orm::DatabaseConnection,
    sealer: &Sealer,
    ctx: &TenantCtx,
    input: HandoverInput,
) -> AppResult<fit_connect_handovers::Model> {
    ctx.require_tenant_admin()?;
    let mut errors = FieldErrors::new();
    let leika = match LeikaKey::parse("input.leikaKey", &input.leika_key) {
        Ok(k) => Some(k),
        Err(AppError::Validation(e)) => {
            errors.extend(e);
            None
        }
        Err(e) => return Err(e),
    };
    let schema_uri = input.schema_uri.trim();
    if !schema_uri_ok(schema_uri) {
        errors.insert(
            "input.schemaUri".into(),
            "must be the https URI of a submission schema the destination accepts".into(),
        );
    }
    let client_id = input.client_id.trim();
    if !printable(client_id) || client_id.len() > MAX_CLIENT_ID {
        errors.insert(
            "input.clientId".into(),
            format!("must be the API client's id (1 to {MAX_CLIENT_ID} characters)"),
        );
    }
    if let Some(secret) = &input.client_secret {
        let s = secret.expose_secret();
        if !printable(s) || s.len() > MAX_CLIENT_SECRET {
            errors.insert(
                "input.clientSecret".into(),
                format!("must be the API client's secret (1 to {MAX_CLIENT_SECRET} characters)"),
            );
        }
    }
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(input.service_id))
        .one(&txn)
        .await?;
    if service.is_none() {
        errors.insert("input.serviceId".into(), "no such service".into());
    }
    let existing = find(&txn, input.service_id).await?;
    let sealed = match (&input.client_secret, &existing) {
        (Some(secret), _) => Some(
            sealer
                .seal(ctx.tenant_id.0, secret)
                .map_err(|e| AppError::internal("sealing the FIT-Connect client secret", e))?,
        ),
        (None, Some(e)) => Some(e.client_secret.clone()),
        (None, None) => {
            errors.insert(
                "input.clientSecret".into(),
                "is required when the hand-over is configured the first time".into(),
            );
            None
        }
    };
    let (Some(leika), Some(sealed), true) = (leika, sealed, errors.is_empty()) else {
        return Err(AppError::Validation(errors));
    };
    let model = fit_connect_handovers::ActiveModel {
        tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(input.service_id),
        destination_id: Set(input.destination_id),
        leika_key: Set(leika.as_str().to_owned()),
        schema_uri: Set(schema_uri.to_owned()),
        client_id: Set(client_id.to_owned()),
        client_secret: Set(sealed),
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
        "fit_connect.handover_configured",
        format!("service:{}", input.service_id),
        json!({
            "destinationId": model.destination_id,
            "leikaKey": model.leika_key,
            "clientId": model.client_id,
            "clientSecretChanged": input.client_secret.is_some(),
        }),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// `removeFitConnectHandover`: later applications of the service are no longer handed over
/// (those already queued fail with a clear error). Whether there was one to remove.
pub async fn remove(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    service_id: Uuid,
) -> AppResult<bool> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let removed = txn
        .delete_many::<fit_connect_handovers::Entity>()
        .filter(fit_connect_handovers::Column::ServiceId.eq(service_id))
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    if removed {
        crate::audit::record(
            &txn,
            &ctx.actor(),
            "fit_connect.handover_removed",
            format!("service:{service_id}"),
            json!({}),
        )
        .await?;
    }
    txn.commit().await?;
    Ok(removed)
}

/// The service's hand-over, for its administrators.
pub async fn of_service(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    service_id: Uuid,
) -> AppResult<Option<fit_connect_handovers::Model>> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let found = find(&txn, service_id).await?;
    txn.commit().await?;
    Ok(found)
}

pub(super) async fn find(
    txn: &TenantTx,
    service_id: Uuid,
) -> AppResult<Option<fit_connect_handovers::Model>> {
    Ok(txn
        .select::<fit_connect_handovers::Entity>()
        .filter(fit_connect_handovers::Column::ServiceId.eq(service_id))
        .one(txn)
        .await?)
}

/// In a submission's transaction: when the service hands over through FIT-Connect, records the
/// pending hand-over and queues it. Returns whether it did.
pub async fn enqueue_if_configured(
    txn: &TenantTx,
    service_id: Uuid,
    application: ApplicationId,
) -> AppResult<bool> {
    let Some(handover) = find(txn, service_id).await? else {
        return Ok(false);
    };
    let now = Utc::now();
    fit_connect_submissions::Entity::insert(fit_connect_submissions::ActiveModel {
        tenant_id: Set(txn.tenant().0),
        application_id: Set(application.0),
        service_id: Set(service_id),
        destination_id: Set(handover.destination_id),
        submission_id: Set(None),
        case_id: Set(None),
        state: Set("pending".into()),
        authentication_tags: Set(None),
        problems: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        submitted_at: Set(None),
        decided_at: Set(None),
    })
    .exec_without_returning(txn)
    .await?;
    outbox::enqueue_task(
        txn,
        txn.tenant(),
        SUBMIT_TASK,
        application.0.to_string(),
        None,
    )
    .await?;
    Ok(true)
}

/// `retryFitConnectHandover`: queues a failed hand-over again (after the cause was fixed, e.g.
/// the destination now offers the service). One that was already sent goes back to following
/// the destination's answer; any other is sent (resuming a created submission). Tenant
/// administrators; anything but a failed hand-over is a conflict.
pub async fn retry(
    db: &sea_orm::DatabaseConnection,
    ctx: &TenantCtx,
    application: ApplicationId,
) -> AppResult<fit_connect_submissions::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let mut sub = submission_of(&txn, application)
        .await?
        .ok_or(AppError::NotFound("FIT-Connect hand-over"))?;
    if sub.state != "failed" {
        return Err(AppError::conflict(
            "applicationId",
            format!(
                "only a failed hand-over can be retried; this one is {}",
                sub.state
            ),
        ));
    }
    let (state, task) = match (sub.submitted_at, sub.submission_id) {
        (Some(_), _) => ("submitted", EVENTS_TASK),
        (None, Some(_)) => ("created", SUBMIT_TASK),
        (None, None) => ("pending", SUBMIT_TASK),
    };
    change(&txn, application)
        .col_expr(fit_connect_submissions::Column::State, Expr::value(state))
        .col_expr(
            fit_connect_submissions::Column::LastError,
            Expr::value(Option::<String>::None),
        )
        .filter(fit_connect_submissions::Column::State.eq("failed"))
        .exec(&txn)
        .await?;
    outbox::enqueue_task(&txn, txn.tenant(), task, application.0.to_string(), None).await?;
    crate::audit::record(
        &txn,
        &ctx.actor(),
        "fit_connect.handover_retried",
        format!("application:{}", application.0),
        json!({ "previousError": sub.last_error }),
    )
    .await?;
    txn.commit().await?;
    sub.state = state.to_owned();
    sub.last_error = None;
    sub.updated_at = Utc::now();
    Ok(sub)
}

/// An update of the application's hand-over in `txn`, stamped with the time of the change.
pub(super) fn change(
    txn: &TenantTx,
    application: ApplicationId,
) -> sea_orm::UpdateMany<fit_connect_submissions::Entity> {
    txn.update_many::<fit_connect_submissions::Entity>()
        .col_expr(
            fit_connect_submissions::Column::UpdatedAt,
            Expr::value(Utc::now()),
        )
        .filter(fit_connect_submissions::Column::ApplicationId.eq(application.0))
}

/// The application's hand-over, if it has one (for staff).
pub async fn submission_of(
    txn: &TenantTx,
    application: ApplicationId,
) -> AppResult<Option<fit_connect_submissions::Model>> {
    Ok(txn
        .select::<fit_connect_submissions::Entity>()
        .filter(fit_connect_submissions::Column::ApplicationId.eq(application.0))
        .one(txn)
        .await?)
}
