//! Revisions of a service: fork a template version, customize it, replace its content (tenant
//! files), roll back. Each writes one new revision ([`commit_revision`]), which also keeps the
//! service's listing columns (title, summary, category; the search index follows them) in step.

use chrono::Utc;
use entity::states::VersionStatus;
use entity::{service_revisions, template_versions, tenant_services};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, Set};
use serde_json::Value;
use uuid::Uuid;

use super::changes::{self, Change};
use super::merge::{self, Overlay};
use super::service::{ServiceStatus, adopt, find_revision, find_service, pinned_version};
use crate::audit;
use crate::content::ServiceContent;
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant_write};
use crate::error::{AppError, AppResult, on_unique};
use crate::ids::ServiceId;
use crate::marketplace::service::find_version;
use crate::tenancy::types::Slug;

/// What a new revision consists of.
pub(super) struct NewRevision {
    pub(super) upstream: Option<template_versions::Model>,
    pub(super) content: ServiceContent,
    pub(super) reason: String,
}

/// Writes revision `current + 1` and moves the service to it, unless someone else moved it first
/// (`CONFLICT`). Keeps the adoption row in step with the pinned version.
pub(super) async fn commit_revision(
    txn: &TenantTx,
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
    let moved = txn
        .update_many::<tenant_services::Entity>()
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
        .col_expr(
            tenant_services::Column::Summary,
            Expr::value(new.content.summary.de.clone()),
        )
        .col_expr(
            tenant_services::Column::Category,
            Expr::value(new.content.category.as_str()),
        )
        .col_expr(tenant_services::Column::UpdatedAt, Expr::value(now))
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
        adopt(txn, service.id, template, v.id).await?;
    }
    audit::record(
        txn,
        &ctx.actor(),
        "service.revise",
        format!("service:{}", service.id),
        serde_json::json!({ "revision": revision, "reason": new.reason }),
    )
    .await?;
    find_service(txn, ServiceId(service.id)).await
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
    if version.status == VersionStatus::Deprecated {
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
        summary: Set(content.summary.de.clone()),
        category: Set(content.category.as_str().to_owned()),
        template_id: Set(Some(template.id)),
        upstream_version_id: Set(Some(version.id)),
        overlay: Set(Value::Array(vec![])),
        current_revision: Set(0),
        status: Set(ServiceStatus::Draft),
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
    let service = find_service(&txn, id).await?;
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
    let current = find_revision(&txn, service.id, service.current_revision).await?;
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
    let service = find_service(&txn, ServiceId(service.id)).await?;
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

/// A new revision equal to an old one (its upstream version, overlay and content).
pub async fn rollback(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
    revision: i64,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, id).await?;
    if revision == service.current_revision {
        return Err(AppError::invalid(
            "input.revision",
            "this is already the current revision",
        ));
    }
    let old = find_revision(&txn, service.id, revision)
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
