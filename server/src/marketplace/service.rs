//! Templates and their versions: create, publish (semver rules, immutability), deprecate, browse
//! and search, adoption counts.
//!
//! Visibility: public templates are seen by everyone (also anonymous visitors of any tenant);
//! private ones only by their author tenant. On PostgreSQL row-level security says the same, so
//! reads run in a transaction of the caller's tenant (or of no tenant).

use std::collections::HashMap;

use chrono::Utc;
use entity::states::VersionStatus;
use entity::{template_adoptions, template_versions, templates, tenants};
use sea_orm::sea_query::{Expr, ExprTrait as _, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait,
    FromQueryResult, QueryFilter, QueryOrder, QuerySelect, QueryTrait as _, Set,
};
use semver::Version;
use serde_json::Value;
use uuid::Uuid;

use crate::audit;
use crate::content::ServiceContent;
use crate::content::impact::Impact;
use crate::context::TenantCtx;
use crate::db::search::FullText;
use crate::db::{Db, TenantTx, begin_tenant_write, begin_viewer, read_as, read_in};
use crate::error::{AppError, AppResult, on_unique};
use crate::graphql::connection::{Page, PageArgs, fetch_page_as, into_page, page_query};
use crate::ids::{TemplateId, TemplateVersionId, TenantId};
use crate::tenancy::types::Slug;

/// Who is looking: a tenant (sees its private templates too) or nobody in particular.
pub type Viewer = Option<TenantId>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Visibility {
    Public,
    Private,
}

impl Visibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Private => "private",
        }
    }
}

/// A parsed `createTemplate` input.
#[derive(Debug)]
pub struct NewTemplate {
    pub slug: Slug,
    pub title: String,
    pub summary: String,
    pub category: String,
    pub tags: Vec<String>,
    pub license: String,
    pub visibility: Visibility,
}

/// A parsed `publishTemplateVersion` input.
#[derive(Debug)]
pub struct NewVersion {
    pub template_id: TemplateId,
    pub version: Version,
    pub content: ServiceContent,
    pub changelog: String,
}

#[derive(Debug, Default, Clone, PartialEq, Eq, Hash)]
pub struct TemplateFilter {
    pub search: Option<String>,
    pub category: Option<String>,
    pub leika_code: Option<String>,
    /// Slug of the author tenant.
    pub author: Option<String>,
}

/// A template visible to `viewer`, by slug.
pub async fn template_by_slug(
    db: &DatabaseConnection,
    viewer: Viewer,
    slug: &str,
) -> AppResult<templates::Model> {
    let txn = begin_viewer(db, viewer).await?;
    let t = visible(viewer)
        .filter(templates::Column::Slug.eq(slug))
        .one(&txn)
        .await?;
    txn.commit().await?;
    t.ok_or(AppError::NotFound("template"))
}

/// `templates` restricted to what `viewer` may see. (RLS repeats this on PostgreSQL.)
pub(crate) fn visible(viewer: Viewer) -> sea_orm::Select<templates::Entity> {
    use sea_orm::Condition;
    let mut cond = Condition::any().add(templates::Column::Visibility.eq("public"));
    if let Some(t) = viewer {
        // Business filter (authorship), not scoping: templates are shared between tenants.
        cond = cond.add(templates::Column::AuthorTenantId.eq(t.0));
    }
    templates::Entity::find().filter(cond)
}

/// What a page of templates brings along (asked for by the fields the client selected).
#[derive(Clone, Copy, Debug, Default)]
pub struct Along {
    pub versions: bool,
    pub adoption: bool,
}

/// A page of templates with what was asked to come along (in the page's own transaction).
#[derive(Clone)]
pub struct TemplatePage {
    pub page: Page<templates::Model>,
    pub versions: Option<HashMap<Uuid, Vec<VersionInfo>>>,
    pub adoption: Option<Adoptions>,
}

/// Browses the marketplace: visible templates with at least one version (authors also see their
/// own empty ones), filtered, oldest first. What comes `along` is read right after the page, on
/// its connection and in its transaction (one query per nested list, as the loaders would, minus
/// their extra transactions); with `totalCount` the page is counted and the loaders serve it.
pub async fn list_templates(
    db: &Db,
    viewer: Viewer,
    filter: &TemplateFilter,
    args: PageArgs,
    along: Along,
) -> AppResult<TemplatePage> {
    let mut select = visible(viewer);
    // Correlated (an index probe per template) rather than `IN (all versions)`, which hashes
    // every visible version on each request.
    let has_version = Expr::exists(
        Query::select()
            // A literal, not a bound value: PostgreSQL cannot type a parameter in a select list.
            .expr(Expr::cust("1"))
            .from(template_versions::Entity)
            .and_where(
                Expr::col((
                    template_versions::Entity,
                    template_versions::Column::TemplateId,
                ))
                .equals((templates::Entity, templates::Column::Id)),
            )
            .to_owned(),
    );
    select = match viewer {
        // Authorship, not scoping: authors also see their own templates without versions.
        Some(t) => select.filter(
            sea_orm::Condition::any()
                .add(has_version)
                .add(templates::Column::AuthorTenantId.eq(t.0)),
        ),
        None => select.filter(has_version),
    };
    if let Some(c) = &filter.category {
        select = select.filter(templates::Column::Category.eq(c.as_str()));
    }
    if let Some(code) = &filter.leika_code {
        select = select.filter(templates::Column::LeikaCode.eq(code.as_str()));
    }
    if let Some(author) = &filter.author {
        let by_slug = tenants::Entity::find().filter(tenants::Column::Slug.eq(author.as_str()));
        let tenant = read_as::<tenants::Model>(db, None, by_slug.into_query()).await?;
        // An unknown author matches nothing (not an error: it is a filter).
        let id = tenant.first().map_or(Uuid::nil(), |t| t.id);
        // The author filter the caller asked for (business meaning, not scoping).
        select = select.filter(templates::Column::AuthorTenantId.eq(id));
    }
    if let Some(search) = &filter.search {
        select = match TEMPLATES_SEARCH.condition(db.get_database_backend(), search, None) {
            Some(cond) => select.filter(cond),
            None => select,
        };
    }
    if args.want_total || !(along.versions || along.adoption) {
        let page = fetch_page_as(db, viewer, select, templates::Column::Id, |m| m.id, args).await?;
        return Ok(TemplatePage {
            page,
            versions: None,
            adoption: None,
        });
    }
    // The page, then its templates' versions and adoption, in one transaction (one snapshot).
    let txn = begin_viewer(db, viewer).await?;
    let mut items = page_query(select, templates::Column::Id, args)
        .all(&txn)
        .await?;
    items.sort_by_key(|m| m.id);
    let page = into_page(items, |m| m.id, args, None);
    let ids: Vec<Uuid> = page.items.iter().map(|t| t.id).collect();
    let versions = if along.versions {
        let rows = read_in(&txn, version_infos_query(&ids)).await?;
        Some(versions_by_template(ids.clone(), rows))
    } else {
        None
    };
    let adoption = if along.adoption {
        let query = adoption_query(&ids, txn.get_database_backend());
        Some(Adoptions::from(
            read_in::<AdoptionRow, _>(&txn, query).await?,
        ))
    } else {
        None
    };
    txn.commit().await?;
    Ok(TemplatePage {
        page,
        versions,
        adoption,
    })
}

/// Where the templates' full-text index lives (see the marketplace migration).
const TEMPLATES_SEARCH: FullText = FullText {
    key: "templates.id",
    tsvector: "templates.search",
    fts: "templates_fts",
    fts_key: "template_id",
    fts_tenant: None,
};

/// Creates a template (no versions yet) authored by the caller's tenant.
pub async fn create_template(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    new: NewTemplate,
) -> AppResult<templates::Model> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let now = Utc::now();
    let model = templates::ActiveModel {
        id: Set(TemplateId::new().0),
        author_tenant_id: Set(ctx.tenant_id.0),
        slug: Set(new.slug.to_string()),
        title: Set(new.title),
        summary: Set(new.summary),
        category: Set(new.category),
        leika_code: Set(None),
        tags: Set(Value::from(new.tags)),
        license: Set(new.license),
        visibility: Set(new.visibility.as_str().to_owned()),
        created_by: Set(ctx.staff_user()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "templates_slug_key",
            "input.slug",
            "a template with this slug exists",
        )
    })?;
    audit::record(
        &txn,
        &ctx.actor(),
        "template.create",
        format!("template:{}", model.id),
        serde_json::json!({ "slug": model.slug, "visibility": model.visibility }),
    )
    .await?;
    txn.commit().await?;
    Ok(model)
}

/// Changes a template's visibility. Authors of the template's tenant only.
pub async fn set_visibility(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: TemplateId,
    visibility: Visibility,
) -> AppResult<templates::Model> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let t = own_template(&txn, id).await?;
    let mut am: templates::ActiveModel = t.into();
    am.visibility = Set(visibility.as_str().to_owned());
    am.updated_at = Set(Utc::now());
    let t = am.update(&txn).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "template.visibility",
        format!("template:{}", t.id),
        serde_json::json!({ "visibility": t.visibility }),
    )
    .await?;
    txn.commit().await?;
    Ok(t)
}

/// The template, if the caller's tenant authors it: `NOT_FOUND` when invisible, `FORBIDDEN` when
/// visible but someone else's.
pub(crate) async fn own_template(txn: &TenantTx, id: TemplateId) -> AppResult<templates::Model> {
    let t = visible(Some(txn.tenant()))
        .filter(templates::Column::Id.eq(id.0))
        .one(txn)
        .await?
        .ok_or(AppError::NotFound("template"))?;
    if t.author_tenant_id != txn.tenant().0 {
        return Err(AppError::Forbidden(
            "only the author tenant changes a template",
        ));
    }
    Ok(t)
}

/// A version without its content: what listings need (content is large; it loads on demand).
#[derive(Clone, Debug, FromQueryResult)]
pub struct VersionInfo {
    pub id: Uuid,
    pub template_id: Uuid,
    pub version: String,
    pub changelog: String,
    pub status: VersionStatus,
    pub deprecation_note: Option<String>,
    pub published_at: chrono::DateTime<Utc>,
}

impl From<&template_versions::Model> for VersionInfo {
    fn from(m: &template_versions::Model) -> Self {
        Self {
            id: m.id,
            template_id: m.template_id,
            version: m.version.clone(),
            changelog: m.changelog.clone(),
            status: m.status,
            deprecation_note: m.deprecation_note.clone(),
            published_at: m.published_at,
        }
    }
}

/// All versions of templates without content, newest first, as `viewer` may see them.
pub async fn version_infos_of(
    db: &Db,
    viewer: Viewer,
    templates: &[Uuid],
) -> AppResult<Vec<VersionInfo>> {
    read_as(db, viewer, version_infos_query(templates)).await
}

/// The versions of templates (without content), newest first.
fn version_infos_query(templates: &[Uuid]) -> sea_orm::sea_query::SelectStatement {
    use template_versions::Column as V;
    template_versions::Entity::find()
        .select_only()
        .columns([
            V::Id,
            V::TemplateId,
            V::Version,
            V::Changelog,
            V::Status,
            V::DeprecationNote,
            V::PublishedAt,
        ])
        .filter(V::TemplateId.is_in(templates.iter().copied()))
        .order_by_desc(V::Major)
        .order_by_desc(V::Minor)
        .order_by_desc(V::Patch)
        .into_query()
}

/// The content of versions by ID.
pub async fn contents_of<C: ConnectionTrait>(
    conn: &C,
    versions: &[Uuid],
) -> AppResult<HashMap<Uuid, Value>> {
    Ok(template_versions::Entity::find()
        .filter(template_versions::Column::Id.is_in(versions.iter().copied()))
        .all(conn)
        .await?
        .into_iter()
        .map(|v| (v.id, v.content))
        .collect())
}

/// All versions of templates, newest first.
pub async fn versions_of<C: ConnectionTrait>(
    conn: &C,
    templates: &[Uuid],
) -> AppResult<Vec<template_versions::Model>> {
    Ok(template_versions::Entity::find()
        .filter(template_versions::Column::TemplateId.is_in(templates.iter().copied()))
        .order_by_desc(template_versions::Column::Major)
        .order_by_desc(template_versions::Column::Minor)
        .order_by_desc(template_versions::Column::Patch)
        .all(conn)
        .await?)
}

/// Publishes a version inside an open transaction of the author tenant (also used when a
/// proposal is accepted). Checks semver against the latest version.
pub(crate) async fn publish_in(
    txn: &TenantTx,
    ctx: &TenantCtx,
    template: &templates::Model,
    new: NewVersion,
) -> AppResult<template_versions::Model> {
    let v = &new.version;
    if !v.pre.is_empty() || !v.build.is_empty() {
        return Err(AppError::invalid(
            "input.version",
            "pre-release and build suffixes are not supported; use MAJOR.MINOR.PATCH",
        ));
    }
    let existing = versions_of(txn, &[template.id]).await?;
    if let Some(latest) = existing.first() {
        let latest_v = version_of(latest)?;
        if *v <= latest_v {
            return Err(AppError::invalid(
                "input.version",
                format!("must be greater than the latest version {latest_v}"),
            ));
        }
        let previous = ServiceContent::parse(&latest.content)?;
        let (impact, reasons) = new.content.impact_since(&previous);
        let needed = match impact {
            Impact::Major if v.major == latest_v.major => {
                Some(Version::new(latest_v.major + 1, 0, 0))
            }
            Impact::Minor if v.major == latest_v.major && v.minor == latest_v.minor => {
                Some(Version::new(latest_v.major, latest_v.minor + 1, 0))
            }
            _ => None,
        };
        if let Some(needed) = needed {
            let kind = if impact == Impact::Major {
                "major"
            } else {
                "minor"
            };
            return Err(AppError::invalid(
                "input.version",
                format!(
                    "{}: needs a {kind} version (at least {needed})",
                    reasons.join("; ")
                ),
            ));
        }
    }
    let content = new.content.to_value();
    let now = Utc::now();
    let as_i64 = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
    let version = template_versions::ActiveModel {
        id: Set(TemplateVersionId::new().0),
        template_id: Set(template.id),
        version: Set(v.to_string()),
        major: Set(as_i64(v.major)),
        minor: Set(as_i64(v.minor)),
        patch: Set(as_i64(v.patch)),
        content: Set(content),
        changelog: Set(new.changelog),
        status: Set(VersionStatus::Published),
        deprecation_note: Set(None),
        published_by: Set(ctx.staff_user()),
        published_at: Set(now),
        deprecated_at: Set(None),
    }
    .insert(txn)
    .await
    .map_err(|e| {
        on_unique(
            e,
            "template_versions_template_id_version_key",
            "input.version",
            "this version is already published",
        )
    })?;
    // The listing shows what the latest version says.
    let mut am: templates::ActiveModel = template.clone().into();
    am.title = Set(new.content.title.de.clone());
    am.summary = Set(new.content.summary.de.clone());
    am.category = Set(new.content.category.to_string());
    am.leika_code = Set(new.content.leika_code.clone());
    am.updated_at = Set(now);
    am.update(txn).await?;
    audit::record(
        txn,
        &ctx.actor(),
        "template.publish",
        format!("template_version:{}", version.id),
        serde_json::json!({ "template": template.slug, "version": version.version }),
    )
    .await?;
    Ok(version)
}

/// Publishes a new immutable version. Authors of the template's tenant only.
pub async fn publish_version(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    new: NewVersion,
) -> AppResult<template_versions::Model> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let template = own_template(&txn, new.template_id).await?;
    let version = publish_in(&txn, ctx, &template, new).await?;
    txn.commit().await?;
    Ok(version)
}

/// Marks a version deprecated: it stays readable and pinned forks keep working, but it can no
/// longer be forked.
pub async fn deprecate_version(
    db: &DatabaseConnection,
    ctx: &TenantCtx,
    id: TemplateVersionId,
    note: Option<String>,
) -> AppResult<template_versions::Model> {
    ctx.require_author()?;
    let txn = begin_tenant_write(db, ctx.tenant_id).await?;
    let version = template_versions::Entity::find_by_id(id.0)
        .one(&txn)
        .await?
        .ok_or(AppError::NotFound("template version"))?;
    own_template(&txn, TemplateId(version.template_id)).await?;
    if version.status == VersionStatus::Deprecated {
        return Err(AppError::conflict(
            "input.id",
            "the version is already deprecated",
        ));
    }
    let mut am: template_versions::ActiveModel = version.into();
    am.status = Set(VersionStatus::Deprecated);
    am.deprecation_note = Set(note);
    am.deprecated_at = Set(Some(Utc::now()));
    let version = am.update(&txn).await?;
    audit::record(
        &txn,
        &ctx.actor(),
        "template.deprecate",
        format!("template_version:{}", version.id),
        serde_json::json!({ "version": version.version }),
    )
    .await?;
    txn.commit().await?;
    Ok(version)
}

/// A version visible to `viewer`.
pub async fn find_version<C: ConnectionTrait>(
    conn: &C,
    viewer: Viewer,
    id: Uuid,
) -> AppResult<(templates::Model, template_versions::Model)> {
    let version = template_versions::Entity::find_by_id(id)
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("template version"))?;
    let template = visible(viewer)
        .filter(templates::Column::Id.eq(version.template_id))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("template version"))?;
    Ok((template, version))
}

/// A version of a template by its version string.
pub async fn find_version_by_number<C: ConnectionTrait>(
    conn: &C,
    template: TemplateId,
    version: &str,
) -> AppResult<template_versions::Model> {
    template_versions::Entity::find()
        .filter(template_versions::Column::TemplateId.eq(template))
        .filter(template_versions::Column::Version.eq(version.trim()))
        .one(conn)
        .await?
        .ok_or(AppError::NotFound("template version"))
}

pub fn version_of(m: &template_versions::Model) -> AppResult<Version> {
    Version::parse(&m.version)
        .map_err(|e| AppError::Internal(anyhow::anyhow!("stored version {}: {e}", m.version)))
}

/// Adoption of templates in one query: distinct tenants per version (`version id → (template
/// id, tenants)`) and per template across its versions (`template id → tenants`).
pub async fn adoption_of(db: &Db, templates: &[Uuid]) -> AppResult<Adoptions> {
    // Lineage rows are readable without a tenant.
    let query = adoption_query(templates, db.get_database_backend());
    let rows: Vec<AdoptionRow> = read_as(db, None, query).await?;
    Ok(Adoptions::from(rows))
}

/// A row of [`adoption_query`]: per version, or (without version) per template.
#[derive(FromQueryResult)]
pub struct AdoptionRow {
    template_version_id: Option<Uuid>,
    template_id: Uuid,
    tenants: i64,
}

/// Two groupings of the same rows: per version (with its template) and per template (without
/// a version). PostgreSQL groups both in one scan (`GROUPING SETS`); SQLite, which lacks them,
/// takes a UNION ALL of two queries.
fn adoption_query(templates: &[Uuid], backend: DbBackend) -> sea_orm::sea_query::SelectStatement {
    use template_adoptions::Column as A;
    if backend == DbBackend::Postgres {
        return template_adoptions::Entity::find()
            .select_only()
            .column(A::TemplateVersionId)
            .column(A::TemplateId)
            .column_as(Expr::col(A::TenantId).count_distinct(), "tenants")
            .filter(A::TemplateId.is_in(templates.iter().copied()))
            .into_query()
            .add_group_by([Expr::cust(
                "GROUPING SETS ((template_id, template_version_id), (template_id))",
            )])
            .to_owned();
    }
    let grouped = |by_version: bool| {
        let mut q = template_adoptions::Entity::find().select_only();
        q = if by_version {
            q.column(A::TemplateVersionId)
                .group_by(A::TemplateVersionId)
        } else {
            q.column_as(Expr::cust("CAST(NULL AS uuid)"), "template_version_id")
        };
        q.column(A::TemplateId)
            .column_as(Expr::col(A::TenantId).count_distinct(), "tenants")
            .filter(A::TemplateId.is_in(templates.iter().copied()))
            .group_by(A::TemplateId)
            .into_query()
    };
    grouped(true)
        .union(sea_orm::sea_query::UnionType::All, grouped(false))
        .to_owned()
}

/// See [`adoption_of`].
#[derive(Clone, Default)]
pub struct Adoptions {
    pub per_version: HashMap<Uuid, (Uuid, i64)>,
    pub per_template: HashMap<Uuid, i64>,
}

impl From<Vec<AdoptionRow>> for Adoptions {
    fn from(rows: Vec<AdoptionRow>) -> Self {
        let mut out = Self::default();
        for r in rows {
            match r.template_version_id {
                Some(version) => {
                    out.per_version.insert(version, (r.template_id, r.tenants));
                }
                None => {
                    out.per_template.insert(r.template_id, r.tenants);
                }
            }
        }
        out
    }
}

impl Adoptions {
    /// Tenants per version of `template`, and its total under `Uuid::nil()`.
    pub fn counts_of(&self, template: Uuid) -> HashMap<Uuid, i64> {
        let mut counts: HashMap<Uuid, i64> = self
            .per_version
            .iter()
            .filter(|(_, (t, _))| *t == template)
            .map(|(version, (_, n))| (*version, *n))
            .collect();
        counts.insert(
            Uuid::nil(),
            self.per_template.get(&template).copied().unwrap_or(0),
        );
        counts
    }
}

/// Versions grouped by template (every template of `templates` present, maybe empty).
pub fn versions_by_template(
    templates: impl IntoIterator<Item = Uuid>,
    rows: Vec<VersionInfo>,
) -> HashMap<Uuid, Vec<VersionInfo>> {
    let mut out: HashMap<Uuid, Vec<VersionInfo>> =
        templates.into_iter().map(|id| (id, vec![])).collect();
    for v in rows {
        out.entry(v.template_id).or_default().push(v);
    }
    out
}
