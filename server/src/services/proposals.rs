//! Proposals back upstream: a forking tenant proposes its local changes to the template's
//! author, who accepts them into a new template version (merged onto the latest when the
//! template moved on) or rejects them.

use std::collections::BTreeMap;

use chrono::Utc;
use entity::states::ProposalStatus;
use entity::{template_proposals, template_versions, templates};
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};

use super::merge::{self, Choice, Overlay};
use super::service::{find_revision, find_service, resolve_error};
use crate::audit;
use crate::content::ServiceContent;
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::{ProposalId, ServiceId, TemplateId};
use crate::marketplace::service::{self as marketplace, NewVersion, find_version};

/// Proposes the service's local changes to the template's author.
pub async fn propose(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    message: String,
) -> AppResult<template_proposals::Model> {
    ctx.require_tenant_admin()?;
    let message = message.trim().to_owned();
    if message.is_empty() || message.len() > 4000 {
        return Err(AppError::invalid("input.message", "1 to 4000 characters"));
    }
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, id).await?;
    let (Some(template_id), Some(base)) = (service.template_id, service.upstream_version_id) else {
        return Err(AppError::invalid(
            "input.serviceId",
            "the service has no upstream template",
        ));
    };
    let overlay: Overlay = serde_json::from_value(service.overlay.clone())
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored overlay: {e}")))?;
    if overlay.0.is_empty() {
        return Err(AppError::invalid(
            "input.serviceId",
            "the service has no local changes to propose",
        ));
    }
    find_version(&txn, Some(ctx.tenant_id), base).await?;
    let current = find_revision(&txn, service.id, service.current_revision).await?;
    let proposal = template_proposals::ActiveModel {
        id: Set(ProposalId::new().0),
        template_id: Set(template_id),
        base_version_id: Set(base),
        proposer_tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(service.id),
        overlay: Set(service.overlay.clone()),
        content: Set(current.content),
        message: Set(message),
        status: Set(ProposalStatus::Open),
        created_by: Set(ctx.staff_user()),
        created_at: Set(Utc::now()),
        decided_at: Set(None),
        decided_by: Set(None),
        decision_note: Set(None),
        result_version_id: Set(None),
    }
    .insert(&txn)
    .await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "template.propose",
        format!("template_proposal:{}", proposal.id),
        serde_json::json!({ "template": template_id, "service": service.slug }),
    )
    .await?;
    txn.commit().await?;
    Ok(proposal)
}

/// Proposals for a template (author tenant) or made by the caller's tenant.
pub async fn proposals_for_template(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    template: TemplateId,
) -> AppResult<Vec<template_proposals::Model>> {
    ctx.require_staff()?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let t = templates::Entity::find_by_id(template)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("template"))?;
    let mut select = template_proposals::Entity::find()
        .filter(template_proposals::Column::TemplateId.eq(template));
    if t.author_tenant_id != ctx.tenant_id.0 {
        // Business filter, not scoping: other tenants see only the proposals they made.
        select = select.filter(template_proposals::Column::ProposerTenantId.eq(ctx.tenant_id.0));
    }
    let rows = select.all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}

async fn open_proposal(
    txn: &TenantTx,
    id: ProposalId,
) -> AppResult<(templates::Model, template_proposals::Model)> {
    let proposal = template_proposals::Entity::find_by_id(id.0)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("proposal"))?;
    let template = marketplace::own_template(txn, TemplateId(proposal.template_id)).await?;
    if proposal.status != ProposalStatus::Open {
        return Err(AppError::conflict(
            "input.proposalId",
            format!("the proposal is already {}", proposal.status),
        ));
    }
    Ok((template, proposal))
}

/// Accepts a proposal into a new template version. When the template moved on since the proposal's
/// base, the proposal is merged onto the latest version (base = proposal base, ours = latest,
/// theirs = proposal); conflicts need resolutions.
pub async fn accept_proposal(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ProposalId,
    version: semver::Version,
    changelog: String,
    resolutions: BTreeMap<String, Choice>,
) -> AppResult<(template_proposals::Model, template_versions::Model)> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let (template, proposal) = open_proposal(&txn, id).await?;
    let versions = marketplace::versions_of(&txn, &[template.id]).await?;
    let latest = versions
        .first()
        .ok_or(AppError::NotFound("template version"))?;
    let content = if latest.id == proposal.base_version_id {
        proposal.content.clone()
    } else {
        let base = versions
            .iter()
            .find(|v| v.id == proposal.base_version_id)
            .ok_or(AppError::NotFound("template version"))?;
        merge::resolve(
            &base.content,
            &latest.content,
            &proposal.content,
            &resolutions,
        )
        .map_err(resolve_error)?
    };
    let content = ServiceContent::parse(&content)?;
    let published = marketplace::publish_in(
        &txn,
        ctx,
        &template,
        NewVersion {
            template_id: TemplateId(template.id),
            version,
            content,
            changelog,
        },
    )
    .await?;
    let mut am: template_proposals::ActiveModel = proposal.into();
    am.status = Set(ProposalStatus::Accepted);
    am.decided_at = Set(Some(Utc::now()));
    am.decided_by = Set(ctx.staff_user());
    am.result_version_id = Set(Some(published.id));
    let proposal = am.update(&txn).await?;
    txn.commit().await?;
    Ok((proposal, published))
}

pub async fn reject_proposal(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ProposalId,
    note: Option<String>,
) -> AppResult<template_proposals::Model> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let (_, proposal) = open_proposal(&txn, id).await?;
    let mut am: template_proposals::ActiveModel = proposal.into();
    am.status = Set(ProposalStatus::Rejected);
    am.decided_at = Set(Some(Utc::now()));
    am.decided_by = Set(ctx.staff_user());
    am.decision_note = Set(note);
    let proposal = am.update(&txn).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "template.proposal_reject",
        format!("template_proposal:{}", proposal.id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(proposal)
}
