//! A service's status: go live (draft or retired → live), retire (→ retired).

use chrono::Utc;
use entity::{departments, template_adoptions, tenant_services};
use sea_orm::{ActiveModelTrait, DatabaseConnection, EntityTrait, Set};

use super::service::{ServiceStatus, adopt, find_revision, find_service};
use crate::audit;
use crate::content::ServiceContent;
use crate::context::TenantCtx;
use crate::db::{TenantTx, begin_tenant_write};
use crate::error::{AppError, AppResult};
use crate::ids::ServiceId;

/// Draft (or retired) → live. Every department the routing names must exist in the tenant.
pub async fn publish(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: ServiceId,
) -> AppResult<tenant_services::Model> {
    ctx.require_tenant_admin()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let service = find_service(&txn, id).await?;
    if service.status == ServiceStatus::Live {
        return Err(AppError::conflict(
            "input.serviceId",
            "the service is already live",
        ));
    }
    let current = find_revision(&txn, service.id, service.current_revision).await?;
    let content = ServiceContent::parse(&current.content)?;
    let known: Vec<String> = txn
        .select::<departments::Entity>()
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
    let service = find_service(&txn, id).await?;
    if service.status == ServiceStatus::Retired {
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
    txn: &TenantTx,
    ctx: &TenantCtx,
    service: tenant_services::Model,
    status: ServiceStatus,
) -> AppResult<tenant_services::Model> {
    let reactivated = service.status == ServiceStatus::Retired;
    let mut am: tenant_services::ActiveModel = service.into();
    am.status = Set(status);
    am.updated_at = Set(Utc::now());
    let service = am.update(txn).await?;
    if reactivated && let (Some(t), Some(v)) = (service.template_id, service.upstream_version_id) {
        adopt(txn, service.id, t, v).await?;
    }
    audit::record(
        txn,
        &ctx.actor(),
        &format!("service.{}", status.as_str()),
        format!("service:{}", service.id),
        serde_json::json!({ "slug": service.slug }),
    )
    .await?;
    Ok(service)
}
