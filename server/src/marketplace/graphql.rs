//! GraphQL of the marketplace: browse and search templates, their versions, changelog and
//! adoption; authors create templates and publish or deprecate versions.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use entity::states::VersionStatus;
use entity::{template_versions, templates, tenants};
use sea_orm::EntityTrait;
use serde_json::Value;
use uuid::Uuid;

use super::pages::MarketplacePages;
use super::service::{
    self, NewTemplate, NewVersion, TemplateFilter, VersionInfo, Viewer, Visibility,
};
use crate::content::ServiceContent;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::loaders::RequestLoader;
use crate::graphql::parse_id;
use crate::graphql::{request_ctx, request_loader, state, tenant_ctx};
use crate::ids::{TemplateId, TemplateVersionId, TenantId};
use crate::tenancy::types::Slug;

fn db<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::db::Db> {
    state::<crate::db::Db>(ctx)
}

fn marketplace_pages<'a>(ctx: &'a Context<'_>) -> AppResult<&'a MarketplacePages> {
    Ok(&state::<crate::state::AppState>(ctx)?.marketplace_pages)
}

/// After a committed change of templates or versions: the remembered pages go.
pub(crate) fn forget_marketplace_pages(ctx: &Context<'_>) -> AppResult<()> {
    marketplace_pages(ctx)?.forget(())
}

/// The tenant the request is made for, if any: it also sees its own private templates.
fn viewer(ctx: &Context<'_>) -> AppResult<Viewer> {
    Ok(request_ctx(ctx)?.tenant.as_ref().map(|t| TenantId(t.id)))
}

fn loader<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<MarketplaceLoader>> {
    request_loader::<MarketplaceLoader>(ctx)
}

// ---- loader ------------------------------------------------------------------------------------

/// Request-wide loader: versions and adoption of a page of templates cost one query each.
pub struct MarketplaceLoader {
    pub db: crate::db::Db,
    pub viewer: Viewer,
}

impl crate::graphql::loaders::Lazy for MarketplaceLoader {
    fn make(loaders: &crate::graphql::loaders::Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
            viewer: loaders.viewer,
        }
    }
}

/// Key: all versions of a template, newest first.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct VersionsOf(pub Uuid);

/// Key: tenants per version of a template (`version id → tenants`), plus the template's total
/// under `Uuid::nil()`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AdoptionOf(pub Uuid);

impl Loader<VersionsOf> for MarketplaceLoader {
    type Value = Vec<VersionInfo>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[VersionsOf],
    ) -> Result<HashMap<VersionsOf, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let rows = service::version_infos_of(&self.db, self.viewer, &ids).await?;
        Ok(service::versions_by_template(ids, rows)
            .into_iter()
            .map(|(id, versions)| (VersionsOf(id), versions))
            .collect())
    }
}

impl Loader<AdoptionOf> for MarketplaceLoader {
    type Value = HashMap<Uuid, i64>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[AdoptionOf],
    ) -> Result<HashMap<AdoptionOf, Self::Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let adoptions = service::adoption_of(&self.db, &ids).await?;
        Ok(ids
            .iter()
            .map(|id| (AdoptionOf(*id), adoptions.counts_of(*id)))
            .collect())
    }
}

/// Key: the content of a version (large; loaded only when asked for).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ContentOfVersion(pub Uuid);

impl Loader<ContentOfVersion> for MarketplaceLoader {
    type Value = Value;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[ContentOfVersion],
    ) -> Result<HashMap<ContentOfVersion, Value>, Self::Error> {
        let ids: Vec<Uuid> = keys.iter().map(|k| k.0).collect();
        let txn = crate::db::begin_viewer(&self.db, self.viewer).await?;
        let rows = service::contents_of(&txn, &ids).await?;
        txn.commit().await.map_err(AppError::from)?;
        Ok(rows
            .into_iter()
            .map(|(id, c)| (ContentOfVersion(id), c))
            .collect())
    }
}

/// Key: the tenant that authors templates (slug and name; public).
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AuthorOf(pub Uuid);

impl Loader<AuthorOf> for MarketplaceLoader {
    type Value = TemplateAuthor;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[AuthorOf]) -> Result<HashMap<AuthorOf, Self::Value>, Self::Error> {
        use sea_orm::{ColumnTrait, QueryFilter, QueryTrait as _};
        let query = tenants::Entity::find()
            .filter(tenants::Column::Id.is_in(keys.iter().map(|k| k.0)))
            .into_query();
        // The tenant directory is not tenant data: readable without a tenant.
        let rows: Vec<tenants::Model> = crate::db::read_as(&self.db, None, query).await?;
        Ok(rows
            .into_iter()
            .map(|t| {
                (
                    AuthorOf(t.id),
                    TemplateAuthor {
                        slug: t.slug,
                        name: t.name,
                    },
                )
            })
            .collect())
    }
}

// ---- output types ------------------------------------------------------------------------------

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum TemplateVisibility {
    /// Every municipality can see and fork it.
    Public,
    /// Only the author's municipality.
    Private,
}

impl From<TemplateVisibility> for Visibility {
    fn from(v: TemplateVisibility) -> Self {
        match v {
            TemplateVisibility::Public => Visibility::Public,
            TemplateVisibility::Private => Visibility::Private,
        }
    }
}

/// A service template in the marketplace, with what its page read brought along (else its
/// versions and adoption come from the request's loader).
pub struct Template(pub templates::Model, pub FromPage);

/// Read with a template's page (see [`service::list_templates`]).
#[derive(Default)]
pub struct FromPage {
    versions: Option<Vec<VersionInfo>>,
    adoption: Option<HashMap<Uuid, i64>>,
}

impl Template {
    pub fn alone(model: templates::Model) -> Self {
        Self(model, FromPage::default())
    }

    /// All versions, newest first.
    async fn all_versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<VersionInfo>> {
        along_or_load(ctx, &self.1.versions, VersionsOf(self.0.id)).await
    }

    /// Tenants per version, and the template's total under `Uuid::nil()`.
    async fn adoption_counts(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<HashMap<Uuid, i64>> {
        along_or_load(ctx, &self.1.adoption, AdoptionOf(self.0.id)).await
    }
}

/// What came along with the page, else the request's loader.
async fn along_or_load<K, V>(
    ctx: &Context<'_>,
    along: &Option<V>,
    key: K,
) -> async_graphql::Result<V>
where
    K: Send + Sync + std::hash::Hash + Eq + Clone + 'static,
    V: Clone + Default + Send + Sync + 'static,
    MarketplaceLoader: Loader<K, Value = V, Error = async_graphql::Error>,
{
    if let Some(v) = along {
        return Ok(v.clone());
    }
    Ok(loader(ctx)?.load_one(key).await?.unwrap_or_default())
}

#[Object]
impl Template {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Globally unique.
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// German title of the latest version.
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    async fn category(&self) -> &str {
        &self.0.category
    }
    /// LeiKa service key of the latest version.
    async fn leika_code(&self) -> Option<&str> {
        self.0.leika_code.as_deref()
    }
    async fn tags(&self) -> Vec<String> {
        serde_json::from_value(self.0.tags.clone()).unwrap_or_default()
    }
    /// SPDX license identifier.
    async fn license(&self) -> &str {
        &self.0.license
    }
    async fn visibility(&self) -> TemplateVisibility {
        if self.0.visibility == "private" {
            TemplateVisibility::Private
        } else {
            TemplateVisibility::Public
        }
    }
    /// The municipality whose authors publish it.
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<TemplateAuthor> {
        Ok(loader(ctx)?
            .load_one(AuthorOf(self.0.author_tenant_id))
            .await?
            .ok_or(AppError::NotFound("tenant"))?)
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.updated_at
    }
    /// All published versions, newest first.
    async fn versions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TemplateVersion>> {
        Ok(self
            .all_versions(ctx)
            .await?
            .into_iter()
            .map(|v| TemplateVersion(v, None))
            .collect())
    }
    /// The newest version (deprecated or not), if any was published.
    async fn latest_version(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<TemplateVersion>> {
        let versions = self.all_versions(ctx).await?;
        Ok(versions
            .into_iter()
            .next()
            .map(|v| TemplateVersion(v, None)))
    }
    /// One version by number (`1.2.0`).
    async fn version(
        &self,
        ctx: &Context<'_>,
        version: String,
    ) -> async_graphql::Result<Option<TemplateVersion>> {
        let versions = self.all_versions(ctx).await?;
        Ok(versions
            .into_iter()
            .find(|v| v.version == version.trim())
            .map(|v| TemplateVersion(v, None)))
    }
    /// Change notes of every version, newest first.
    async fn changelog(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<ChangelogEntry>> {
        Ok(self
            .all_versions(ctx)
            .await?
            .into_iter()
            .map(|v| ChangelogEntry {
                version: v.version,
                changes: v.changelog,
                published_at: v.published_at,
            })
            .collect())
    }
    /// How many municipalities use the template, and which version.
    async fn adoption(&self, ctx: &Context<'_>) -> async_graphql::Result<Adoption> {
        // Both asked at once: the versions join the batch of the page's `versions` fields.
        let (counts, versions) =
            tokio::try_join!(self.adoption_counts(ctx), self.all_versions(ctx))?;
        Ok(Adoption {
            tenants: counts.get(&Uuid::nil()).copied().unwrap_or(0),
            by_version: versions
                .into_iter()
                .filter_map(|v| {
                    counts.get(&v.id).map(|n| VersionAdoption {
                        version: v.version,
                        tenants: *n,
                    })
                })
                .collect(),
        })
    }
    /// Change proposals from forking municipalities: all of them for the author tenant, a
    /// tenant's own otherwise. Staff only.
    async fn proposals(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::services::graphql::proposal::Proposal>> {
        let rows = crate::services::proposals::proposals_for_template(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            TemplateId(self.0.id),
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(crate::services::graphql::proposal::Proposal)
            .collect())
    }
}

#[derive(SimpleObject, Clone)]
pub struct TemplateAuthor {
    pub slug: String,
    pub name: String,
}

#[derive(SimpleObject)]
pub struct ChangelogEntry {
    pub version: String,
    pub changes: String,
    pub published_at: chrono::DateTime<chrono::Utc>,
}

#[derive(SimpleObject)]
pub struct Adoption {
    /// Municipalities using any version.
    pub tenants: i64,
    /// Municipalities per version (versions nobody uses are left out).
    pub by_version: Vec<VersionAdoption>,
}

#[derive(SimpleObject)]
pub struct VersionAdoption {
    pub version: String,
    pub tenants: i64,
}

/// A published, immutable version of a template. Listings carry it without content.
pub struct TemplateVersion(pub VersionInfo, pub Option<Value>);

impl From<template_versions::Model> for TemplateVersion {
    fn from(m: template_versions::Model) -> Self {
        Self(VersionInfo::from(&m), Some(m.content))
    }
}

#[Object]
impl TemplateVersion {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// Semantic version.
    async fn version(&self) -> &str {
        &self.0.version
    }
    async fn changelog(&self) -> &str {
        &self.0.changelog
    }
    async fn published_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.published_at
    }
    /// Deprecated versions cannot be forked any more; forks pinned to them keep working.
    async fn deprecated(&self) -> bool {
        self.0.status == VersionStatus::Deprecated
    }
    async fn deprecation_note(&self) -> Option<&str> {
        self.0.deprecation_note.as_deref()
    }
    /// The whole service: form, workflow, routing, fees, documents, texts.
    async fn content(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        if let Some(c) = &self.1 {
            return Ok(Json(c.clone()));
        }
        let content = loader(ctx)?
            .load_one(ContentOfVersion(self.0.id))
            .await?
            .ok_or(AppError::NotFound("template version"))?;
        Ok(Json(content))
    }
    /// Municipalities whose services are pinned to this version.
    async fn adoption(&self, ctx: &Context<'_>) -> async_graphql::Result<i64> {
        let counts = loader(ctx)?
            .load_one(AdoptionOf(self.0.template_id))
            .await?
            .unwrap_or_default();
        Ok(counts.get(&self.0.id).copied().unwrap_or(0))
    }
    async fn template(&self, ctx: &Context<'_>) -> async_graphql::Result<Template> {
        let txn = crate::db::begin_viewer(db(ctx)?, viewer(ctx)?).await?;
        let t = service::visible(viewer(ctx)?)
            .filter(sea_orm::ColumnTrait::eq(
                &templates::Column::Id,
                self.0.template_id,
            ))
            .one(&txn)
            .await
            .map_err(AppError::from)?;
        txn.commit().await.map_err(AppError::from)?;
        Ok(Template::alone(t.ok_or(AppError::NotFound("template"))?))
    }
}

use sea_orm::QueryFilter as _;

// ---- queries -----------------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct TemplateFilterInput {
    /// Full text over title and summary (German stemming on PostgreSQL; prefix match).
    pub search: Option<String>,
    pub category: Option<String>,
    pub leika_code: Option<String>,
    /// Slug of the author municipality.
    pub author: Option<String>,
}

#[derive(Default)]
pub struct MarketplaceQuery;

#[Object]
impl MarketplaceQuery {
    /// Browse the marketplace: public templates, plus the current tenant's private ones.
    async fn templates(
        &self,
        ctx: &Context<'_>,
        filter: Option<TemplateFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Template>> {
        let f = filter.unwrap_or_default();
        crate::db::search::check_search("filter.search", f.search.as_deref())?;
        let filter = TemplateFilter {
            search: f.search,
            category: f.category,
            leika_code: f.leika_code,
            author: f.author,
        };
        // What the page's nodes will ask for comes along in the page's round trip.
        let node = ctx.look_ahead().field("edges").field("node");
        let along = service::Along {
            versions: [
                "versions",
                "latestVersion",
                "version",
                "changelog",
                "adoption",
            ]
            .iter()
            .any(|f| node.field(f).exists()),
            adoption: node.field("adoption").exists(),
        };
        let (db, viewer, args) = (db(ctx)?, viewer(ctx)?, PageArgs::parse(ctx, first, after)?);
        let read = || service::list_templates(db, viewer, &filter, args, along);
        // The marketplace page is remembered for a few seconds (adoption counts, which every
        // fork changes, are always read).
        let service::TemplatePage {
            page,
            mut versions,
            adoption,
        } = if along.adoption {
            read().await?
        } else {
            let key = (viewer, filter.clone(), args, along.versions);
            marketplace_pages(ctx)?.get_or_read((), key, read).await?
        };
        Ok(into_connection(
            page,
            |m| m.id,
            |m| {
                let id = m.id;
                Template(
                    m,
                    FromPage {
                        versions: versions.as_mut().map(|v| v.remove(&id).unwrap_or_default()),
                        adoption: adoption.as_ref().map(|a| a.counts_of(id)),
                    },
                )
            },
        ))
    }

    /// A template by slug, if visible.
    async fn template(&self, ctx: &Context<'_>, slug: String) -> async_graphql::Result<Template> {
        Ok(Template::alone(
            service::template_by_slug(db(ctx)?, viewer(ctx)?, slug.trim()).await?,
        ))
    }
}

// ---- mutations ---------------------------------------------------------------------------------

#[derive(InputObject)]
pub struct CreateTemplateInput {
    /// Globally unique: 2–40 of a-z, 0-9 and single hyphens.
    pub slug: String,
    pub title: String,
    #[graphql(default)]
    pub summary: String,
    pub category: String,
    #[graphql(default)]
    pub tags: Vec<String>,
    /// SPDX identifier; defaults to the EU public licence.
    #[graphql(default_with = "String::from(\"EUPL-1.2\")")]
    pub license: String,
    #[graphql(default_with = "TemplateVisibility::Public")]
    pub visibility: TemplateVisibility,
}

#[derive(InputObject)]
pub struct PublishTemplateVersionInput {
    pub template_id: ID,
    /// `MAJOR.MINOR.PATCH`, greater than the latest version. Removing or retyping a field (or
    /// making one required) needs a major bump; adding optional elements a minor one.
    pub version: String,
    /// The whole service as JSON (see the content reference in the README).
    pub content: Json<Value>,
    #[graphql(default)]
    pub changelog: String,
}

#[derive(InputObject)]
pub struct DeprecateTemplateVersionInput {
    pub id: ID,
    pub note: Option<String>,
}

#[derive(InputObject)]
pub struct SetTemplateVisibilityInput {
    pub template_id: ID,
    pub visibility: TemplateVisibility,
}

#[derive(SimpleObject)]
pub struct TemplatePayload {
    pub template: Template,
}

#[derive(SimpleObject)]
pub struct TemplateVersionPayload {
    pub version: TemplateVersion,
}

fn text(field: &str, raw: &str, max: usize, required: bool) -> AppResult<String> {
    let s = raw.trim();
    if required && s.is_empty() {
        return Err(AppError::invalid(field, "must not be empty"));
    }
    if s.len() > max {
        return Err(AppError::invalid(
            field,
            format!("at most {max} characters"),
        ));
    }
    Ok(s.to_owned())
}

pub(crate) fn parse_version(field: &str, raw: &str) -> AppResult<semver::Version> {
    semver::Version::parse(raw.trim())
        .map_err(|e| AppError::invalid(field, format!("is not a semantic version: {e}")))
}

#[derive(Default)]
pub struct MarketplaceMutation;

#[Object]
impl MarketplaceMutation {
    /// Creates a template authored by the current tenant. Authors only.
    async fn create_template(
        &self,
        ctx: &Context<'_>,
        input: CreateTemplateInput,
    ) -> async_graphql::Result<TemplatePayload> {
        let mut tags = Vec::new();
        for (i, t) in input.tags.iter().enumerate().take(21) {
            tags.push(text(&format!("input.tags[{i}]"), t, 40, true)?);
        }
        if tags.len() > 20 {
            return Err(AppError::invalid("input.tags", "at most 20 tags").into());
        }
        let category = crate::content::Key::parse(input.category.trim())
            .map_err(|m| AppError::invalid("input.category", m))?;
        let new = NewTemplate {
            slug: Slug::parse("input.slug", &input.slug)?,
            title: text("input.title", &input.title, 200, true)?,
            summary: text("input.summary", &input.summary, 2000, false)?,
            category: category.to_string(),
            tags,
            license: text("input.license", &input.license, 64, true)?,
            visibility: input.visibility.into(),
        };
        let t = service::create_template(db(ctx)?, &tenant_ctx(ctx)?, new).await?;
        forget_marketplace_pages(ctx)?;
        Ok(TemplatePayload {
            template: Template::alone(t),
        })
    }

    /// Publishes an immutable version. Authors of the template's municipality only.
    async fn publish_template_version(
        &self,
        ctx: &Context<'_>,
        input: PublishTemplateVersionInput,
    ) -> async_graphql::Result<TemplateVersionPayload> {
        let new = NewVersion {
            template_id: TemplateId(parse_id("input.templateId", &input.template_id)?),
            version: parse_version("input.version", &input.version)?,
            content: ServiceContent::parse(&input.content.0)
                .map_err(|e| prefix(e, "input.content"))?,
            changelog: text("input.changelog", &input.changelog, 10_000, false)?,
        };
        let v = service::publish_version(db(ctx)?, &tenant_ctx(ctx)?, new).await?;
        forget_marketplace_pages(ctx)?;
        Ok(TemplateVersionPayload { version: v.into() })
    }

    /// Deprecates a version: no new forks; pinned services keep working.
    async fn deprecate_template_version(
        &self,
        ctx: &Context<'_>,
        input: DeprecateTemplateVersionInput,
    ) -> async_graphql::Result<TemplateVersionPayload> {
        let id = TemplateVersionId(parse_id("input.id", &input.id)?);
        let note = input
            .note
            .map(|n| text("input.note", &n, 2000, false))
            .transpose()?;
        let v = service::deprecate_version(db(ctx)?, &tenant_ctx(ctx)?, id, note).await?;
        forget_marketplace_pages(ctx)?;
        Ok(TemplateVersionPayload { version: v.into() })
    }

    /// Makes a template public or private. Authors of its municipality only.
    async fn set_template_visibility(
        &self,
        ctx: &Context<'_>,
        input: SetTemplateVisibilityInput,
    ) -> async_graphql::Result<TemplatePayload> {
        let id = TemplateId(parse_id("input.templateId", &input.template_id)?);
        let t = service::set_visibility(db(ctx)?, &tenant_ctx(ctx)?, id, input.visibility.into())
            .await?;
        forget_marketplace_pages(ctx)?;
        Ok(TemplatePayload {
            template: Template::alone(t),
        })
    }
}

/// Puts content paths under the input field they came from (`input.content/form/...`).
pub(crate) fn prefix(e: AppError, field: &str) -> AppError {
    match e {
        AppError::Validation(fields) => AppError::Validation(
            fields
                .into_iter()
                .map(|(k, v)| (format!("{field}{k}"), v))
                .collect(),
        ),
        other => other,
    }
}
