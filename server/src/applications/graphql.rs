//! GraphQL of applications: drafts, submission, staff work lists, workflow moves, the mailbox,
//! GDPR, and the live status subscription.

use std::collections::HashMap;

use async_graphql::dataloader::Loader;
use async_graphql::{Context, ID, InputObject, Json, Object, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use entity::{application_events, application_tasks, applications, drafts, messages};
use futures_util::{Stream, StreamExt as _};
use serde_json::Value;
use uuid::Uuid;

use super::rules::FeeLine;
use super::service::{self, Deps, Viewer};
use crate::error::{AppError, AppResult};
use crate::graphql::connection::{Conn, PageArgs, into_connection};
use crate::graphql::loaders::RequestLoader;
use crate::graphql::{request_loader, state, tenant_ctx};
use crate::ids::TenantId;
use crate::messaging::mailbox;
use crate::services::graphql::{ContentOf, ServicesLoader};
use crate::tenancy::graphql::{Department, parse_id};
use crate::tenancy::loader::{DepartmentById, TenancyLoader};

fn deps<'a>(ctx: &'a Context<'_>) -> AppResult<&'a Deps> {
    state::<Deps>(ctx)
}

/// Counts a citizen's write (draft or submission) against the client IP's quota.
pub(crate) fn rate_limit_write(ctx: &Context<'_>) -> AppResult<()> {
    let ip = ctx.data_opt::<crate::state::ClientIp>().and_then(|ip| ip.0);
    state::<crate::state::AppState>(ctx)?
        .write_limiter
        .check(ip)
}

/// Request-wide loader: the tasks of a page of applications cost one query.
pub struct ApplicationsLoader {
    pub db: crate::db::Db,
}

/// Key: the tasks of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TasksOf(pub TenantId, pub Uuid);

/// Key: the timeline of an application; `true` with staff-only entries.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct EventsOf(pub TenantId, pub Uuid, pub bool);

/// Key: the mailbox of an application; `true` with internal notes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct MessagesOf(pub TenantId, pub Uuid, pub bool);

/// One read per (tenant, audience) group of keys; each key gets its application's rows.
async fn per_application<K, M, Fut>(
    keys: &[K],
    group: impl Fn(&K) -> (TenantId, bool, Uuid),
    read: impl Fn(TenantId, bool, Vec<Uuid>) -> Fut,
    application_of: impl Fn(&M) -> Uuid,
) -> Result<HashMap<K, Vec<M>>, async_graphql::Error>
where
    K: Copy + Eq + std::hash::Hash,
    M: Clone,
    Fut: std::future::Future<Output = AppResult<Vec<M>>>,
{
    let mut groups: HashMap<(TenantId, bool), Vec<Uuid>> = HashMap::new();
    for k in keys {
        let (tenant, audience, app) = group(k);
        groups.entry((tenant, audience)).or_default().push(app);
    }
    let mut out: HashMap<K, Vec<M>> = keys.iter().map(|k| (*k, Vec::new())).collect();
    for ((tenant, audience), apps) in groups {
        let rows = read(tenant, audience, apps).await?;
        for k in keys.iter().filter(|k| {
            let (t, a, _) = group(k);
            t == tenant && a == audience
        }) {
            let app = group(k).2;
            let mine = rows.iter().filter(|r| application_of(r) == app).cloned();
            out.entry(*k).or_default().extend(mine);
        }
    }
    Ok(out)
}

impl Loader<TasksOf> for ApplicationsLoader {
    type Value = Vec<application_tasks::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[TasksOf]) -> Result<HashMap<TasksOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| service::tasks_of(&self.db, tenant, ids),
            |t| t.application_id,
        )
        .await
    }
}

impl Loader<EventsOf> for ApplicationsLoader {
    type Value = Vec<application_events::Model>;
    type Error = async_graphql::Error;

    async fn load(&self, keys: &[EventsOf]) -> Result<HashMap<EventsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, k.2, k.1),
            |tenant, staff, ids| service::timelines_of(&self.db, tenant, ids, staff),
            |e| e.application_id,
        )
        .await
    }
}

impl Loader<MessagesOf> for ApplicationsLoader {
    type Value = Vec<messages::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[MessagesOf],
    ) -> Result<HashMap<MessagesOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, k.2, k.1),
            |tenant, staff, ids| mailbox::threads_of(&self.db, tenant, ids, staff),
            |m| m.application_id,
        )
        .await
    }
}

/// Key: the attachments of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct AttachmentsOf(pub TenantId, pub Uuid);

impl Loader<AttachmentsOf> for ApplicationsLoader {
    type Value = Vec<entity::attachments::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[AttachmentsOf],
    ) -> Result<HashMap<AttachmentsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| crate::attachments::service::of_applications(&self.db, tenant, ids),
            |a| a.application_id.unwrap_or_default(),
        )
        .await
    }
}

/// Key: the payments of an application.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct PaymentsOf(pub TenantId, pub Uuid);

impl Loader<PaymentsOf> for ApplicationsLoader {
    type Value = Vec<entity::payments::Model>;
    type Error = async_graphql::Error;

    async fn load(
        &self,
        keys: &[PaymentsOf],
    ) -> Result<HashMap<PaymentsOf, Self::Value>, Self::Error> {
        per_application(
            keys,
            |k| (k.0, false, k.1),
            |tenant, _, ids| crate::payments::service::of_applications(&self.db, tenant, ids),
            |p| p.application_id,
        )
        .await
    }
}

fn loader<'a>(ctx: &'a Context<'_>) -> AppResult<&'a RequestLoader<ApplicationsLoader>> {
    request_loader::<ApplicationsLoader>(ctx)
}

// ---- output types ------------------------------------------------------------------------------

/// A submitted application, as the caller may see it.
pub struct Application {
    pub model: applications::Model,
    pub viewer: Viewer,
}

#[derive(SimpleObject)]
pub struct Fee {
    pub key: String,
    pub label: String,
    pub amount_cents: i64,
}

impl From<FeeLine> for Fee {
    fn from(f: FeeLine) -> Self {
        Self {
            key: f.key,
            label: f.label,
            amount_cents: f.amount_cents,
        }
    }
}

/// A move the caller can make now.
#[derive(SimpleObject)]
pub struct AllowedTransition {
    pub to: String,
    pub label: String,
}

#[Object]
impl Application {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    /// `<TENANT>-<YEAR>-<6 digits>`.
    async fn reference(&self) -> &str {
        &self.model.reference
    }
    /// A state key of the pinned workflow.
    async fn state(&self) -> &str {
        &self.model.state
    }
    /// The state's German label.
    async fn state_label(&self, ctx: &Context<'_>) -> async_graphql::Result<String> {
        let pinned = self.pinned(ctx).await?;
        Ok(service::state_label(&pinned.content, &self.model.state))
    }
    async fn service_slug(&self) -> &str {
        &self.model.service_slug
    }
    /// The service revision this application was submitted under; it reads by it forever.
    async fn revision(&self) -> i64 {
        self.model.revision
    }
    /// The pinned revision's content (form, workflow, texts) — unchanged by later updates.
    async fn service_content(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        Ok(Json(self.content_value(ctx).await?))
    }
    /// The submitted form data (null once erased).
    async fn data(&self) -> Option<Json<Value>> {
        self.model.data.clone().map(Json)
    }
    /// Fees computed at submission.
    async fn fees(&self) -> Vec<Fee> {
        service::fees_of(&self.model)
            .into_iter()
            .map(Fee::from)
            .collect()
    }
    async fn fee_total_cents(&self) -> i64 {
        service::fees_of(&self.model)
            .iter()
            .map(|f| f.amount_cents)
            .sum()
    }
    /// Payments of the fees, oldest first.
    async fn payments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::payments::graphql::Payment>> {
        Ok(self
            .payment_rows(ctx)
            .await?
            .into_iter()
            .map(crate::payments::graphql::Payment)
            .collect())
    }
    /// Whether processing waits for the fees: the service is paid first and nothing has been
    /// received yet.
    async fn awaiting_payment(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        let pinned = self.pinned(ctx).await?;
        let total: i64 = service::fees_of(&self.model)
            .iter()
            .map(|f| f.amount_cents)
            .sum();
        Ok(pinned.content.payment_required_before_processing
            && total > 0
            && !self
                .payment_rows(ctx)
                .await?
                .iter()
                .any(|p| p.paid_at.is_some()))
    }
    async fn submitted_at(&self) -> DateTime<Utc> {
        self.model.submitted_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    async fn decided_at(&self) -> Option<DateTime<Utc>> {
        self.model.decided_at
    }
    async fn closed_at(&self) -> Option<DateTime<Utc>> {
        self.model.closed_at
    }
    async fn erased_at(&self) -> Option<DateTime<Utc>> {
        self.model.erased_at
    }
    /// One task per routed department.
    async fn tasks(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Task>> {
        let tasks = request_loader::<ApplicationsLoader>(ctx)?
            .load_one(TasksOf(TenantId(self.model.tenant_id), self.model.id))
            .await
            .map_err(|e| AppError::internal("loading tasks", anyhow::anyhow!("{}", e.message)))?
            .unwrap_or_default();
        Ok(tasks.into_iter().map(Task).collect())
    }
    /// Done when every task is done (or cancelled).
    async fn done(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.tasks(ctx).await?.iter().all(|t| t.0.state != "open"))
    }
    /// What happened, oldest first. Applicants do not see staff-only entries.
    async fn timeline(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<TimelineEvent>> {
        let staff = self.viewer.is_staff();
        let key = EventsOf(TenantId(self.model.tenant_id), self.model.id, staff);
        Ok(loader(ctx)?
            .load_one(key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(|e| TimelineEvent(e, staff))
            .collect())
    }
    /// The mailbox thread. Applicants never see internal notes.
    async fn messages(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Message>> {
        let key = MessagesOf(
            TenantId(self.model.tenant_id),
            self.model.id,
            self.viewer.is_staff(),
        );
        Ok(loader(ctx)?
            .load_one(key)
            .await?
            .unwrap_or_default()
            .into_iter()
            .map(Message)
            .collect())
    }
    /// The workflow moves the caller can make from the current state.
    /// Files the applicant attached (to the draft or later).
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::attachments::graphql::Attachment>> {
        let key = AttachmentsOf(TenantId(self.model.tenant_id), self.model.id);
        let rows = loader(ctx)?.load_one(key).await?.unwrap_or_default();
        Ok(rows
            .into_iter()
            .map(|model| crate::attachments::graphql::Attachment {
                model,
                viewer: self.viewer.clone(),
            })
            .collect())
    }
    async fn allowed_transitions(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<AllowedTransition>> {
        let content = &self.pinned(ctx).await?.content;
        let mover = if self.viewer.is_staff() {
            super::rules::Mover::Staff
        } else {
            super::rules::Mover::Citizen
        };
        Ok(
            super::rules::moves_from(&content.workflow, &self.model.state, mover)
                .into_iter()
                .map(|t| AllowedTransition {
                    to: t.to.as_str().to_owned(),
                    label: service::state_label(content, t.to.as_str()),
                })
                .collect(),
        )
    }
}

impl Application {
    async fn payment_rows(&self, ctx: &Context<'_>) -> AppResult<Vec<entity::payments::Model>> {
        Ok(loader(ctx)?
            .load_one(PaymentsOf(TenantId(self.model.tenant_id), self.model.id))
            .await
            .map_err(|e| AppError::internal("loading payments", anyhow::anyhow!("{}", e.message)))?
            .unwrap_or_default())
    }

    /// The pinned revision, parsed (cached across requests).
    async fn pinned(&self, ctx: &Context<'_>) -> AppResult<std::sync::Arc<service::Pinned>> {
        deps(ctx)?
            .pinned_now(
                TenantId(self.model.tenant_id),
                self.model.service_id,
                self.model.revision,
            )
            .await
    }

    async fn content_value(&self, ctx: &Context<'_>) -> AppResult<Value> {
        request_loader::<ServicesLoader>(ctx)?
            .load_one(ContentOf(
                TenantId(self.model.tenant_id),
                self.model.service_id,
                self.model.revision,
            ))
            .await
            .map_err(|e| {
                AppError::internal("loading service content", anyhow::anyhow!("{}", e.message))
            })?
            .ok_or(AppError::NotFound("service revision"))
    }
}

/// One department's share of an application.
pub struct Task(pub application_tasks::Model);

#[Object]
impl Task {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `open`, `done` or `cancelled`.
    async fn state(&self) -> &str {
        &self.0.state
    }
    /// The routing rule that created it.
    async fn rule_key(&self) -> &str {
        &self.0.rule_key
    }
    async fn department(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Department>> {
        Ok(request_loader::<TenancyLoader>(ctx)?
            .load_one(DepartmentById(
                TenantId(self.0.tenant_id),
                self.0.department_id,
            ))
            .await
            .map_err(|e| {
                AppError::internal("loading a department", anyhow::anyhow!("{}", e.message))
            })?
            .map(Department))
    }
    async fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    async fn completed_at(&self) -> Option<DateTime<Utc>> {
        self.0.completed_at
    }
    /// The application (visible to staff of the task's department).
    async fn application(&self, ctx: &Context<'_>) -> async_graphql::Result<Application> {
        let tctx = tenant_ctx(ctx)?;
        let (model, viewer) =
            service::application(deps(ctx)?, &tctx, self.0.application_id, None).await?;
        Ok(Application { model, viewer })
    }
}

pub struct TimelineEvent(application_events::Model, bool);

#[Object]
impl TimelineEvent {
    async fn at(&self) -> DateTime<Utc> {
        self.0.at
    }
    /// `submitted`, `transitioned`, `withdrawn`, `information_provided`, `task_completed`,
    /// `message_sent`, `note_added`.
    async fn kind(&self) -> &str {
        &self.0.kind
    }
    /// Who: `citizen`, `staff` or `system`; staff see the exact actor.
    async fn actor(&self) -> String {
        if self.1 {
            self.0.actor.clone()
        } else {
            self.0
                .actor
                .split(':')
                .next()
                .unwrap_or_default()
                .replace("anonymous", "citizen")
        }
    }
    async fn from_state(&self) -> Option<&str> {
        self.0.from_state.as_deref()
    }
    async fn to_state(&self) -> Option<&str> {
        self.0.to_state.as_deref()
    }
    async fn comment(&self) -> Option<&str> {
        self.0.comment.as_deref()
    }
    async fn details(&self) -> Option<Json<Value>> {
        self.0.details.clone().map(Json)
    }
    /// Staff-only entry.
    async fn internal(&self) -> bool {
        self.0.internal
    }
}

pub struct Message(pub messages::Model);

#[Object]
impl Message {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    /// `citizen` or `staff`.
    async fn sender(&self) -> &str {
        &self.0.sender
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    /// A staff-only note.
    async fn internal(&self) -> bool {
        self.0.internal
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
    /// When the other side read it.
    async fn read_at(&self) -> Option<DateTime<Utc>> {
        self.0.read_at
    }
}

pub struct Draft {
    model: drafts::Model,
    service_slug: String,
}

#[Object]
impl Draft {
    async fn id(&self) -> ID {
        ID(self.model.id.to_string())
    }
    async fn service_slug(&self) -> &str {
        &self.service_slug
    }
    async fn data(&self) -> Json<Value> {
        Json(self.model.data.clone())
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.model.created_at
    }
    async fn updated_at(&self) -> DateTime<Utc> {
        self.model.updated_at
    }
    /// Files attached so far; they move to the application on submission.
    async fn attachments(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Vec<crate::attachments::graphql::Attachment>> {
        let rows = crate::attachments::service::of_draft(
            &deps(ctx)?.db,
            TenantId(self.model.tenant_id),
            self.model.id,
        )
        .await?;
        Ok(rows
            .into_iter()
            .map(|model| crate::attachments::graphql::Attachment {
                model,
                viewer: Viewer::Applicant,
            })
            .collect())
    }
}

// ---- queries -----------------------------------------------------------------------------------

#[derive(InputObject, Default)]
pub struct ApplicationsFilter {
    pub state: Option<String>,
    /// Service slug.
    pub service: Option<String>,
    pub submitted_after: Option<DateTime<Utc>>,
    /// Words in the reference or the form data (all must match).
    pub search: Option<String>,
}

#[derive(InputObject, Default)]
pub struct TasksFilter {
    pub department: Option<ID>,
    /// `open`, `done` or `cancelled`.
    pub state: Option<String>,
}

#[derive(Default)]
pub struct ApplicationsQuery;

#[Object]
impl ApplicationsQuery {
    /// A draft of the caller (anonymous citizens pass the access token of their resume link).
    async fn draft(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<Draft> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (model, service_slug) =
            service::draft(deps(ctx)?, &tctx, id, access_token.as_deref()).await?;
        Ok(Draft {
            model,
            service_slug,
        })
    }

    /// One application: for its applicant (signed in, or with the access token of the status
    /// link), staff of a department it is routed to, and tenant administrators.
    async fn application(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<Application> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let (model, viewer) =
            service::application(deps(ctx)?, &tctx, id, access_token.as_deref()).await?;
        Ok(Application { model, viewer })
    }

    /// Applications the caller's departments work on (all of them for administrators).
    async fn applications(
        &self,
        ctx: &Context<'_>,
        filter: Option<ApplicationsFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Application>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let f = filter.unwrap_or_default();
        let page = service::list_applications(
            &deps(ctx)?.db,
            &tctx,
            service::ApplicationFilter {
                state: f.state,
                service: f.service,
                submitted_after: f.submitted_after,
                search: f.search,
                after_seq: None,
            },
            args,
        )
        .await?;
        let viewer = if crate::context::Principal::has_role(
            &tctx.principal,
            crate::context::Role::TenantAdmin,
        ) {
            Viewer::Admin
        } else {
            Viewer::Staff {
                user: tctx.staff_user().unwrap_or_default(),
            }
        };
        Ok(into_connection(
            page,
            |m| m.id,
            |model| Application {
                model,
                viewer: viewer.clone(),
            },
        ))
    }

    /// Tasks of the caller's departments.
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        filter: Option<TasksFilter>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<Conn<Task>> {
        let tctx = tenant_ctx(ctx)?;
        let args = PageArgs::parse(ctx, first, after)?;
        let f = filter.unwrap_or_default();
        let department = f
            .department
            .as_ref()
            .map(|d| parse_id("filter.department", d))
            .transpose()?;
        let page = service::list_tasks(
            &deps(ctx)?.db,
            &tctx,
            service::TaskFilter {
                department,
                state: f.state,
            },
            args,
        )
        .await?;
        Ok(into_connection(page, |m| m.id, Task))
    }

    /// Everything stored about the signed-in citizen here (GDPR Art. 15 / 20), as JSON.
    async fn export_my_data(&self, ctx: &Context<'_>) -> async_graphql::Result<Json<Value>> {
        let tctx = tenant_ctx(ctx)?;
        Ok(Json(service::export_my_data(deps(ctx)?, &tctx).await?))
    }
}

// ---- mutations ---------------------------------------------------------------------------------

#[derive(InputObject)]
pub struct SaveDraftInput {
    pub service_slug: String,
    pub data: Json<Value>,
    /// Update this draft instead of starting a new one.
    pub draft_id: Option<ID>,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SaveDraftPayload {
    pub draft: Draft,
    /// For anonymous citizens, on creation only: the secret of the resume link. Not shown again.
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct SubmitApplicationInput {
    pub service_slug: String,
    pub data: Json<Value>,
    /// The draft this submission finishes (it is removed).
    pub draft_id: Option<ID>,
    /// The draft's access token (anonymous citizens).
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SubmitApplicationPayload {
    pub application: Application,
    /// For anonymous citizens: the secret of the status link. Not shown again.
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct TransitionApplicationInput {
    pub id: ID,
    /// Target state key.
    pub to: String,
    pub comment: Option<String>,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct ApplicationPayload {
    pub application: Application,
}

#[derive(InputObject)]
pub struct WithdrawApplicationInput {
    pub id: ID,
    pub reason: Option<String>,
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct ProvideInformationInput {
    pub id: ID,
    /// Field values to change (`null` removes a field); the result must validate.
    pub data: Option<Json<Value>>,
    pub message: Option<String>,
    pub access_token: Option<String>,
}

#[derive(InputObject)]
pub struct CompleteTaskInput {
    pub id: ID,
    pub comment: Option<String>,
}

#[derive(SimpleObject)]
pub struct CompleteTaskPayload {
    pub task: Task,
    pub application: Application,
}

#[derive(InputObject)]
pub struct SendMessageInput {
    pub application_id: ID,
    pub body: String,
    /// A staff-only note.
    #[graphql(default)]
    pub internal: bool,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct SendMessagePayload {
    pub message: Message,
}

#[derive(InputObject)]
pub struct MarkMessagesReadInput {
    pub application_id: ID,
    pub access_token: Option<String>,
}

#[derive(SimpleObject)]
pub struct MarkMessagesReadPayload {
    /// Messages newly marked as read.
    pub marked: u64,
}

#[derive(InputObject)]
pub struct EraseApplicationInput {
    pub id: ID,
}

#[derive(Default)]
pub struct ApplicationsMutation;

#[Object]
impl ApplicationsMutation {
    /// Saves form data to come back to later. Anonymous citizens get an access token once.
    async fn save_draft(
        &self,
        ctx: &Context<'_>,
        input: SaveDraftInput,
    ) -> async_graphql::Result<SaveDraftPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_write(ctx)?;
        let draft_id = input
            .draft_id
            .as_ref()
            .map(|d| parse_id("input.draftId", d))
            .transpose()?;
        let slug = input.service_slug.clone();
        let (model, access_token) = service::save_draft(
            deps(ctx)?,
            &tctx,
            service::FormInput {
                service_slug: input.service_slug,
                draft_id,
                data: input.data.0,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SaveDraftPayload {
            draft: Draft {
                model,
                service_slug: slug,
            },
            access_token,
        })
    }

    /// Submits an application to a live service of this municipality.
    async fn submit_application(
        &self,
        ctx: &Context<'_>,
        input: SubmitApplicationInput,
    ) -> async_graphql::Result<SubmitApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        rate_limit_write(ctx)?;
        let draft_id = input
            .draft_id
            .as_ref()
            .map(|d| parse_id("input.draftId", d))
            .transpose()?;
        let (model, access_token) = service::submit(
            deps(ctx)?,
            &tctx,
            service::FormInput {
                service_slug: input.service_slug,
                data: input.data.0,
                draft_id,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SubmitApplicationPayload {
            application: Application {
                model,
                viewer: Viewer::Applicant,
            },
            access_token,
        })
    }

    /// Moves an application along its workflow.
    async fn transition_application(
        &self,
        ctx: &Context<'_>,
        input: TransitionApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let d = deps(ctx)?;
        let (model, viewer) = service::transition(
            d,
            &tctx,
            service::Transition {
                id,
                to: input.to,
                comment: input.comment,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(ApplicationPayload {
            application: Application { model, viewer },
        })
    }

    /// The applicant withdraws the application (before a decision).
    async fn withdraw_application(
        &self,
        ctx: &Context<'_>,
        input: WithdrawApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model =
            service::withdraw(deps(ctx)?, &tctx, id, input.reason, input.access_token).await?;
        Ok(ApplicationPayload {
            application: Application {
                model,
                viewer: Viewer::Applicant,
            },
        })
    }

    /// The applicant answers a request for information (changed data and/or a message).
    async fn provide_information(
        &self,
        ctx: &Context<'_>,
        input: ProvideInformationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model = service::provide_information(
            deps(ctx)?,
            &tctx,
            service::ProvideInformation {
                id,
                data: input.data.map(|d| d.0),
                message: input.message,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(ApplicationPayload {
            application: Application {
                model,
                viewer: Viewer::Applicant,
            },
        })
    }

    /// A department marks its task done.
    async fn complete_task(
        &self,
        ctx: &Context<'_>,
        input: CompleteTaskInput,
    ) -> async_graphql::Result<CompleteTaskPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let (task, model, viewer) =
            service::complete_task(deps(ctx)?, &tctx, id, input.comment).await?;
        Ok(CompleteTaskPayload {
            task: Task(task),
            application: Application { model, viewer },
        })
    }

    /// Writes to the application's mailbox (staff may write internal notes).
    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<SendMessagePayload> {
        let tctx = tenant_ctx(ctx)?;
        let application_id = parse_id("input.applicationId", &input.application_id)?;
        let message = mailbox::send(
            deps(ctx)?,
            &tctx,
            mailbox::SendMessage {
                application_id,
                body: input.body,
                internal: input.internal,
                access_token: input.access_token,
            },
        )
        .await?;
        Ok(SendMessagePayload {
            message: Message(message),
        })
    }

    /// Marks the other side's messages as read (read receipts).
    async fn mark_messages_read(
        &self,
        ctx: &Context<'_>,
        input: MarkMessagesReadInput,
    ) -> async_graphql::Result<MarkMessagesReadPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.applicationId", &input.application_id)?;
        let marked = mailbox::mark_read(deps(ctx)?, &tctx, id, input.access_token).await?;
        Ok(MarkMessagesReadPayload { marked })
    }

    /// Erases a closed application after its retention period (tenant administrators).
    async fn erase_application(
        &self,
        ctx: &Context<'_>,
        input: EraseApplicationInput,
    ) -> async_graphql::Result<ApplicationPayload> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("input.id", &input.id)?;
        let model = service::erase(deps(ctx)?, &tctx, id).await?;
        Ok(ApplicationPayload {
            application: Application {
                model,
                viewer: Viewer::Admin,
            },
        })
    }
}

// ---- subscription ------------------------------------------------------------------------------

/// A status change pushed to subscribers.
#[derive(SimpleObject, Clone)]
pub struct ApplicationStatus {
    pub application_id: ID,
    pub reference: String,
    pub state: String,
    pub at: DateTime<Utc>,
}

#[derive(Default)]
pub struct ApplicationsSubscription;

#[Subscription]
impl ApplicationsSubscription {
    /// The application's status now, then every change (from any server replica).
    async fn application_status_changed(
        &self,
        ctx: &Context<'_>,
        id: ID,
        access_token: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = ApplicationStatus>> {
        let tctx = tenant_ctx(ctx)?;
        let id = parse_id("id", &id)?;
        let d = deps(ctx)?;
        // Subscribe before reading, so no change between the read and the subscription is lost.
        let rx = d.live.subscribe();
        let (model, _viewer) = service::application(d, &tctx, id, access_token.as_deref()).await?;
        let current = super::live::StatusChange {
            tenant_id: tctx.tenant_id.0,
            application_id: model.id,
            reference: model.reference,
            state: model.state,
            at: model.updated_at,
        };
        let changes = super::live::follow(rx, d.db.clone(), tctx.tenant_id, current);
        Ok(changes.map(|c| ApplicationStatus {
            application_id: ID(c.application_id.to_string()),
            reference: c.reference,
            state: c.state,
            at: c.at,
        }))
    }
}
