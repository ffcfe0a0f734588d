//! GraphQL of a tenant's services: fork, customize, preview and apply upstream updates, roll
//! back, go live, retire. [`changes`]: the edits `customizeService` takes. [`proposals`]: changes
//! proposed back to the template.

pub mod changes;
pub mod proposal;
pub mod proposals;

use std::collections::{BTreeMap, HashMap};

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, SimpleObject};
use entity::{service_revisions, tenant_services};
use serde_json::Value;
use uuid::Uuid;

use super::merge::{Choice, Conflict, ConflictKind};
use super::service::{self, ServiceFilter, ServiceStatus};
use super::{revisions, status, updates};
use crate::db::search::check_search;
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::parse_id;
use crate::graphql::{request_loader, state, tenant_ctx};
use crate::ids::{ServiceId, TenantId};
use crate::marketplace::graphql::{Template, TemplateVersion};
use crate::tenancy::types::Slug;
use changes::ServiceChangeInput;

fn db<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::db::Db> {
    state::<crate::db::Db>(ctx)
}

/// Request-wide loader: the content of a page of services costs one query.
pub struct ServicesLoader {
    pub db: crate::db::Db,
}

impl crate::graphql::loaders::Lazy for ServicesLoader {
    fn make(loaders: &crate::graphql::loaders::Loaders) -> Self {
        Self {
            db: loaders.db.clone(),
        }
    }
}

/// Key: the resolved content of a service's revision.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct ContentOf(pub TenantId, pub Uuid, pub i64);

impl Loader<ContentOf> for ServicesLoader {
    type Value = Value;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[ContentOf]) -> Result<HashMap<ContentOf, Value>, Self::Error> {
        let mut out = HashMap::new();
        let mut tenants: Vec<TenantId> = keys.iter().map(|k| k.0).collect();
        tenants.sort_by_key(|t| t.0);
        tenants.dedup();
        for tenant in tenants {
            let mine: Vec<&ContentOf> = keys.iter().filter(|k| k.0 == tenant).collect();
            let rows = service::revisions_of(
                &self.db,
                tenant,
                mine.iter().map(|k| k.1).collect(),
                mine.iter().map(|k| k.2).collect(),
            )
            .await?;
            for r in rows {
                let key = ContentOf(tenant, r.service_id, r.revision);
                if mine.contains(&&key) {
                    out.insert(key, r.content);
                }
            }
        }
        Ok(out)
    }
}

// ---- output types ------------------------------------------------------------------------------

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
#[graphql(remote = "ServiceStatus")]
pub enum ServiceState {
    /// Being prepared; citizens cannot see it.
    Draft,
    /// Takes applications.
    Live,
    /// Takes no new applications.
    Retired,
}

/// A language citizens' texts come in.
#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Language {
    De,
    En,
}

/// A municipality's service, usually a fork of a marketplace template.
pub struct Service(pub tenant_services::Model);

impl Service {
    /// The content's text `key` (an `{de, en}` object) in `language`, if it has one. German
    /// is the row's own column (search and lists read it there); other languages come from the
    /// revision's content, one batched read for a whole page of services.
    async fn localized(
        &self,
        ctx: &Context<'_>,
        key: &str,
        language: Language,
    ) -> async_graphql::Result<Option<String>> {
        let code = match language {
            Language::De => return Ok(None),
            Language::En => "en",
        };
        let content = request_loader::<ServicesLoader>(ctx)?
            .load_one(ContentOf(
                TenantId(self.0.tenant_id),
                self.0.id,
                self.0.current_revision,
            ))
            .await?;
        Ok(content
            .as_ref()
            .and_then(|c| c.get(key))
            .and_then(|t| t.get(code))
            .and_then(Value::as_str)
            .filter(|t| !t.trim().is_empty())
            .map(str::to_owned))
    }
}

#[Object]
impl Service {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn slug(&self) -> &str {
        &self.0.slug
    }
    /// German title of the current revision.
    async fn title(&self) -> &str {
        &self.0.title
    }
    /// German summary of the current revision.
    async fn summary(&self) -> &str {
        &self.0.summary
    }
    /// The title in `language`, from the revision's content; German where it has no translation.
    async fn title_in(
        &self,
        ctx: &Context<'_>,
        language: Language,
    ) -> async_graphql::Result<String> {
        Ok(self
            .localized(ctx, "title", language)
            .await?
            .unwrap_or_else(|| self.0.title.clone()))
    }
    /// The summary in `language`, from the revision's content; German where it has none.
    async fn summary_in(
        &self,
        ctx: &Context<'_>,
        language: Language,
    ) -> async_graphql::Result<String> {
        Ok(self
            .localized(ctx, "summary", language)
            .await?
            .unwrap_or_else(|| self.0.summary.clone()))
    }
    /// Category key of the current revision (`steuern`, `meldewesen`, …).
    async fn category(&self) -> &str {
        &self.0.category
    }
    async fn status(&self) -> ServiceState {
        self.0.status.into()
    }
    /// Number of the revision in force.
    async fn revision(&self) -> i64 {
        self.0.current_revision
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn updated_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.updated_at
    }
    /// The content in force: upstream version plus local changes.
    async fn resolved_content(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let key = ContentOf(
            TenantId(self.0.tenant_id),
            self.0.id,
            self.0.current_revision,
        );
        let content = request_loader::<ServicesLoader>(ctx)?
            .load_one(key)
            .await?
            .ok_or(AppError::NotFound("service revision"))?;
        Ok(Json(content))
    }
    /// Local changes relative to the pinned upstream version, as keyed operations. Staff only.
    async fn overlay(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        tenant_ctx(ctx)?.require_staff()?;
        Ok(Json(self.0.overlay.clone()))
    }
    /// Where the service stands relative to its template (null for purely local services).
    /// Staff only.
    async fn upstream(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Upstream>> {
        let tctx = tenant_ctx(ctx)?;
        tctx.require_staff()?;
        Ok(updates::upstream(db(ctx)?, &tctx, &self.0)
            .await?
            .map(|u| Upstream {
                template: Template::alone(u.template),
                pinned_version: TemplateVersion(u.pinned, None),
                latest_version: TemplateVersion(u.latest, None),
                behind: i32::try_from(u.behind).unwrap_or(i32::MAX),
            }))
    }
    /// Every accepted change, oldest first. Staff only.
    async fn revisions(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<ServiceRevision>> {
        let page = service::list_revisions(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            ServiceId(self.0.id),
            PageArgs::parse(ctx, first, after)?,
        )
        .await?;
        Ok(into_connection(page, |m| m.id, ServiceRevision))
    }
}

#[derive(SimpleObject)]
pub struct Upstream {
    pub template: Template,
    /// The version the service is based on.
    pub pinned_version: TemplateVersion,
    /// The newest published version.
    pub latest_version: TemplateVersion,
    /// How many published versions are newer than the pinned one.
    pub behind: i32,
}

/// One accepted change of a service.
pub struct ServiceRevision(pub service_revisions::Model);

#[Object]
impl ServiceRevision {
    async fn revision(&self) -> i64 {
        self.0.revision
    }
    /// What made it: `fork …`, `customize…`, `update 1.0.0 -> 1.1.0`, `rollback to 2`.
    async fn reason(&self) -> &str {
        &self.0.reason
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn overlay(&self) -> Json<Value> {
        Json(self.0.overlay.clone())
    }
    async fn content(&self) -> Json<Value> {
        Json(self.0.content.clone())
    }
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum MergeConflictKind {
    /// Both sides changed the same value differently (or one changed what the other removed).
    Value,
    /// Both sides reordered the same list differently; the values are key lists.
    Order,
}

/// A place where local changes and the upstream update disagree.
#[derive(SimpleObject)]
pub struct MergeConflictEntry {
    /// JSON Pointer over the keyed content (list elements by key).
    pub path: String,
    pub kind: MergeConflictKind,
    /// Value in the pinned version (null: absent).
    pub base: Option<Json<Value>>,
    /// Value in the service now (local changes).
    pub ours: Option<Json<Value>>,
    /// Value in the new upstream version.
    pub theirs: Option<Json<Value>>,
}

impl From<Conflict> for MergeConflictEntry {
    fn from(c: Conflict) -> Self {
        Self {
            path: c.path,
            kind: match c.kind {
                ConflictKind::Value => MergeConflictKind::Value,
                ConflictKind::Order => MergeConflictKind::Order,
            },
            base: c.base.map(Json),
            ours: c.ours.map(Json),
            theirs: c.theirs.map(Json),
        }
    }
}

#[derive(SimpleObject)]
pub struct ServiceUpdatePreview {
    pub from_version: String,
    pub to_version: String,
    /// The merged content; at conflicted paths it provisionally keeps the local value.
    pub merged_content: Json<Value>,
    pub conflicts: Vec<MergeConflictEntry>,
    /// Whether the update applies without resolutions.
    pub clean: bool,
}

// ---- queries -----------------------------------------------------------------------------------

#[derive(Default)]
pub struct ServicesQuery;

#[Object]
impl ServicesQuery {
    /// The tenant's services: live ones for everybody, all for staff.
    async fn services(
        &self,
        ctx: &Context<'_>,
        status: Option<ServiceState>,
        filter: Option<ServiceFilterInput>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Service>> {
        let f = filter.unwrap_or_default();
        check_search("filter.search", f.search.as_deref())?;
        let filter = ServiceFilter {
            search: f.search,
            category: f.category,
        };
        let page = service::list_services(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            status.map(Into::into),
            &filter,
            PageArgs::parse(ctx, first, after)?,
        )
        .await?;
        Ok(into_connection(page, |m| m.id, Service))
    }

    /// A service by slug.
    async fn service(&self, ctx: &Context<'_>, slug: String) -> async_graphql::Result<Service> {
        Ok(Service(
            service::service_by_slug(db(ctx)?, &tenant_ctx(ctx)?, slug.trim()).await?,
        ))
    }

    /// What updating the service to `toVersion` would give, with the conflicts to resolve.
    /// Tenant administrators only.
    async fn service_update_preview(
        &self,
        ctx: &Context<'_>,
        service_id: ID,
        to_version: String,
    ) -> async_graphql::Result<ServiceUpdatePreview> {
        let id = ServiceId(parse_id("serviceId", &service_id)?);
        let p = updates::preview_update(db(ctx)?, &tenant_ctx(ctx)?, id, &to_version).await?;
        Ok(ServiceUpdatePreview {
            from_version: p.from_version,
            to_version: p.to_version,
            merged_content: Json(p.merged),
            clean: p.conflicts.is_empty(),
            conflicts: p.conflicts.into_iter().map(Into::into).collect(),
        })
    }
}

// ---- inputs ------------------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct ServiceFilterInput {
    /// Full text over title and summary (German stemming on PostgreSQL; prefix match).
    pub search: Option<String>,
    /// Category key (`steuern`, `meldewesen`, …).
    pub category: Option<String>,
}

#[derive(InputObject)]
pub struct ForkTemplateInput {
    pub template_version_id: ID,
    /// The service's slug in this municipality.
    pub slug: String,
}

#[derive(InputObject)]
pub struct CustomizeServiceInput {
    pub service_id: ID,
    /// Applied in order, as one revision; all or nothing.
    pub changes: Vec<ServiceChangeInput>,
    /// Why (shown in the revision list).
    pub note: Option<String>,
    /// The revision these changes were made on: if the service has moved on since (another
    /// administrator's change), nothing changes and the answer is `CONFLICT`. Without it the
    /// changes apply to whatever revision is current.
    pub expected_revision: Option<i64>,
}

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ResolutionChoice {
    /// Keep the local value.
    Ours,
    /// Take the upstream value.
    Theirs,
    /// Use `value`.
    Value,
}

#[derive(InputObject)]
pub struct MergeResolutionInput {
    /// The conflict's path as the preview reported it.
    pub path: String,
    pub choice: ResolutionChoice,
    /// Required with `VALUE`.
    pub value: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct ApplyServiceUpdateInput {
    pub service_id: ID,
    pub to_version: String,
    #[graphql(default)]
    pub resolutions: Vec<MergeResolutionInput>,
}

#[derive(InputObject)]
pub struct RollbackServiceInput {
    pub service_id: ID,
    /// The revision to restore (a new revision equal to it is created).
    pub revision: i64,
}

#[derive(InputObject)]
pub struct ServiceIdInput {
    pub service_id: ID,
}

#[derive(SimpleObject)]
pub struct ServicePayload {
    pub service: Service,
}

fn resolutions(list: Vec<MergeResolutionInput>) -> AppResult<BTreeMap<String, Choice>> {
    let mut out = BTreeMap::new();
    for (i, r) in list.into_iter().enumerate() {
        let choice = match (r.choice, r.value) {
            (ResolutionChoice::Ours, _) => Choice::Ours,
            (ResolutionChoice::Theirs, _) => Choice::Theirs,
            (ResolutionChoice::Value, Some(v)) => Choice::Value(v.0),
            (ResolutionChoice::Value, None) => {
                return Err(AppError::invalid(
                    format!("input.resolutions[{i}].value"),
                    "required when choice is VALUE",
                ));
            }
        };
        if out.insert(r.path.clone(), choice).is_some() {
            return Err(AppError::invalid(
                format!("input.resolutions[{i}].path"),
                format!("`{}` is resolved twice", r.path),
            ));
        }
    }
    Ok(out)
}

// ---- mutations ---------------------------------------------------------------------------------

#[derive(Default)]
pub struct ServicesMutation;

#[Object]
impl ServicesMutation {
    /// Forks a template version into a new draft service. Tenant administrators only.
    async fn fork_template(
        &self,
        ctx: &Context<'_>,
        input: ForkTemplateInput,
    ) -> async_graphql::Result<ServicePayload> {
        let version = parse_id("input.templateVersionId", &input.template_version_id)?;
        let slug = Slug::parse("input.slug", &input.slug)?;
        let s = revisions::fork(db(ctx)?, &tenant_ctx(ctx)?, version, slug).await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Edits the service's local overlay; one new revision. Tenant administrators only.
    async fn customize_service(
        &self,
        ctx: &Context<'_>,
        input: CustomizeServiceInput,
    ) -> async_graphql::Result<ServicePayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        if input.changes.len() > 100 {
            return Err(AppError::invalid("input.changes", "at most 100 changes at once").into());
        }
        let changes = input
            .changes
            .into_iter()
            .enumerate()
            .map(|(i, c)| c.parse(i))
            .collect::<AppResult<Vec<_>>>()?;
        let note = input.note.map(|n| n.chars().take(500).collect());
        let s = revisions::customize(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            id,
            changes,
            note,
            input.expected_revision,
        )
        .await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Takes a newer upstream version, keeping local changes. Conflicts need resolutions, else
    /// `MERGE_CONFLICT` with the open paths and nothing changes.
    async fn apply_service_update(
        &self,
        ctx: &Context<'_>,
        input: ApplyServiceUpdateInput,
    ) -> async_graphql::Result<ServicePayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let resolutions = resolutions(input.resolutions)?;
        let s = updates::apply_update(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            id,
            &input.to_version,
            resolutions,
        )
        .await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Restores an earlier revision as a new revision.
    async fn rollback_service(
        &self,
        ctx: &Context<'_>,
        input: RollbackServiceInput,
    ) -> async_graphql::Result<ServicePayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let s = revisions::rollback(db(ctx)?, &tenant_ctx(ctx)?, id, input.revision).await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Draft → live: citizens can apply. Every routed department must exist.
    async fn publish_service(
        &self,
        ctx: &Context<'_>,
        input: ServiceIdInput,
    ) -> async_graphql::Result<ServicePayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let s = status::publish(db(ctx)?, &tenant_ctx(ctx)?, id).await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Live → retired: no new applications.
    async fn retire_service(
        &self,
        ctx: &Context<'_>,
        input: ServiceIdInput,
    ) -> async_graphql::Result<ServicePayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let s = status::retire(db(ctx)?, &tenant_ctx(ctx)?, id).await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }
}
