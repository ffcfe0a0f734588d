//! Services declared in a tenant file (and, after them, its appointment locations and offers): `[[services]]` with the template, version, local changes
//! (overlay operations, addressed by key) and whether the service is live. Applying is additive:
//! a missing service is forked, customized and published; an existing one is left alone (its
//! later history belongs to the tenant's administrators).

use sea_orm::DatabaseConnection;
use serde::Deserialize;

use super::merge::{self, Overlay};
use super::{revisions, service, status};
use crate::content::ServiceContent;
use crate::context::TenantCtx;
use crate::error::{AppError, AppResult};
use crate::ids::TemplateId;
use crate::marketplace::service as marketplace;
use crate::tenancy::types::Slug;

/// `[[services]]` of a tenant file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceFile {
    pub slug: String,
    /// Template slug.
    pub template: String,
    pub version: String,
    #[serde(default)]
    pub live: bool,
    /// Local changes: `{ op = "set", path = "/fees/steuer/amountCents", value = 12000 }`, …
    #[serde(default)]
    pub overlay: Overlay,
}

/// A checked `[[services]]` entry.
#[derive(Clone, Debug)]
pub struct ServiceSpec {
    pub slug: Slug,
    pub template: String,
    pub version: semver::Version,
    pub live: bool,
    pub overlay: Overlay,
}

impl ServiceFile {
    /// `field` is the entry's path in the file (`services[0]`).
    pub fn parse(self, field: &str) -> AppResult<ServiceSpec> {
        Ok(ServiceSpec {
            slug: Slug::parse(&format!("{field}.slug"), &self.slug)?,
            template: self.template,
            version: semver::Version::parse(&self.version)
                .map_err(|e| AppError::invalid(format!("{field}.version"), e.to_string()))?,
            live: self.live,
            overlay: self.overlay,
        })
    }
}

/// Whether the service was created.
pub async fn apply(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    spec: &ServiceSpec,
) -> AppResult<bool> {
    match service::service_by_slug(db, ctx, spec.slug.as_str()).await {
        Ok(_) => return Ok(false),
        Err(AppError::NotFound(_)) => {}
        Err(e) => return Err(e),
    }
    let template = marketplace::template_by_slug(db, Some(ctx.tenant_id), &spec.template).await?;
    let txn = crate::db::begin_tenant(db, ctx.tenant_id).await?;
    let version = marketplace::find_version_by_number(
        &txn,
        TemplateId(template.id),
        &spec.version.to_string(),
    )
    .await?;
    txn.commit().await?;
    let forked = revisions::fork(db, ctx, version.id, spec.slug.clone()).await?;
    if !spec.overlay.0.is_empty() {
        let customized = merge::apply(&version.content, &spec.overlay)
            .map_err(|e| AppError::invalid("overlay", e.to_string()))?;
        let content = ServiceContent::parse(&customized)?;
        revisions::replace_content(db, ctx, &forked, content, "customize: tenant file").await?;
    }
    if spec.live {
        status::publish(db, ctx, crate::ids::ServiceId(forked.id)).await?;
    }
    Ok(true)
}

/// Applies `<tenants dir>/marketplace` (templates and versions), then the services of every
/// tenant file. Returns one report line per change. Run after the tenants themselves.
pub async fn apply_all(
    db: &DatabaseConnection,
    tenants_dir: &std::path::Path,
    tenants: &[crate::tenancy::onboarding::TenantSpec],
) -> anyhow::Result<Vec<String>> {
    use crate::marketplace::seed::{self as templates, SeedOutcome};
    let mut report = Vec::new();
    let marketplace = tenants_dir.join("marketplace");
    if marketplace.is_dir() {
        for seed in templates::load_dir(&marketplace)? {
            let outcome = templates::apply(db, &seed)
                .await
                .map_err(|e| anyhow::anyhow!("template {}: {}", seed.slug, e.describe()))?;
            match outcome {
                SeedOutcome::Created => report.push(format!("template {}: created", seed.slug)),
                SeedOutcome::Published(v) => report.push(format!(
                    "template {}: published {}",
                    seed.slug,
                    v.join(", ")
                )),
                SeedOutcome::Unchanged => {}
            }
        }
    }
    for tenant in tenants {
        if tenant.services.is_empty() && tenant.locations.is_empty() {
            continue;
        }
        let ctx = crate::marketplace::seed::system_ctx(db, tenant.slug.as_str(), "onboarding")
            .await
            .map_err(|e| anyhow::anyhow!("tenant {}: {e}", tenant.slug))?;
        for spec in &tenant.services {
            let created = apply(db, &ctx, spec).await.map_err(|e| {
                anyhow::anyhow!(
                    "tenant {} service {}: {}",
                    tenant.slug,
                    spec.slug,
                    e.describe()
                )
            })?;
            if created {
                report.push(format!("{}: service {} created", tenant.slug, spec.slug));
            }
        }
        let lines = crate::appointments::seed::apply(
            db,
            &ctx,
            &tenant.locations,
            &tenant.appointment_offers,
        )
        .await
        .map_err(|e| anyhow::anyhow!("tenant {}: {}", tenant.slug, e.describe()))?;
        report.extend(lines.into_iter().map(|l| format!("{}: {l}", tenant.slug)));
    }
    Ok(report)
}
