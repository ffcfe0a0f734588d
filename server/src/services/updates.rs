//! Upstream updates: where a service stands relative to its template, a three-way merge
//! preview, and moving to a newer version while keeping local changes.

use std::collections::BTreeMap;

use entity::{template_versions, templates, tenant_services};
use sea_orm::{ColumnTrait, DatabaseConnection, QueryFilter};
use serde_json::Value;

use super::merge::{self, Choice, Conflict};
use super::revisions::{NewRevision, commit_revision};
use super::service::{find_revision, find_service, pinned_version, resolve_error};
use crate::content::ServiceContent;
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::{ServiceId, TemplateId};
use crate::marketplace::service::{
    self as marketplace, VersionInfo, find_version, find_version_by_number, version_of,
};

/// Where a service stands relative to its template.
#[derive(Debug)]
pub struct Upstream {
    pub template: templates::Model,
    pub pinned: VersionInfo,
    pub latest: VersionInfo,
    /// Published versions newer than the pinned one.
    pub behind: usize,
}

pub async fn upstream(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    service: &tenant_services::Model,
) -> AppResult<Option<Upstream>> {
    let (Some(template_id), Some(pinned_id)) = (service.template_id, service.upstream_version_id)
    else {
        return Ok(None);
    };
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let template = marketplace::visible(Some(ctx.tenant_id))
        .filter(templates::Column::Id.eq(template_id))
        .one(&txn)
        .await?;
    txn.commit().await?;
    let versions = marketplace::version_infos_of(db, Some(ctx.tenant_id), &[template_id]).await?;
    // A template made private later is no longer visible: the fork keeps working, unlinked.
    let Some(template) = template else {
        return Ok(None);
    };
    // Versions come newest first: those before the pinned one are newer.
    let Some(behind) = versions.iter().position(|v| v.id == pinned_id) else {
        return Ok(None);
    };
    let pinned = versions[behind].clone();
    let latest = versions[0].clone();
    Ok(Some(Upstream {
        template,
        pinned,
        latest,
        behind,
    }))
}

/// The three sides of an update merge.
struct UpdateMerge {
    service: tenant_services::Model,
    from: template_versions::Model,
    to: template_versions::Model,
    ours: Value,
}

async fn prepare_update(
    txn: &TenantTx,
    ctx: &TenantCtx,
    id: ServiceId,
    to_version: &str,
) -> AppResult<UpdateMerge> {
    let service = find_service(txn, id).await?;
    let (Some(template_id), Some(from)) =
        (service.template_id, pinned_version(txn, &service).await?)
    else {
        return Err(AppError::invalid(
            "input.serviceId",
            "the service has no upstream template",
        ));
    };
    let (_, _) = find_version(txn, Some(ctx.tenant_id), from.id).await?;
    let to = find_version_by_number(txn, TemplateId(template_id), to_version)
        .await
        .map_err(|_| {
            AppError::invalid(
                "input.toVersion",
                format!("the template has no version `{}`", to_version.trim()),
            )
        })?;
    if version_of(&to)? <= version_of(&from)? {
        return Err(AppError::invalid(
            "input.toVersion",
            format!(
                "must be newer than the pinned version {} (use rollbackService to go back)",
                from.version
            ),
        ));
    }
    let current = find_revision(txn, service.id, service.current_revision).await?;
    Ok(UpdateMerge {
        service,
        from,
        to,
        ours: current.content,
    })
}

/// A merge preview: what the content would be and what needs a decision.
#[derive(Debug)]
pub struct Preview {
    pub from_version: String,
    pub to_version: String,
    pub merged: Value,
    pub conflicts: Vec<Conflict>,
}

pub async fn preview_update(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    to_version: &str,
) -> AppResult<Preview> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let m = prepare_update(&txn, ctx, id, to_version).await?;
    txn.commit().await?;
    let result = merge::merge3(&m.from.content, &m.ours, &m.to.content);
    Ok(Preview {
        from_version: m.from.version,
        to_version: m.to.version,
        merged: result.merged,
        conflicts: result.conflicts,
    })
}

/// Moves the service to a newer upstream version, keeping local changes. Every conflict needs a
/// resolution, else `MERGE_CONFLICT` with the open paths and nothing changes.
pub async fn apply_update(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    to_version: &str,
    resolutions: BTreeMap<String, Choice>,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let m = prepare_update(&txn, ctx, id, to_version).await?;
    let merged = merge::resolve(&m.from.content, &m.ours, &m.to.content, &resolutions)
        .map_err(resolve_error)?;
    let content = ServiceContent::parse(&merged)?;
    let reason = format!("update {} -> {}", m.from.version, m.to.version);
    let service = commit_revision(
        &txn,
        ctx,
        &m.service,
        NewRevision {
            upstream: Some(m.to),
            content,
            reason,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(service)
}
