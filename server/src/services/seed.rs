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
