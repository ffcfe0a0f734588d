//! Reading attachments and handing them out: lists for loaders, one attachment with the
//! caller's relation to it, and short-lived download URLs for those who may see the file.

use std::time::Duration;

use entity::attachments;
use entity::states::{ScanState, UploadState};
use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
use uuid::Uuid;

use super::service::{Target, owner_filter};
use crate::applications::access::{self, Viewer};
use crate::applications::drafts::owned_draft;
use crate::context::{Principal, TenantCtx};
use crate::db::begin_tenant;
use crate::error::{AppError, AppResult};
use crate::ids::{ApplicationId, AttachmentId, DraftId, TenantId};
use crate::settings::StorageSettings;
use crate::state::AppState;
use crate::storage::{self, DownloadAs};

/// The attachments of some applications (one query).
pub async fn of_applications(
    db: &crate::db::Db,
    tenant: TenantId,
    ids: Vec<Uuid>,
) -> AppResult<Vec<attachments::Model>> {
    listed(
        db,
        tenant,
        sea_orm::Condition::all().add(attachments::Column::ApplicationId.is_in(ids)),
    )
    .await
}

/// The attachments of a draft the caller already proved to own.
pub async fn of_draft(
    db: &crate::db::Db,
    tenant: TenantId,
    draft: DraftId,
) -> AppResult<Vec<attachments::Model>> {
    listed(db, tenant, owner_filter(Target::Draft(draft))).await
}

async fn listed(
    db: &crate::db::Db,
    tenant: TenantId,
    filter: sea_orm::Condition,
) -> AppResult<Vec<attachments::Model>> {
    let txn = begin_tenant(db, tenant).await?;
    let rows = txn
        .select::<attachments::Entity>()
        .filter(filter)
        .order_by_asc(attachments::Column::Id)
        .all(&txn)
        .await?;
    txn.commit().await?;
    Ok(rows)
}

/// Whether a file may be handed out at all: stored, and scanned clean (or no scanner runs).
fn available(att: &attachments::Model) -> AppResult<()> {
    if att.state != UploadState::Stored {
        return Err(AppError::Forbidden("the upload is not complete"));
    }
    match att.scan_status {
        ScanState::Skipped | ScanState::Clean => Ok(()),
        ScanState::Infected => Err(AppError::Forbidden(
            "the virus scanner found this file infected",
        )),
        ScanState::Pending => Err(AppError::Forbidden("the file has not been scanned yet")),
    }
}

/// A short-lived download URL, for the applicant and for staff of a department with a task on
/// the application. Administrators who work on none of its departments, and everyone else, are
/// refused: a document is shown to those who need it.
pub async fn download_url(
    deps: &AppState,
    cfg: &StorageSettings,
    ctx: &TenantCtx,
    att: &attachments::Model,
    viewer: &Viewer,
) -> AppResult<String> {
    match viewer {
        Viewer::Applicant | Viewer::Staff { .. } => {}
        Viewer::Admin => {
            let Some(app_id) = att.application_id else {
                return Err(AppError::Forbidden("drafts are their citizen's alone"));
            };
            let Principal::Staff { user_id, .. } = &ctx.principal else {
                return Err(AppError::Forbidden(
                    "documents are for the applicant and the departments working on the application",
                ));
            };
            let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
            let mine = access::departments_of(&txn, user_id.0).await?;
            let assigned = txn
                .select::<entity::application_tasks::Entity>()
                .filter(entity::application_tasks::Column::ApplicationId.eq(app_id))
                .filter(entity::application_tasks::Column::DepartmentId.is_in(mine))
                .one(&txn)
                .await?
                .is_some();
            txn.commit().await?;
            if !assigned {
                return Err(AppError::Forbidden(
                    "documents are for the applicant and the departments working on the application",
                ));
            }
        }
    }
    available(att)?;
    let download = DownloadAs {
        disposition: storage::content_disposition(&att.filename),
        content_type: att
            .content_type
            .clone()
            .unwrap_or_else(|| "application/octet-stream".into()),
    };
    deps.store
        .presign_get(
            &att.object_key,
            Duration::from_secs(cfg.download_url_ttl_secs),
            &download,
        )
        .await
        .map_err(|e| AppError::internal("presigning a download", e))
}

/// One attachment with the caller's relation to its application (drafts: the owner only).
pub async fn find(
    deps: &AppState,
    ctx: &TenantCtx,
    id: AttachmentId,
    access_token: Option<&str>,
) -> AppResult<(attachments::Model, Viewer)> {
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let att = txn
        .select::<attachments::Entity>()
        .filter(attachments::Column::Id.eq(id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("attachment"))?;
    let viewer = match (att.application_id, att.draft_id) {
        (Some(app_id), _) => {
            let app = access::find(&txn, ApplicationId(app_id)).await?;
            match access::viewer_of(&txn, ctx, &app, access_token).await {
                Ok(v) => v,
                // Staff who can't see the application get FORBIDDEN for its files: the id came
                // from somewhere, and saying so is clearer than pretending it does not exist.
                Err(AppError::NotFound(_)) if matches!(ctx.principal, Principal::Staff { .. }) => {
                    return Err(AppError::Forbidden(
                        "this file belongs to an application of another department",
                    ));
                }
                Err(e) => return Err(e),
            }
        }
        (None, Some(draft_id)) => {
            owned_draft(&txn, ctx, DraftId(draft_id), access_token).await?;
            Viewer::Applicant
        }
        (None, None) => return Err(AppError::NotFound("attachment")),
    };
    txn.commit().await?;
    crate::audit::break_glass_read(&deps.db, ctx, "attachment", format!("attachment:{id}")).await?;
    Ok((att, viewer))
}
