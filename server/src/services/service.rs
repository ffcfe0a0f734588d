//! A tenant's services: what the use cases share (status, reading services and revisions, the
//! lineage row, merge errors). The use cases: [`super::revisions`] (fork, customize, roll back),
//! [`super::updates`] (upstream updates), [`super::status`] (go live, retire) and
//! [`super::proposals`] (local changes proposed back upstream).
//!
//! Every accepted change writes a new `service_revisions` row (numbered from 1) and moves the
//! service's `current_revision` with a compare-and-set, so two concurrent edits cannot both win.
//! The overlay is always `diff(pinned upstream, resolved content)`.

use chrono::Utc;
use entity::{service_revisions, template_adoptions, template_versions, tenant_services};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set,
};
use uuid::Uuid;

use super::merge::ResolveError;
use crate::context::TenantCtx;
use crate::db::search::FullText;
use crate::db::{TenantTx, begin_tenant, read_tenant};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Page, PageArgs, fetch_tenant_page};
use crate::ids::{ServiceId, TenantId};

pub use entity::states::ServiceStatus;

/// Staff of the tenant see every service; everyone else only live ones.
fn sees_all(ctx: &TenantCtx) -> bool {
    ctx.require_staff().is_ok()
}

/// What a list of services is narrowed to, besides the status.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ServiceFilter {
    /// Full text over title and summary (every word, as a prefix).
    pub search: Option<String>,
    /// Category key of the current revision.
    pub category: Option<String>,
}

/// Where the services' full-text index lives (see the service search migration).
const SERVICES_SEARCH: FullText = FullText {
    key: "tenant_services.id",
    tsvector: "tenant_services.search",
    fts: "tenant_services_fts",
    fts_key: "service_id",
    fts_tenant: Some("tenant_id"),
};

/// The tenant's services, in creation order: live ones for everybody, all (or those in
/// `status`) for staff; narrowed by `filter`.
pub async fn list_services(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    status: Option<ServiceStatus>,
    filter: &ServiceFilter,
    args: PageArgs,
) -> AppResult<Page<tenant_services::Model>> {
    let mut select = tenant_services::Entity::find();
    if let Some(c) = &filter.category {
        select = select.filter(tenant_services::Column::Category.eq(c.as_str()));
    }
    if let Some(cond) = filter.search.as_deref().and_then(|s| {
        SERVICES_SEARCH.condition(db.get_database_backend(), s, Some(ctx.tenant_id.0))
    }) {
        select = select.filter(cond);
    }
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
        select = select.filter(tenant_services::Column::Status.eq(s));
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
    let s = txn
        .select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Slug.eq(slug))
        .one(&txn)
        .await?;
    txn.commit().await?;
    match s {
        Some(s) if sees_all(ctx) || s.status == ServiceStatus::Live => Ok(s),
        _ => Err(AppError::NotFound("service")),
    }
}

pub(super) async fn find_service(
    txn: &TenantTx,
    id: ServiceId,
) -> AppResult<tenant_services::Model> {
    txn.select::<tenant_services::Entity>()
        .filter(tenant_services::Column::Id.eq(id.0))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("service"))
}

pub(super) async fn find_revision(
    txn: &TenantTx,
    service: Uuid,
    revision: i64,
) -> AppResult<service_revisions::Model> {
    txn.select::<service_revisions::Entity>()
        .filter(service_revisions::Column::ServiceId.eq(service))
        .filter(service_revisions::Column::Revision.eq(revision))
        .one(txn)
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
    let select = service_revisions::Entity::find()
        .filter(service_revisions::Column::ServiceId.is_in(services))
        .filter(service_revisions::Column::Revision.is_in(revisions));
    read_tenant(db, tenant, select).await
}

pub async fn list_revisions(
    db: &crate::db::Db,
    ctx: &TenantCtx,
    service: ServiceId,
    args: PageArgs,
) -> AppResult<Page<service_revisions::Model>> {
    ctx.require_staff()?;
    let select =
        service_revisions::Entity::find().filter(service_revisions::Column::ServiceId.eq(service));
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

/// Records (or moves) the service's lineage row.
pub(super) async fn adopt(
    txn: &TenantTx,
    service: Uuid,
    template: Uuid,
    version: Uuid,
) -> AppResult<()> {
    let existing = template_adoptions::Entity::find_by_id(service)
        .one(txn)
        .await?;
    let row = template_adoptions::ActiveModel {
        service_id: Set(service),
        tenant_id: Set(txn.tenant().0),
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

pub(super) async fn pinned_version<C: ConnectionTrait>(
    conn: &C,
    service: &tenant_services::Model,
) -> AppResult<Option<template_versions::Model>> {
    match service.upstream_version_id {
        Some(id) => Ok(template_versions::Entity::find_by_id(id).one(conn).await?),
        None => Ok(None),
    }
}

pub(super) fn resolve_error(e: ResolveError) -> AppError {
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
