//! A tenant's services: fork a template version, customize it, take upstream updates with a
//! three-way merge, roll back, go live, retire, and propose local changes back upstream.
//!
//! Every accepted change writes a new `service_revisions` row (numbered from 1) and moves the
//! service's `current_revision` with a compare-and-set, so two concurrent edits cannot both win.
//! The overlay is always `diff(pinned upstream, resolved content)`.

use std::collections::BTreeMap;

use chrono::Utc;
use entity::{
    departments, service_revisions, template_adoptions, template_proposals, template_versions,
    templates, tenant_services,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction,
    EntityTrait, QueryFilter, Set,
};
use serde_json::Value;
use uuid::Uuid;

use super::changes::{self, Change};
use super::merge::{self, Choice, Conflict, Overlay, ResolveError};
use crate::audit;
use crate::context::TenantCtx;
use crate::db::{begin_tenant, begin_tenant_write, read_tenant, scoped};
use crate::error::{AppError, AppResult, on_unique};
use crate::graphql::connection::{Page, PageArgs, fetch_tenant_page};
use crate::ids::{ProposalId, ServiceId, TemplateId, TenantId};
use crate::marketplace::content::ServiceContent;
use crate::marketplace::service::{
    self as marketplace, NewVersion, VersionInfo, find_version, find_version_by_number, version_of,
};
use crate::tenancy::types::Slug;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ServiceStatus {
    Draft,
    Live,
    Retired,
}

impl ServiceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Draft => "draft",
            Self::Live => "live",
            Self::Retired => "retired",
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "live" => Self::Live,
            "retired" => Self::Retired,
            _ => Self::Draft,
        }
    }
}

/// Staff of the tenant see every service; everyone else only live ones.
fn sees_all(ctx: &TenantCtx) -> bool {
    ctx.require_staff().is_ok()
}

pub async fn list_services(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    status: Option<ServiceStatus>,
    args: PageArgs,
) -> AppResult<Page<tenant_services::Model>> {
    let mut select = scoped::<tenant_services::Entity>(ctx.tenant_id);
    let status = if sees_all(ctx) {
        status
    } else if status.is_some_and(|s| s != ServiceStatus::Live) {
        return Err(AppError::Forbidden(
            "only staff see services that are not live",
        ));
    } else {
        Some(ServiceStatus::Live)
    };
    if let Some(s) = status {
        select = select.filter(tenant_services::Column::Status.eq(s.as_str()));
    }
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        select,
        tenant_services::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

/// A service by slug (live ones for everybody, all for staff).
pub async fn service_by_slug(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    slug: &str,
) -> AppResult<tenant_services::Model> {
    let txn = begin_tenant(db, ctx.tenant_id).await?;
    let s = scoped::<tenant_services::Entity>(ctx.tenant_id)
        .filter(tenant_services::Column::Slug.eq(slug))
        .one(&txn)
        .await?;
    txn.commit().await?;
    match s {
        Some(s) if sees_all(ctx) || s.status == "live" => Ok(s),
        _ => Err(AppError::NotFound("service")),
    }
}

async fn find_service<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    id: ServiceId,
) -> AppResult<tenant_services::Model> {
    scoped::<tenant_services::Entity>(tenant)
        .filter(tenant_services::Column::Id.eq(id.0))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("service"))
}

async fn find_revision<C: ConnectionTrait>(
    conn: &C,
    tenant: TenantId,
    service: Uuid,
    revision: i64,
) -> AppResult<service_revisions::Model> {
    scoped::<service_revisions::Entity>(tenant)
        .filter(service_revisions::Column::ServiceId.eq(service))
        .filter(service_revisions::Column::Revision.eq(revision))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("service revision"))
}

/// Revisions of several services in one read (`services[i]` at `revisions[i]` and others; the
/// caller picks the pairs it asked for).
pub async fn revisions_of(
    db: &crate::db::Db,
    tenant: TenantId,
    services: Vec<Uuid>,
    revisions: Vec<i64>,
) -> AppResult<Vec<service_revisions::Model>> {
    let select = scoped::<service_revisions::Entity>(tenant)
        .filter(service_revisions::Column::ServiceId.is_in(services))
        .filter(service_revisions::Column::Revision.is_in(revisions));
    read_tenant(db, tenant, select).await
}

pub async fn list_revisions(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    service: Uuid,
    args: PageArgs,
) -> AppResult<Page<service_revisions::Model>> {
    ctx.require_staff()?;
    let select = scoped::<service_revisions::Entity>(ctx.tenant_id)
        .filter(service_revisions::Column::ServiceId.eq(service));
    fetch_tenant_page(
        db,
        ctx.tenant_id,
        select,
        service_revisions::Column::Id,
        |m| m.id,
        args,
    )
    .await
}

/// What a new revision consists of.
struct NewRevision {
    upstream: Option<template_versions::Model>,
    content: ServiceContent,
    reason: String,
}

/// Writes revision `current + 1` and moves the service to it, unless someone else moved it first
/// (`CONFLICT`). Keeps the adoption row in step with the pinned version.
async fn commit_revision(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    service: &tenant_services::Model,
    new: NewRevision,
) -> AppResult<tenant_services::Model> {
    let content = new.content.to_value();
    let overlay = match &new.upstream {
        Some(v) => merge::diff(&v.content, &content),
        None => Overlay::default(),
    };
    let overlay = serde_json::to_value(&overlay)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("overlay to JSON: {e}")))?;
    let revision = service.current_revision + 1;
    let now = Utc::now();
    let upstream_id = new.upstream.as_ref().map(|v| v.id);
    let moved = tenant_services::Entity::update_many()
        .col_expr(
            tenant_services::Column::CurrentRevision,
            Expr::value(revision),
        )
        .col_expr(
            tenant_services::Column::Overlay,
            Expr::value(overlay.clone()),
        )
        .col_expr(
            tenant_services::Column::UpstreamVersionId,
            Expr::value(upstream_id),
        )
        .col_expr(
            tenant_services::Column::Title,
            Expr::value(new.content.title.de.clone()),
        )
        .col_expr(tenant_services::Column::UpdatedAt, Expr::value(now))
        .filter(tenant_services::Column::TenantId.eq(ctx.tenant_id.0))
        .filter(tenant_services::Column::Id.eq(service.id))
        .filter(tenant_services::Column::CurrentRevision.eq(service.current_revision))
        .exec(txn)
        .await?;
    if moved.rows_affected != 1 {
        return Err(AppError::conflict(
            "input.serviceId",
            "the service changed meanwhile; reload and try again",
        ));
    }
    service_revisions::ActiveModel {
        id: Set(Uuid::now_v7()),
        tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(service.id),
        revision: Set(revision),
        upstream_version_id: Set(upstream_id),
        overlay: Set(overlay),
        content: Set(content),
        reason: Set(new.reason.clone()),
        created_by: Set(ctx.staff_user()),
        created_at: Set(now),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "service_revisions_tenant_id_service_id_revision_key",
            "input.serviceId",
            "the service changed meanwhile; reload and try again",
        )
    })?;
    if let (Some(v), Some(template)) = (&new.upstream, service.template_id) {
        adopt(txn, ctx.tenant_id, service.id, template, v.id).await?;
    }
    audit::record(
        txn,
        ctx.tenant_id,
        &ctx.actor(),
        "service.revise",
        format!("service:{}", service.id),
        serde_json::json!({ "revision": revision, "reason": new.reason }),
    )
    .await?;
    find_service(txn, ctx.tenant_id, ServiceId(service.id)).await
}

/// Records (or moves) the service's lineage row.
async fn adopt(
    txn: &DatabaseTransaction,
    tenant: TenantId,
    service: Uuid,
    template: Uuid,
    version: Uuid,
) -> AppResult<()> {
    let existing = template_adoptions::Entity::find_by_id(service)
        .one(txn)
        .await?;
    let row = template_adoptions::ActiveModel {
        service_id: Set(service),
        tenant_id: Set(tenant.0),
        template_id: Set(template),
        template_version_id: Set(version),
        updated_at: Set(Utc::now()),
    };
    if existing.is_some() {
        row.update(txn).await?;
    } else {
        row.insert(txn).await?;
    }
    Ok(())
}

/// Forks a template version into a new draft service of the caller's tenant.
pub async fn fork(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    version_id: Uuid,
    slug: Slug,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let (template, version) = find_version(&txn, Some(ctx.tenant_id), version_id).await?;
    if version.status == "deprecated" {
        return Err(AppError::invalid(
            "input.templateVersionId",
            format!(
                "version {} is deprecated{}; fork a newer one",
                version.version,
                version
                    .deprecation_note
                    .as_deref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            ),
        ));
    }
    let content = ServiceContent::parse(&version.content)?;
    let now = Utc::now();
    let service = tenant_services::ActiveModel {
        id: Set(ServiceId::new().0),
        tenant_id: Set(ctx.tenant_id.0),
        slug: Set(slug.to_string()),
        title: Set(content.title.de.clone()),
        template_id: Set(Some(template.id)),
        upstream_version_id: Set(Some(version.id)),
        overlay: Set(Value::Array(vec![])),
        current_revision: Set(0),
        status: Set(ServiceStatus::Draft.as_str().to_owned()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "tenant_services_tenant_id_slug_key",
            "input.slug",
            "the tenant already has a service with this slug",
        )
    })?;
    let reason = format!("fork {}@{}", template.slug, version.version);
    let service = commit_revision(
        &txn,
        ctx,
        &service,
        NewRevision {
            upstream: Some(version),
            content,
            reason,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(service)
}

/// Applies typed edits as one new revision.
pub async fn customize(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    edits: Vec<Change>,
    note: Option<String>,
    expected_revision: Option<i64>,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    if edits.is_empty() {
        return Err(AppError::invalid(
            "input.changes",
            "name at least one change",
        ));
    }
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, ctx.tenant_id, id).await?;
    // Edits made on an older revision would silently overwrite the change in between.
    if expected_revision.is_some_and(|r| r != service.current_revision) {
        return Err(AppError::conflict(
            "input.expectedRevision",
            format!(
                "the service is at revision {} now; reload and try again",
                service.current_revision
            ),
        ));
    }
    let current = find_revision(&txn, ctx.tenant_id, service.id, service.current_revision).await?;
    let mut content = ServiceContent::parse(&current.content)?;
    changes::apply(&mut content, edits)?;
    // Validate the whole document (references, schema) as a publish would.
    let content = ServiceContent::parse(&content.to_value())?;
    let upstream = pinned_version(&txn, &service).await?;
    let reason = match note {
        Some(n) if !n.trim().is_empty() => format!("customize: {}", n.trim()),
        _ => "customize".to_owned(),
    };
    let service = commit_revision(
        &txn,
        ctx,
        &service,
        NewRevision {
            upstream,
            content,
            reason,
        },
    )
    .await?;
    txn.commit().await?;
    Ok(service)
}

/// A new revision with the given content, pinned to the same upstream version (tenant files).
pub(crate) async fn replace_content(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    service: &tenant_services::Model,
    content: ServiceContent,
    reason: &str,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, ctx.tenant_id, ServiceId(service.id)).await?;
    let upstream = pinned_version(&txn, &service).await?;
    let service = commit_revision(
        &txn,
        ctx,
        &service,
        NewRevision {
            upstream,
            content,
            reason: reason.to_owned(),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(service)
}

async fn pinned_version<C: ConnectionTrait>(
    conn: &C,
    service: &tenant_services::Model,
) -> AppResult<Option<template_versions::Model>> {
    match service.upstream_version_id {
        Some(id) => Ok(template_versions::Entity::find_by_id(id).one(conn).await?),
        None => Ok(None),
    }
}

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
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    id: ServiceId,
    to_version: &str,
) -> AppResult<UpdateMerge> {
    let service = find_service(txn, ctx.tenant_id, id).await?;
    let (Some(template_id), Some(from)) =
        (service.template_id, pinned_version(txn, &service).await?)
    else {
        return Err(AppError::invalid(
            "input.serviceId",
            "the service has no upstream template",
        ));
    };
    let (_, _) = find_version(txn, Some(ctx.tenant_id), from.id).await?;
    let to = find_version_by_number(txn, template_id, to_version)
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
    let current = find_revision(txn, ctx.tenant_id, service.id, service.current_revision).await?;
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

fn resolve_error(e: ResolveError) -> AppError {
    match e {
        ResolveError::Unresolved { paths } => AppError::MergeConflict { paths },
        ResolveError::Unknown { paths } => AppError::Validation(
            paths
                .into_iter()
                .map(|p| {
                    (
                        format!("input.resolutions[{p}]"),
                        "is not a conflict of this merge".to_owned(),
                    )
                })
                .collect(),
        ),
        ResolveError::Invalid { path, reason } => {
            AppError::invalid(format!("input.resolutions[{path}]"), reason)
        }
    }
}

/// A new revision equal to an old one (its upstream version, overlay and content).
pub async fn rollback(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    revision: i64,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, ctx.tenant_id, id).await?;
    if revision == service.current_revision {
        return Err(AppError::invalid(
            "input.revision",
            "this is already the current revision",
        ));
    }
    let old = find_revision(&txn, ctx.tenant_id, service.id, revision)
        .await
        .map_err(|_| AppError::invalid("input.revision", "the service has no such revision"))?;
    let upstream = match old.upstream_version_id {
        Some(v) => template_versions::Entity::find_by_id(v).one(&txn).await?,
        None => None,
    };
    let content = ServiceContent::parse(&old.content)?;
    let service = commit_revision(
        &txn,
        ctx,
        &service,
        NewRevision {
            upstream,
            content,
            reason: format!("rollback to {revision}"),
        },
    )
    .await?;
    txn.commit().await?;
    Ok(service)
}

/// Draft (or retired) → live. Every department the routing names must exist in the tenant.
pub async fn publish(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, ctx.tenant_id, id).await?;
    if service.status == "live" {
        return Err(AppError::conflict(
            "input.serviceId",
            "the service is already live",
        ));
    }
    let current = find_revision(&txn, ctx.tenant_id, service.id, service.current_revision).await?;
    let content = ServiceContent::parse(&current.content)?;
    let known: Vec<String> = scoped::<departments::Entity>(ctx.tenant_id)
        .all(&txn)
        .await?
        .into_iter()
        .map(|d| d.key)
        .collect();
    let mut missing = crate::error::FieldErrors::new();
    for rule in &content.routing {
        if !known.iter().any(|k| k == rule.department.as_str()) {
            missing.insert(
                format!("/routing/{}/department", rule.key),
                format!(
                    "the tenant has no department `{}`; add it or change the routing",
                    rule.department
                ),
            );
        }
    }
    if !missing.is_empty() {
        return Err(AppError::Validation(missing));
    }
    let service = set_status(&txn, ctx, service, ServiceStatus::Live).await?;
    txn.commit().await?;
    Ok(service)
}

/// Live (or draft) → retired: no new applications; existing ones continue.
pub async fn retire(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, ctx.tenant_id, id).await?;
    if service.status == "retired" {
        return Err(AppError::conflict(
            "input.serviceId",
            "the service is already retired",
        ));
    }
    let service = set_status(&txn, ctx, service, ServiceStatus::Retired).await?;
    // Retired services no longer count as adoption.
    template_adoptions::Entity::delete_by_id(service.id)
        .exec(&txn)
        .await?;
    txn.commit().await?;
    Ok(service)
}

async fn set_status(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    service: tenant_services::Model,
    status: ServiceStatus,
) -> AppResult<tenant_services::Model> {
    let reactivated = service.status == "retired";
    let mut am: tenant_services::ActiveModel = service.into();
    am.status = Set(status.as_str().to_owned());
    am.updated_at = Set(Utc::now());
    let service = am.update(txn).await?;
    if reactivated && let (Some(t), Some(v)) = (service.template_id, service.upstream_version_id) {
        adopt(txn, ctx.tenant_id, service.id, t, v).await?;
    }
    audit::record(
        txn,
        ctx.tenant_id,
        &ctx.actor(),
        &format!("service.{}", status.as_str()),
        format!("service:{}", service.id),
        serde_json::json!({ "slug": service.slug }),
    )
    .await?;
    Ok(service)
}

// ---- proposals back upstream ------------------------------------------------------------------

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
    let service = find_service(&txn, ctx.tenant_id, id).await?;
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
    let current = find_revision(&txn, ctx.tenant_id, service.id, service.current_revision).await?;
    let proposal = template_proposals::ActiveModel {
        id: Set(ProposalId::new().0),
        template_id: Set(template_id),
        base_version_id: Set(base),
        proposer_tenant_id: Set(ctx.tenant_id.0),
        service_id: Set(service.id),
        overlay: Set(service.overlay.clone()),
        content: Set(current.content),
        message: Set(message),
        status: Set("open".to_owned()),
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
        ctx.tenant_id,
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
    template: Uuid,
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
        select = select.filter(template_proposals::Column::ProposerTenantId.eq(ctx.tenant_id.0));
    }
    let rows = select.all(&txn).await?;
    txn.commit().await?;
    Ok(rows)
}

async fn open_proposal(
    txn: &DatabaseTransaction,
    ctx: &TenantCtx,
    id: ProposalId,
) -> AppResult<(templates::Model, template_proposals::Model)> {
    let proposal = template_proposals::Entity::find_by_id(id.0)
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("proposal"))?;
    let template = marketplace::own_template(txn, ctx, TemplateId(proposal.template_id)).await?;
    if proposal.status != "open" {
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
    let (template, proposal) = open_proposal(&txn, ctx, id).await?;
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
    am.status = Set("accepted".to_owned());
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
    let (_, proposal) = open_proposal(&txn, ctx, id).await?;
    let mut am: template_proposals::ActiveModel = proposal.into();
    am.status = Set("rejected".to_owned());
    am.decided_at = Set(Some(Utc::now()));
    am.decided_by = Set(ctx.staff_user());
    am.decision_note = Set(note);
    let proposal = am.update(&txn).await?;
    audit::record(
        &txn,
        ctx.tenant_id,
        &ctx.actor(),
        "template.proposal_reject",
        format!("template_proposal:{}", proposal.id),
        serde_json::json!({}),
    )
    .await?;
    txn.commit().await?;
    Ok(proposal)
}
