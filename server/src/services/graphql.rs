//! GraphQL of a tenant's services: fork, customize, preview and apply upstream updates, roll
//! back, go live, retire, and propose changes back to the template.

use std::collections::{BTreeMap, HashMap};

use async_graphql::dataloader::Loader;
use async_graphql::{Context, Enum, ID, InputObject, Json, Object, OneofObject, SimpleObject};
use entity::{service_revisions, template_proposals, tenant_services};
use serde_json::Value;
use uuid::Uuid;

use super::changes::Change;
use super::merge::{Choice, Conflict, ConflictKind};
use super::service::{self, ServiceStatus};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::{request_loader, state, tenant_ctx};
use crate::ids::{ProposalId, ServiceId, TenantId};
use crate::marketplace::content::{Condition, Fee, Field, I18n, Key, RoutingRule, Step};
use crate::marketplace::graphql::{Template, TemplateVersion, parse_version};
use crate::tenancy::graphql::parse_id;
use crate::tenancy::types::Slug;

fn db<'a>(ctx: &'a Context<'_>) -> AppResult<&'a crate::db::Db> {
    state::<crate::db::Db>(ctx)
}

/// Request-wide loader: the content of a page of services costs one query.
pub struct ServicesLoader {
    pub db: crate::db::Db,
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
pub enum ServiceState {
    /// Being prepared; citizens cannot see it.
    Draft,
    /// Takes applications.
    Live,
    /// Takes no new applications.
    Retired,
}

impl From<ServiceStatus> for ServiceState {
    fn from(s: ServiceStatus) -> Self {
        match s {
            ServiceStatus::Draft => Self::Draft,
            ServiceStatus::Live => Self::Live,
            ServiceStatus::Retired => Self::Retired,
        }
    }
}

impl From<ServiceState> for ServiceStatus {
    fn from(s: ServiceState) -> Self {
        match s {
            ServiceState::Draft => Self::Draft,
            ServiceState::Live => Self::Live,
            ServiceState::Retired => Self::Retired,
        }
    }
}

/// A municipality's service, usually a fork of a marketplace template.
pub struct Service(pub tenant_services::Model);

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
    async fn status(&self) -> ServiceState {
        ServiceStatus::parse(&self.0.status).into()
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
        Ok(service::upstream(db(ctx)?, &tctx, &self.0)
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
            self.0.id,
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

/// A change a forking municipality proposes to a template.
pub struct Proposal(pub template_proposals::Model);

#[derive(Enum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum ProposalStatus {
    Open,
    Accepted,
    Rejected,
}

#[Object]
impl Proposal {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn message(&self) -> &str {
        &self.0.message
    }
    async fn status(&self) -> ProposalStatus {
        match self.0.status.as_str() {
            "accepted" => ProposalStatus::Accepted,
            "rejected" => ProposalStatus::Rejected,
            _ => ProposalStatus::Open,
        }
    }
    /// The proposed change as keyed operations against `baseVersion`.
    async fn diff(&self) -> Json<Value> {
        Json(self.0.overlay.clone())
    }
    /// The proposed content as a whole.
    async fn content(&self) -> Json<Value> {
        Json(self.0.content.clone())
    }
    async fn base_version_id(&self) -> ID {
        ID(self.0.base_version_id.to_string())
    }
    async fn created_at(&self) -> chrono::DateTime<chrono::Utc> {
        self.0.created_at
    }
    async fn decided_at(&self) -> Option<chrono::DateTime<chrono::Utc>> {
        self.0.decided_at
    }
    async fn decision_note(&self) -> Option<&str> {
        self.0.decision_note.as_deref()
    }
    /// The version that took the proposal in, once accepted.
    async fn result_version_id(&self) -> Option<ID> {
        self.0.result_version_id.map(|id| ID(id.to_string()))
    }
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
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Service>> {
        let page = service::list_services(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            status.map(Into::into),
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
        let p = service::preview_update(db(ctx)?, &tenant_ctx(ctx)?, id, &to_version).await?;
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

#[derive(InputObject, Clone)]
pub struct I18nInput {
    pub de: String,
    pub en: Option<String>,
}

impl From<I18nInput> for I18n {
    fn from(t: I18nInput) -> Self {
        I18n {
            de: t.de.trim().to_owned(),
            en: t.en.map(|e| e.trim().to_owned()).filter(|e| !e.is_empty()),
        }
    }
}

#[derive(InputObject)]
pub struct AddFieldInput {
    /// The step to put the field in.
    pub step: String,
    /// Put it after this field (default: at the end of the step).
    pub after: Option<String>,
    pub key: String,
    pub label: I18nInput,
    pub help: Option<I18nInput>,
    /// JSON Schema of the value, e.g. `{"type": "string", "maxLength": 100}`.
    pub schema: Json<Value>,
    #[graphql(default)]
    pub required: bool,
    /// Condition (see the content reference), e.g. `{"equals": {"field": "x", "value": true}}`.
    pub visible_if: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct ModifyFieldInput {
    pub key: String,
    pub label: Option<I18nInput>,
    pub help: Option<I18nInput>,
    pub schema: Option<Json<Value>>,
    pub required: Option<bool>,
    pub visible_if: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct KeyInput {
    pub key: String,
}

#[derive(InputObject)]
pub struct AddStepInput {
    pub key: String,
    pub title: I18nInput,
    pub description: Option<I18nInput>,
    /// Put it after this step (default: last).
    pub after: Option<String>,
}

#[derive(InputObject)]
pub struct ModifyStepInput {
    pub key: String,
    pub title: Option<I18nInput>,
    pub description: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct SetTextInput {
    pub key: String,
    /// Null removes the text.
    pub text: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct AddFeeInput {
    pub key: String,
    pub label: I18nInput,
    pub amount_cents: i64,
    /// Multiply by this integer field (e.g. number of dogs).
    pub per_field: Option<String>,
}

#[derive(InputObject)]
pub struct ModifyFeeInput {
    pub key: String,
    pub amount_cents: Option<i64>,
    pub label: Option<I18nInput>,
}

#[derive(InputObject)]
pub struct AddRoutingRuleInput {
    pub key: String,
    /// Key of one of the tenant's departments.
    pub department: String,
    pub when: Option<Json<Value>>,
}

#[derive(InputObject)]
pub struct SetRoutingDepartmentInput {
    /// The routing rule.
    pub key: String,
    pub department: String,
}

#[derive(InputObject)]
pub struct SetPaymentRequiredInput {
    /// `true`: staff start processing only once the fees are paid.
    pub required: bool,
}

#[derive(InputObject)]
pub struct SetWorkflowLabelInput {
    pub state: String,
    pub label: I18nInput,
}

/// One edit of a service; give exactly one.
#[derive(OneofObject)]
pub enum ServiceChangeInput {
    AddField(AddFieldInput),
    ModifyField(ModifyFieldInput),
    RemoveField(KeyInput),
    AddStep(AddStepInput),
    ModifyStep(ModifyStepInput),
    RemoveStep(KeyInput),
    SetTitle(I18nInput),
    SetSummary(I18nInput),
    SetText(SetTextInput),
    AddFee(AddFeeInput),
    ModifyFee(ModifyFeeInput),
    RemoveFee(KeyInput),
    AddRoutingRule(AddRoutingRuleInput),
    SetRoutingDepartment(SetRoutingDepartmentInput),
    RemoveRoutingRule(KeyInput),
    SetWorkflowLabel(SetWorkflowLabelInput),
    SetPaymentRequired(SetPaymentRequiredInput),
}

fn key(field: &str, raw: &str) -> AppResult<Key> {
    Key::parse(raw.trim()).map_err(|m| AppError::invalid(field, m))
}

fn condition(field: &str, raw: Json<Value>) -> AppResult<Condition> {
    serde_json::from_value(raw.0)
        .map_err(|e| AppError::invalid(field, format!("not a condition: {e}")))
}

impl ServiceChangeInput {
    fn parse(self, i: usize) -> AppResult<Change> {
        let at = |s: &str| format!("input.changes[{i}].{s}");
        Ok(match self {
            Self::AddField(f) => Change::AddField {
                step: key(&at("addField.step"), &f.step)?,
                after: f
                    .after
                    .map(|a| key(&at("addField.after"), &a))
                    .transpose()?,
                field: Field {
                    key: key(&at("addField.key"), &f.key)?,
                    label: f.label.into(),
                    help: f.help.map(Into::into),
                    visible_if: f
                        .visible_if
                        .map(|c| condition(&at("addField.visibleIf"), c))
                        .transpose()?,
                },
                schema: f.schema.0,
                required: f.required,
            },
            Self::ModifyField(f) => Change::ModifyField {
                key: key(&at("modifyField.key"), &f.key)?,
                label: f.label.map(Into::into),
                help: f.help.map(|h| Some(h.into())),
                schema: f.schema.map(|s| s.0),
                required: f.required,
                visible_if: f
                    .visible_if
                    .map(|c| condition(&at("modifyField.visibleIf"), c).map(Some))
                    .transpose()?,
            },
            Self::RemoveField(k) => Change::RemoveField {
                key: key(&at("removeField.key"), &k.key)?,
            },
            Self::AddStep(s) => Change::AddStep {
                after: s.after.map(|a| key(&at("addStep.after"), &a)).transpose()?,
                step: Step {
                    key: key(&at("addStep.key"), &s.key)?,
                    title: s.title.into(),
                    description: s.description.map(Into::into),
                    fields: vec![],
                    visible_if: None,
                },
            },
            Self::ModifyStep(s) => Change::ModifyStep {
                key: key(&at("modifyStep.key"), &s.key)?,
                title: s.title.map(Into::into),
                description: s.description.map(|d| Some(d.into())),
            },
            Self::RemoveStep(k) => Change::RemoveStep {
                key: key(&at("removeStep.key"), &k.key)?,
            },
            Self::SetTitle(t) => Change::SetTitle { title: t.into() },
            Self::SetSummary(t) => Change::SetSummary { summary: t.into() },
            Self::SetText(t) => Change::SetText {
                key: key(&at("setText.key"), &t.key)?,
                text: t.text.map(Into::into),
            },
            Self::AddFee(f) => Change::AddFee {
                fee: Fee {
                    key: key(&at("addFee.key"), &f.key)?,
                    label: f.label.into(),
                    amount_cents: f.amount_cents,
                    per_field: f
                        .per_field
                        .map(|p| key(&at("addFee.perField"), &p))
                        .transpose()?,
                    when: None,
                },
            },
            Self::ModifyFee(f) => Change::ModifyFee {
                key: key(&at("modifyFee.key"), &f.key)?,
                amount_cents: f.amount_cents,
                label: f.label.map(Into::into),
            },
            Self::RemoveFee(k) => Change::RemoveFee {
                key: key(&at("removeFee.key"), &k.key)?,
            },
            Self::AddRoutingRule(r) => Change::AddRoutingRule {
                rule: RoutingRule {
                    key: key(&at("addRoutingRule.key"), &r.key)?,
                    department: key(&at("addRoutingRule.department"), &r.department)?,
                    when: r
                        .when
                        .map(|c| condition(&at("addRoutingRule.when"), c))
                        .transpose()?,
                },
            },
            Self::SetRoutingDepartment(r) => Change::SetRoutingDepartment {
                key: key(&at("setRoutingDepartment.key"), &r.key)?,
                department: key(&at("setRoutingDepartment.department"), &r.department)?,
            },
            Self::RemoveRoutingRule(k) => Change::RemoveRoutingRule {
                key: key(&at("removeRoutingRule.key"), &k.key)?,
            },
            Self::SetWorkflowLabel(w) => Change::SetWorkflowLabel {
                state: key(&at("setWorkflowLabel.state"), &w.state)?,
                label: w.label.into(),
            },
            Self::SetPaymentRequired(p) => Change::SetPaymentRequired {
                required: p.required,
            },
        })
    }
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

#[derive(InputObject)]
pub struct ProposeTemplateChangeInput {
    pub service_id: ID,
    /// What the change is and why.
    pub message: String,
}

#[derive(InputObject)]
pub struct AcceptTemplateProposalInput {
    pub proposal_id: ID,
    /// The version to publish with the proposal taken in.
    pub version: String,
    #[graphql(default)]
    pub changelog: String,
    /// Needed when the template changed since the proposal was made and both touched the same
    /// place (ours = the latest version, theirs = the proposal).
    #[graphql(default)]
    pub resolutions: Vec<MergeResolutionInput>,
}

#[derive(InputObject)]
pub struct RejectTemplateProposalInput {
    pub proposal_id: ID,
    pub note: Option<String>,
}

#[derive(SimpleObject)]
pub struct ServicePayload {
    pub service: Service,
}

#[derive(SimpleObject)]
pub struct ProposalPayload {
    pub proposal: Proposal,
    /// The version published from it (accept only).
    pub version: Option<TemplateVersion>,
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
        let s = service::fork(db(ctx)?, &tenant_ctx(ctx)?, version, slug).await?;
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
        let s = service::customize(
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
        let s = service::apply_update(
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
        let s = service::rollback(db(ctx)?, &tenant_ctx(ctx)?, id, input.revision).await?;
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
        let s = service::publish(db(ctx)?, &tenant_ctx(ctx)?, id).await?;
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
        let s = service::retire(db(ctx)?, &tenant_ctx(ctx)?, id).await?;
        Ok(ServicePayload {
            service: Service(s),
        })
    }

    /// Proposes the service's local changes to the template's author.
    async fn propose_template_change(
        &self,
        ctx: &Context<'_>,
        input: ProposeTemplateChangeInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ServiceId(parse_id("input.serviceId", &input.service_id)?);
        let p = service::propose(db(ctx)?, &tenant_ctx(ctx)?, id, input.message).await?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: None,
        })
    }

    /// Accepts a proposal into a new template version. Authors of the template only.
    async fn accept_template_proposal(
        &self,
        ctx: &Context<'_>,
        input: AcceptTemplateProposalInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ProposalId(parse_id("input.proposalId", &input.proposal_id)?);
        let version = parse_version("input.version", &input.version)?;
        let resolutions = resolutions(input.resolutions)?;
        let changelog = input.changelog.trim().chars().take(10_000).collect();
        let (p, v) = service::accept_proposal(
            db(ctx)?,
            &tenant_ctx(ctx)?,
            id,
            version,
            changelog,
            resolutions,
        )
        .await?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: Some(v.into()),
        })
    }

    /// Declines a proposal.
    async fn reject_template_proposal(
        &self,
        ctx: &Context<'_>,
        input: RejectTemplateProposalInput,
    ) -> async_graphql::Result<ProposalPayload> {
        let id = ProposalId(parse_id("input.proposalId", &input.proposal_id)?);
        let note = input.note.map(|n| n.chars().take(2000).collect());
        let p = service::reject_proposal(db(ctx)?, &tenant_ctx(ctx)?, id, note).await?;
        Ok(ProposalPayload {
            proposal: Proposal(p),
            version: None,
        })
    }
}
