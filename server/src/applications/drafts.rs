//! Drafts: citizens save form data to come back to, signed in or with the access token of a
//! resume link.

use chrono::Utc;
use entity::states::ServiceStatus;
use entity::{drafts, tenant_services};
use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;

use super::access::{citizen_of, owns, require_applicant_side};
use super::rules;
use crate::auth::tokens::{hash_secret, random_secret};
use crate::context::{Principal, TenantCtx};
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::DraftId;
use crate::state::AppState;

/// Form data for a service, possibly continuing a draft: what `saveDraft` and
/// `submitApplication` take.
pub struct FormInput {
    pub service_slug: String,
    pub data: Value,
    pub draft_id: Option<DraftId>,
    /// The draft's access token (anonymous citizens).
    pub access_token: Option<String>,
}

/// What drafts and submissions begin with: a citizen, a form-shaped payload, a write
/// transaction, and the live service it is for, whose assurance level the citizen's sign-in
/// meets (`INSUFFICIENT_ASSURANCE`, or `UNAUTHENTICATED` for anonymous callers, otherwise).
pub(super) async fn open_form(
    deps: &AppState,
    ctx: &TenantCtx,
    input: &FormInput,
) -> AppResult<(TenantTx, tenant_services::Model)> {
    require_applicant_side(ctx)?;
    rules::check_shape("data", &input.data)?;
    let txn = begin_tenant_write(&deps.db, ctx.tenant_id).await?;
    let service = live_service(&txn, &input.service_slug).await?;
    // The service's eID assurance requirement, before anything is written.
    let pinned = deps
        .pinned(&txn, service.id, service.current_revision)
        .await?;
    crate::auth::assurance::require(pinned.content.assurance_level, &ctx.principal)?;
    Ok((txn, service))
}

/// Creates or updates a draft. Returns the draft and, when an anonymous citizen created it, the
/// access token of its resume link (shown once; only its hash is stored).
pub async fn save_draft(
    deps: &AppState,
    ctx: &TenantCtx,
    input: FormInput,
) -> AppResult<(drafts::Model, Option<String>)> {
    let (txn, service) = open_form(deps, ctx, &input).await?;
    let now = Utc::now();
    let (draft, token) = match input.draft_id {
        Some(id) => {
            let draft = owned_draft(&txn, ctx, id, input.access_token.as_deref()).await?;
            if draft.service_id != service.id {
                return Err(AppError::invalid(
                    "input.serviceSlug",
                    "the draft belongs to another service",
                ));
            }
            let mut active: drafts::ActiveModel = draft.into();
            active.data = Set(input.data);
            active.updated_at = Set(now);
            (active.update(&txn).await?, None)
        }
        None => {
            let (issuer, subject) = citizen_of(ctx);
            let token = issuer.is_none().then(random_secret);
            let draft = drafts::ActiveModel {
                id: Set(Uuid::now_v7()),
                tenant_id: Set(ctx.tenant_id.0),
                service_id: Set(service.id),
                data: Set(input.data),
                citizen_issuer: Set(issuer),
                citizen_subject: Set(subject),
                access_hash: Set(token.as_deref().map(hash_secret)),
                created_at: Set(now),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
            (draft, token)
        }
    };
    txn.commit().await?;
    Ok((draft, token))
}

pub(crate) async fn owned_draft(
    txn: &TenantTx,
    ctx: &TenantCtx,
    id: DraftId,
    access_token: Option<&str>,
) -> AppResult<drafts::Model> {
    let draft = txn
        .select::<drafts::Entity>()
        .filter(drafts::Column::Id.eq(id))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("draft"))?;
    if owns(
        ctx,
        draft.citizen_issuer.as_deref(),
        draft.citizen_subject.as_deref(),
        draft.access_hash.as_deref(),
        access_token,
    ) {
        Ok(draft)
    } else if matches!(ctx.principal, Principal::Anonymous) && access_token.is_none() {
        Err(AppError::Unauthenticated)
    } else {
        Err(AppError::NotFound("draft"))
    }
}

pub async fn draft(
    deps: &AppState,
    ctx: &TenantCtx,
    id: DraftId,
    access_token: Option<&str>,
) -> AppResult<(drafts::Model, String)> {
    let txn = begin_tenant(&deps.db, ctx.tenant_id).await?;
    let draft = owned_draft(&txn, ctx, id, access_token).await?;
    let slug = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(draft.service_id))
        .one(&txn)
        .await?
        .map(|s| s.slug)
        .unwrap_or_default();
    txn.commit().await?;
    Ok((draft, slug))
}

/// What submitting the draft now would find: the problems of its data and documents (the paths
/// and messages `submitApplication` would answer with) and the fees it would compute, by the
/// service's revision in force — the same checks and rules, so the citizen sees before
/// submitting what submission will say.
pub struct Preview {
    pub problems: crate::error::FieldErrors,
    pub fees: Vec<rules::FeeLine>,
}

pub async fn preview(deps: &AppState, draft: &drafts::Model) -> AppResult<Preview> {
    let txn = begin_tenant(&deps.db, crate::ids::TenantId(draft.tenant_id)).await?;
    let service = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(draft.service_id))
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("service"))?;
    let pinned = deps
        .pinned(&txn, service.id, service.current_revision)
        .await?;
    let mut problems = match pinned.validator.check("data", &draft.data) {
        Ok(()) => crate::error::FieldErrors::new(),
        Err(AppError::Validation(fields)) => fields,
        Err(other) => return Err(other),
    };
    let files = crate::attachments::handover::of_draft_in(&txn, Some(DraftId(draft.id))).await?;
    problems.extend(crate::attachments::handover::missing_documents(
        &pinned.content,
        &draft.data,
        &files,
    ));
    txn.commit().await?;
    Ok(Preview {
        problems,
        fees: rules::fees_for(&pinned.content, &draft.data),
    })
}

async fn live_service(txn: &TenantTx, slug: &str) -> AppResult<tenant_services::Model> {
    match txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Slug.eq(slug))
        .one(txn)
        .await?
    {
        Some(s) if s.status == ServiceStatus::Live => Ok(s),
        Some(_) => Err(AppError::conflict(
            "input.serviceSlug",
            "this service does not take applications (it is not live)",
        )),
        None => Err(AppError::NotFound("service")),
    }
}
