//! GDPR: a citizen's export of their data, and erasure of closed applications once their
//! retention period has passed.

use chrono::Utc;
use entity::{application_events, applications, drafts};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, QueryOrder, Set};
use serde_json::Value;
use uuid::Uuid;

use super::access::lock;
use super::timeline::timelines_of;
use crate::attachments;
use crate::context::{Principal, TenantCtx};
use crate::db::{begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::ApplicationId;
use crate::state::AppState;

/// Everything stored about the signed-in citizen in this tenant.
pub async fn export_my_data(deps: &AppState, ctx: &TenantCtx) -> AppResult<Value> {
    let Principal::Citizen(c) = &ctx.principal else {
        return Err(match ctx.principal {
            Principal::Anonymous => AppError::Unauthenticated,
            _ => AppError::Forbidden("for signed-in citizens"),
        });
    };
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let apps = txn
        .select::<applications::Entity>()
        .filter(applications::Column::CitizenIssuer.eq(c.issuer.as_str()))
        .filter(applications::Column::CitizenSubject.eq(c.subject.as_str()))
        .order_by_asc(applications::Column::Id)
        .all(&txn)
        .await?;
    let drafts = txn
        .select::<drafts::Entity>()
        .filter(drafts::Column::CitizenIssuer.eq(c.issuer.as_str()))
        .filter(drafts::Column::CitizenSubject.eq(c.subject.as_str()))
        .order_by_asc(drafts::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    let ids: Vec<Uuid> = apps.iter().map(|a| a.id).collect();
    let events = timelines_of(&deps.db, ctx.tenant_id, ids.clone(), false).await?;
    let messages =
        crate::messaging::mailbox::threads_of(&deps.db, ctx.tenant_id, ids.clone(), false).await?;
    let files = attachments::download::of_applications(&deps.db, ctx.tenant_id, ids).await?;
    let out_apps: Vec<Value> = apps
        .iter()
        .map(|app| {
            serde_json::json!({
                "id": app.id,
                "reference": app.reference,
                "service": app.service_slug,
                "state": app.state,
                "submittedAt": app.submitted_at,
                "data": app.data,
                "fees": app.fees,
                "contactEmail": app.contact_email,
                "assuranceLevel": app.citizen_assurance,
                "postboxHandle": app.citizen_postbox,
                "erasedAt": app.erased_at,
                "timeline": events.iter().filter(|e| e.application_id == app.id).map(|e| serde_json::json!({
                    "at": e.at, "kind": e.kind, "fromState": e.from_state, "toState": e.to_state,
                    "comment": e.comment,
                })).collect::<Vec<_>>(),
                "messages": messages.iter().filter(|m| m.application_id == app.id).map(|m| serde_json::json!({
                    "at": m.created_at, "sender": m.sender, "body": m.body, "readAt": m.read_at,
                })).collect::<Vec<_>>(),
                "attachments": files.iter().filter(|f| f.application_id == Some(app.id)).map(|f| serde_json::json!({
                    "id": f.id, "filename": f.filename, "contentType": f.content_type,
                    "sizeBytes": f.size_bytes, "sha256": f.sha256, "document": f.document_key,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    Ok(serde_json::json!({
        "tenant": ctx.tenant.slug,
        "subject": c.subject,
        "exportedAt": Utc::now(),
        "applications": out_apps,
        "drafts": drafts.iter().map(|d| serde_json::json!({
            "id": d.id, "serviceId": d.service_id, "data": d.data, "updatedAt": d.updated_at,
        })).collect::<Vec<_>>(),
    }))
}

/// Erases a closed application's personal data once its retention period has passed: data,
/// contact, timeline and messages go; the reference, state and the audit entry remain.
pub async fn erase(
    deps: &AppState,
    ctx: &TenantCtx,
    id: ApplicationId,
) -> AppResult<applications::Model> {
    ctx.require_tenant_admin()?;
    ctx.break_glass()?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let app = lock(&txn, id).await?;
    let pinned = deps.pinned(&txn, app.service_id, app.revision).await?;
    let Some(closed) = app.closed_at else {
        return Err(AppError::conflict(
            "input.id",
            "only closed applications can be erased",
        ));
    };
    let days = pinned.content.retention_days();
    let due = closed + chrono::Duration::days(i64::from(days));
    if Utc::now() < due {
        return Err(AppError::conflict(
            "input.id",
            format!(
                "the retention period ({days} days) ends on {}",
                due.format("%Y-%m-%d")
            ),
        ));
    }
    txn.delete_many::<application_events::Entity>()
        .filter(application_events::Column::ApplicationId.eq(app.id))
        .exec(&txn)
        .await?;
    crate::messaging::mailbox::delete_all(&txn, ApplicationId(app.id)).await?;
    let objects =
        attachments::handover::delete_rows_of_application(&txn, ApplicationId(app.id)).await?;
    let reference = app.reference.to_lowercase();
    let mut active: applications::ActiveModel = app.into();
    active.data = Set(None);
    active.contact_email = Set(None);
    active.citizen_postbox = Set(None);
    active.citizen_issuer = Set(None);
    active.citizen_subject = Set(None);
    active.access_hash = Set(None);
    active.search_text = Set(reference);
    active.erased_at = Set(Some(Utc::now()));
    active.updated_at = Set(Utc::now());
    let app = active.update(&txn).await?;
    crate::audit::record(
        &txn,
        &ctx.actor(),
        "application.erased",
        app.id.to_string(),
        serde_json::json!({ "reference": app.reference }),
    )
    .await?;
    txn.commit().await?;
    // The files go after the commit; what fails here, the storage sweeper removes.
    attachments::service::delete_objects(deps.store.as_ref(), &objects).await;
    Ok(app)
}
